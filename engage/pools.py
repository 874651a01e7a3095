"""Airflow pools: one per platform, so all workers together respect each
service's rate limit.

A pool's slots bound how many sources of that platform are collected at
once across every Celery worker; inside one task the politeness layer
(``collectors.politeness``) bounds the request rate per host. Together:
at most ``slots x requests_per_second`` requests per second reach a
service. The pools and their slots are in ``config/airflow_pools.json``,
imported with ``airflow pools import`` (the compose init service, ``make
standalone`` and the demo do it).
"""

from __future__ import annotations

import json
from pathlib import Path

POOLS_FILE = Path(__file__).resolve().parent.parent / "config" / "airflow_pools.json"

# The platform pool of each source kind. A kind missing here (a new
# collector) is collected in the default pool "engage_feeds".
POOL_OF_KIND: dict[str, str] = {
    "rss": "engage_feeds",
    "atom": "engage_feeds",
    "discourse": "engage_forums",
    "html_forum": "engage_forums",
    "mastodon": "engage_mastodon",
    "bluesky": "engage_bluesky",
    "reddit": "engage_reddit",
    "hackernews": "engage_hackernews",
    "wordpress": "engage_wordpress",
    "csv": "engage_files",
}
DEFAULT_POOL = "engage_feeds"
# Every pool, in a fixed order: the DAG has one mapped collect task per pool.
POOLS: tuple[str, ...] = tuple(dict.fromkeys(POOL_OF_KIND.values()))


def pool_of_kind(kind: str) -> str:
    return POOL_OF_KIND.get(kind, DEFAULT_POOL)


def task_suffix(pool: str) -> str:
    """``engage_reddit`` -> ``reddit`` (the collect task of that pool is ``collect_reddit``)."""
    return pool.removeprefix("engage_")


def read_pools_file(path: Path = POOLS_FILE) -> dict[str, dict[str, object]]:
    """The pools file as ``airflow pools import`` reads it."""
    return json.loads(path.read_text(encoding="utf-8"))
