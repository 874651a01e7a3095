"""Engines, migrations and dialect-portable upserts for the warehouse."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, inspect, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from engage.errors import WarehouseError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CHUNK = 500
EXECUTEMANY_CHUNK = 5_000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the database; a power loss (not a
    # crash of the process) may undo the last commits, which a rerun of the
    # day replaces anyway. FULL would fsync on every commit.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC day, as aware datetimes."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the warehouse, aware (SQLite returns naive UTC)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_in_memory(url: str | URL) -> bool:
    """An in-memory SQLite warehouse: one per connection, nothing another process could open."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def make_engine(url: str) -> Engine:
    """An engine for the warehouse URL; creates the SQLite file's folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = is_in_memory(parsed)
        if not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        # Threads beyond the pool's 5 connections get their own (closed when
        # returned) instead of waiting for one: collect_all runs many sources at once.
        engine = create_engine(url) if in_memory else create_engine(url, max_overflow=-1)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Bring the warehouse to ``revision``; returns the revision it is at."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
            if revision == "head":
                from transforms.views import create_views

                create_views(conn)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise WarehouseError(f"cannot migrate the warehouse at {engine.url!r}: {exc.orig}") from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    with make_engine("sqlite://").connect() as conn:
        return ScriptDirectory.from_config(alembic_config(conn)).get_current_head()


def wait_for_warehouse(engine: Engine, wait_seconds: float) -> None:
    """Connect, retrying with exponential backoff and jitter for up to
    ``wait_seconds`` while the warehouse is unreachable (a restart, a
    failover, a network blip); then fail with a clear ``WarehouseError``."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

    def attempt() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    retrying = Retrying(
        retry=retry_if_exception_type(OperationalError),
        wait=wait_random_exponential(multiplier=0.25, max=10),
        stop=stop_after_delay(max(wait_seconds, 0)),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "the warehouse at %r is unreachable (attempt %d): retrying", engine.url, state.attempt_number
        ),
    )
    try:
        retrying(attempt)
    except OperationalError as exc:
        raise WarehouseError(
            f"cannot reach the warehouse at {engine.url!r} (waited {wait_seconds:g} s): {exc.orig}"
        ) from exc


def require_current(engine: Engine) -> None:
    """Fail clearly when the warehouse is not migrated to the code's schema."""
    try:
        have = current_revision(engine)
    except OperationalError as exc:
        raise WarehouseError(f"cannot reach the warehouse at {engine.url!r}: {exc.orig}") from exc
    want = head_revision()
    if have != want:
        raise WarehouseError(
            f"the warehouse at {engine.url!r} is at schema revision {have!r}, "
            f"the code needs {want!r}: run `engage init`"
        )


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@lru_cache(maxsize=256)
def _upsert_statement(dialect: str, table: Table, key: tuple[str, ...], update: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET update`` (or ``DO NOTHING``), built once.

    One statement with bound parameters, run with executemany: compiled once
    and cached (a multi-row VALUES clause is compiled anew for every batch
    size, which cost more than the database's own work).
    """
    if dialect == "postgresql":
        insert = postgresql.insert
    elif dialect == "sqlite":
        insert = sqlite.insert
    else:  # pragma: no cover - only the two supported dialects
        raise WarehouseError(f"upsert is not supported on {dialect}")
    stmt = insert(table)
    if update:
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    return stmt.on_conflict_do_nothing(index_elements=list(key))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    update: Iterable[str] | None = None,
) -> int:
    """Insert rows, or update the listed columns where the natural key exists.

    Works on SQLite and PostgreSQL with ``INSERT ... ON CONFLICT``. With
    ``update`` empty the existing row is kept as it is (do nothing).
    Values are always bound parameters.
    """
    if not rows:
        return 0
    if update is None:
        update = [c for c in rows[0] if c not in key]
    stmt = _upsert_statement(conn.dialect.name, table, tuple(key), tuple(update))
    count = 0
    for part in chunks(list(rows), EXECUTEMANY_CHUNK):
        conn.execute(stmt, list(part))
        count += len(part)
    return count


@lru_cache(maxsize=64)
def _lookup_statement(table: Table, id_column: str, key: tuple[str, ...]) -> Any:
    """``SELECT id, key... WHERE (key...) IN (:keys)``, built once (an expanding parameter)."""
    cols = [table.c[k] for k in key]
    return select(table.c[id_column], *cols).where(tuple_(*cols).in_(bindparam("keys", expanding=True)))


def lookup_ids(
    conn: Connection,
    table: Table,
    id_column: str,
    key: Sequence[str],
    keys: Iterable[tuple[Any, ...]],
) -> dict[tuple[Any, ...], int]:
    """Map natural keys to surrogate ids, in chunks of bound parameters."""
    wanted = list(dict.fromkeys(keys))
    found: dict[tuple[Any, ...], int] = {}
    stmt = _lookup_statement(table, id_column, tuple(key))
    for part in chunks(wanted):
        for row in conn.execute(stmt, {"keys": list(part)}):
            found[tuple(row[1:])] = row[0]
    return found
