"""collection_run.load_error: why a collected source could not be loaded

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collection_run", sa.Column("load_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collection_run") as batch:
        batch.drop_column("load_error")
