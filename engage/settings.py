"""Settings from the environment (and, inside Airflow, from a connection).

| variable | default | meaning |
|---|---|---|
| ENGAGE_HOME | ./var | data directory: warehouse file, raw landing, staging, reports |
| ENGAGE_WAREHOUSE_URL | sqlite:///$ENGAGE_HOME/warehouse.db | SQLAlchemy URL of the warehouse |
| ENGAGE_WAREHOUSE_CONN_ID | engage_warehouse | Airflow connection used when ENGAGE_WAREHOUSE_URL is unset |
| ENGAGE_SOURCES | config/sources.yml | the sources file |
| ENGAGE_HTTP_TIMEOUT | 10 | read timeout in seconds (connect timeout is 5) |
| ENGAGE_HTTP_MAX_BYTES | 10000000 | largest response body accepted |
| ENGAGE_USER_AGENT | engage/<version> (+https://github.com/engage-oss/engage) | User-Agent header |
| ENGAGE_RAW_RETENTION_DAYS | 90 | raw responses older than this many days are removed |
| ENGAGE_ROBOTS_CACHE_HOURS | 24 | a robots.txt fetched less than this long ago is used without asking again (RFC 9309 allows 24; 0: ask every run) |
| ENGAGE_UNMATCHED_RETENTION_DAYS | 365 | people never matched to a prospect and not seen for this many days are anonymised (0: never) |
| ENGAGE_WAREHOUSE_WAIT_SECONDS | 60 | how long a step waits for an unreachable warehouse before failing (then Airflow retries the task) |
| ENGAGE_FRESHNESS_DAYS | 2 | a source without a successful collection for longer is reported by the quality checks |
| ENGAGE_QUALITY_MIN_RATIO | 0.3 | a source's rows for the day below this share of its recent median are reported |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engage import __version__
from engage.errors import ConfigError

DEFAULT_USER_AGENT = f"engage/{__version__} (+https://github.com/engage-oss/engage)"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_url: str
    sources_path: Path
    http_timeout: float = 10.0
    http_connect_timeout: float = 5.0
    http_max_bytes: int = 10_000_000
    user_agent: str = DEFAULT_USER_AGENT
    raw_retention_days: int = 90
    robots_cache_hours: float = 24.0
    unmatched_retention_days: int = 365
    warehouse_wait_seconds: float = 60.0
    freshness_days: int = 2
    quality_min_ratio: float = 0.3
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def robots_cache_dir(self) -> Path:
        return self.home / "cache" / "robots"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def _airflow_connection_uri(conn_id: str) -> str | None:
    """The URI of an Airflow connection, when running inside an Airflow task."""
    if not os.environ.get("AIRFLOW_CTX_DAG_ID") and not os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return None
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - no such connection: fall back to the default
        return None
    uri = conn.get_uri()
    # Airflow spells PostgreSQL "postgres://"; SQLAlchemy wants the driver.
    if uri.startswith("postgres://") or uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _number(env: dict[str, str], name: str, kind: type[int] | type[float], default: str) -> Any:
    """A numeric setting, zero or more; a bad value is a ConfigError naming the variable."""
    raw = env.get(name, default).strip()
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if not value >= 0:  # also NaN
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r}: expected {what}, zero or more")
    return value


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("ENGAGE_HOME", "var")).expanduser().resolve()
    url = env.get("ENGAGE_WAREHOUSE_URL")
    if not url:
        url = _airflow_connection_uri(env.get("ENGAGE_WAREHOUSE_CONN_ID", "engage_warehouse"))
    if not url:
        url = f"sqlite:///{home / 'warehouse.db'}"
    return Settings(
        home=home,
        warehouse_url=normalise_url(url),
        sources_path=Path(env.get("ENGAGE_SOURCES", "config/sources.yml")).expanduser().resolve(),
        http_timeout=_number(env, "ENGAGE_HTTP_TIMEOUT", float, "10"),
        http_max_bytes=_number(env, "ENGAGE_HTTP_MAX_BYTES", int, "10000000"),
        user_agent=env.get("ENGAGE_USER_AGENT", DEFAULT_USER_AGENT),
        raw_retention_days=_number(env, "ENGAGE_RAW_RETENTION_DAYS", int, "90"),
        robots_cache_hours=_number(env, "ENGAGE_ROBOTS_CACHE_HOURS", float, "24"),
        unmatched_retention_days=_number(env, "ENGAGE_UNMATCHED_RETENTION_DAYS", int, "365"),
        warehouse_wait_seconds=_number(env, "ENGAGE_WAREHOUSE_WAIT_SECONDS", float, "60"),
        freshness_days=_number(env, "ENGAGE_FRESHNESS_DAYS", int, "2"),
        quality_min_ratio=_number(env, "ENGAGE_QUALITY_MIN_RATIO", float, "0.3"),
    )
