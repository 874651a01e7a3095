"""Load sources' collected records into the warehouse, idempotently.

Everything is an upsert on the natural key, inside the caller's
transaction: loading the same records twice leaves the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection

from collectors.records import CollectResult
from engage.collection_runs import SOURCE_SUCCEEDED, source_succeeded
from engage.config import TeamConfig
from engage.warehouse.db import lookup_ids, upsert
from engage.warehouse.schema import author, content_item, engagement_observation
from transforms.decision_makers import is_decision_maker
from transforms.referrals import store_referrals


@dataclass
class LoadCounts:
    authors: int = 0
    items: int = 0
    observations: int = 0
    referrals: int = 0


def content_hash(title: str | None, text: str | None) -> str:
    return hashlib.sha256(f"{title or ''}\x1f{text or ''}".encode()).hexdigest()


@lru_cache(maxsize=16)
def _team_keys(team: TeamConfig) -> tuple[frozenset[str], frozenset[str]]:
    return (
        frozenset(h.lower().lstrip("@") for h in team.handles),
        frozenset(d.lower() for d in team.domains),
    )


def is_team_author(team: TeamConfig | None, handle: str | None, email: str | None, url: str | None) -> bool:
    """True when the author's handle, e-mail domain or profile URL is ours."""
    if team is None:
        return False
    handles, domains = _team_keys(team)
    if handle and handle.lower().lstrip("@") in handles:
        return True
    if email and "@" in email and email.rsplit("@", 1)[1].lower() in domains:
        return True
    if url and domains:
        host = (urlsplit(url).hostname or "").lower()
        if any(host == d or host.endswith("." + d) for d in domains):
            return True
    return False


@dataclass
class SourceLoad:
    """One source's collected records, to load with others in one transaction."""

    source_id: int
    result: CollectResult
    own_source: bool = False


AUTHOR_KEY = ("source_id", "external_id")
AUTHOR_UPDATE = (
    "handle",
    "display_name",
    "title",
    "bio",
    "profile_url",
    "email",
    "is_ours",
    "is_decision_maker",
    "last_seen_at",
)
ITEM_KEY = ("source_id", "external_id")
ITEM_UPDATE = (
    "kind",
    "thread_external_id",
    "parent_external_id",
    "author_id",
    "title",
    "body_text",
    "url",
    "published_at",
    "last_collected_at",
    "content_hash",
    "is_ours",
)
OBSERVATION_KEY = ("source_id", "subject_type", "subject_external_id", "metric", "observed_date")


def load_result(
    conn: Connection,
    *,
    source_id: int,
    run_date: date,
    result: CollectResult,
    collected_at: datetime,
    own_source: bool,
    team: TeamConfig | None = None,
) -> LoadCounts:
    """One source's records (``load_results`` for a single source)."""
    return load_results(
        conn,
        [SourceLoad(source_id, result, own_source)],
        run_date=run_date,
        collected_at=collected_at,
        team=team,
    )[0]


def load_results(
    conn: Connection,
    loads: Sequence[SourceLoad],
    *,
    run_date: date,
    collected_at: datetime,
    team: TeamConfig | None = None,
) -> list[LoadCounts]:
    """Several sources' records in the caller's transaction, one statement per
    table for all of them (the keys start with the source, so sources never
    share a row). Counts per source, in the order of ``loads``."""
    counts = [LoadCounts() for _ in loads]
    author_rows: list[dict[str, Any]] = []
    ours: set[tuple[int, str]] = set()
    for load, count in zip(loads, counts, strict=True):
        for a in load.result.authors:
            mine = is_team_author(team, a.handle, a.email, a.profile_url)
            if mine:
                ours.add((load.source_id, a.external_id))
            author_rows.append(
                {
                    "source_id": load.source_id,
                    "external_id": a.external_id,
                    "handle": a.handle,
                    "display_name": a.display_name,
                    "title": a.title,
                    "bio": a.bio,
                    "profile_url": a.profile_url,
                    "email": a.email,
                    "is_ours": mine,
                    "is_decision_maker": is_decision_maker(a.title, a.bio)[0],
                    "first_seen_at": collected_at,
                    "last_seen_at": collected_at,
                }
            )
        count.authors = len(load.result.authors)
    upsert(conn, author, author_rows, key=AUTHOR_KEY, update=AUTHOR_UPDATE)
    author_ids = lookup_ids(
        conn,
        author,
        "author_id",
        AUTHOR_KEY,
        [
            (load.source_id, i.author_external_id)
            for load in loads
            for i in load.result.items
            if i.author_external_id
        ],
    )
    item_rows: list[dict[str, Any]] = []
    obs_rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for load, count in zip(loads, counts, strict=True):
        sid = load.source_id
        for i in load.result.items:
            item_rows.append(
                {
                    "source_id": sid,
                    "external_id": i.external_id,
                    "kind": i.kind,
                    "thread_external_id": i.thread_external_id,
                    "parent_external_id": i.parent_external_id,
                    "author_id": author_ids.get((sid, i.author_external_id)),
                    "title": i.title,
                    "body_text": i.text,
                    "url": i.url,
                    "published_at": i.published_at,
                    "first_collected_at": collected_at,
                    "last_collected_at": collected_at,
                    "collected_date": run_date,
                    "content_hash": content_hash(i.title, i.text),
                    "is_ours": load.own_source or (sid, i.author_external_id) in ours,
                }
            )
        count.items = len(load.result.items)
        before = len(obs_rows)
        for o in load.result.observations:
            # A dated export row (the csv kind) says its own day; else the run's.
            day = date.fromisoformat(o.observed_date) if o.observed_date else run_date
            # One observation per subject, metric and day: a rerun replaces the value.
            obs_rows[(sid, o.subject_type, o.subject_external_id, o.metric, day)] = {
                "source_id": sid,
                "subject_type": o.subject_type,
                "subject_external_id": o.subject_external_id,
                "metric": o.metric,
                "value": float(o.value),
                "observed_at": collected_at,
                "observed_date": day,
            }
        count.observations = len(obs_rows) - before
    upsert(conn, content_item, item_rows, key=ITEM_KEY, update=ITEM_UPDATE)
    upsert(
        conn,
        engagement_observation,
        list(obs_rows.values()),
        key=OBSERVATION_KEY,
        update=("value", "observed_at"),
    )
    for load, count in zip(loads, counts, strict=True):
        if load.result.referrals:
            count.referrals = store_referrals(conn, load.result.referrals)
    if loads:
        conn.execute(
            SOURCE_SUCCEEDED,
            [
                source_succeeded(
                    load.source_id,
                    load.result.etag,
                    load.result.last_modified,
                    load.result.watermark,
                    collected_at,
                )
                for load in loads
            ],
        )
    return counts
