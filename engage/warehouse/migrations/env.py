"""Alembic environment: runs against the connection that engage passes in."""

from __future__ import annotations

from alembic import context

from engage.warehouse.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - engage always passes a connection
    raise RuntimeError("run migrations through `engage init` (engage.warehouse.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
