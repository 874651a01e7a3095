"""Shared fixtures: warehouses on SQLite and PostgreSQL, settings, sources files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engage.settings import Settings
from engage.warehouse.db import make_engine, migrate
from tests.pg import PgServer, find_server

REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "realworld"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server, reason = find_server()
    if server is None:
        pytest.skip(f"PostgreSQL not available: {reason}")
    yield server
    if callable(server.stop):
        server.stop()


@pytest.fixture
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty warehouse URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    """A migrated warehouse on each backend."""
    eng = make_engine(warehouse_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings with ENGAGE_HOME under tmp_path and the given warehouse URL."""

    def make(warehouse_url: str, sources: Path | None = None, **kw: object) -> Settings:
        return Settings(
            home=tmp_path / "home",
            warehouse_url=warehouse_url,
            sources_path=sources or tmp_path / "sources.yml",
            **kw,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def write_sources(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(text: str, name: str = "sources.yml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def realworld() -> Path:
    if not REALWORLD.is_dir():
        pytest.skip(f"{REALWORLD} not present (real-world inputs live in ../shared)")
    return REALWORLD
