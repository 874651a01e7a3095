"""The warehouse: migrations match the metadata, upserts are idempotent, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select

from engage.errors import WarehouseError
from engage.warehouse.db import head_revision, make_engine, migrate, require_current, upsert
from engage.warehouse.schema import metadata, source

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_migrations_build_exactly_the_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_is_idempotent_and_at_head(engine: Engine) -> None:
    assert migrate(engine) == head_revision()
    require_current(engine)


def test_unmigrated_warehouse_is_refused_with_a_hint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(WarehouseError, match="engage init"):
        require_current(eng)


def _source_row(name: str, url: str) -> dict[str, object]:
    return {
        "name": name,
        "kind": "rss",
        "url": url,
        "is_own": False,
        "created_at": NOW,
        "updated_at": NOW,
        "consecutive_failures": 0,
    }


def test_upsert_inserts_then_updates_on_the_natural_key(engine: Engine) -> None:
    with engine.begin() as conn:
        upsert(conn, source, [_source_row("a", "http://x/1"), _source_row("b", "http://x/2")], key=["name"])
        upsert(conn, source, [_source_row("a", "http://x/changed")], key=["name"], update=["url"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(source)).scalar_one() == 2
        assert (
            conn.execute(select(source.c.url).where(source.c.name == "a")).scalar_one() == "http://x/changed"
        )


def test_upsert_without_update_columns_keeps_the_row(engine: Engine) -> None:
    with engine.begin() as conn:
        upsert(conn, source, [_source_row("a", "http://x/1")], key=["name"])
        upsert(conn, source, [_source_row("a", "http://x/other")], key=["name"], update=[])
    with engine.connect() as conn:
        assert conn.execute(select(source.c.url)).scalar_one() == "http://x/1"


def test_upsert_handles_more_rows_than_one_statement(engine: Engine) -> None:
    rows = [_source_row(f"s{i}", f"http://x/{i}") for i in range(1234)]
    with engine.begin() as conn:
        assert upsert(conn, source, rows, key=["name"]) == 1234
        upsert(conn, source, rows, key=["name"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(source)).scalar_one() == 1234
