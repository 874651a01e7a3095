"""Load one source's collected records into the warehouse, idempotently.

Everything is an upsert on the natural key, inside the caller's
transaction: loading the same records twice leaves the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, update

from collectors.records import CollectResult
from engage.config import TeamConfig
from engage.warehouse.db import lookup_ids, upsert
from engage.warehouse.schema import author, content_item, engagement_observation, source
from transforms.decision_makers import is_decision_maker


@dataclass
class LoadCounts:
    authors: int = 0
    items: int = 0
    observations: int = 0
    referrals: int = 0


def content_hash(title: str | None, text: str | None) -> str:
    return hashlib.sha256(f"{title or ''}\x1f{text or ''}".encode()).hexdigest()


def is_team_author(team: TeamConfig | None, handle: str | None, email: str | None, url: str | None) -> bool:
    """True when the author's handle, e-mail domain or profile URL is ours."""
    if team is None:
        return False
    handles = {h.lower().lstrip("@") for h in team.handles}
    domains = {d.lower() for d in team.domains}
    if handle and handle.lower().lstrip("@") in handles:
        return True
    if email and "@" in email and email.rsplit("@", 1)[1].lower() in domains:
        return True
    if url:
        from urllib.parse import urlsplit

        host = (urlsplit(url).hostname or "").lower()
        if any(host == d or host.endswith("." + d) for d in domains):
            return True
    return False


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
    counts = LoadCounts()
    author_rows = []
    ours: set[str] = set()
    for a in result.authors:
        mine = is_team_author(team, a.handle, a.email, a.profile_url)
        if mine:
            ours.add(a.external_id)
        author_rows.append(
            {
                "source_id": source_id,
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
    counts.authors = upsert(
        conn,
        author,
        author_rows,
        key=["source_id", "external_id"],
        update=[
            "handle",
            "display_name",
            "title",
            "bio",
            "profile_url",
            "email",
            "is_ours",
            "is_decision_maker",
            "last_seen_at",
        ],
    )
    author_ids = lookup_ids(
        conn,
        author,
        "author_id",
        ["source_id", "external_id"],
        [(source_id, i.author_external_id) for i in result.items if i.author_external_id],
    )
    item_rows = []
    for i in result.items:
        item_rows.append(
            {
                "source_id": source_id,
                "external_id": i.external_id,
                "kind": i.kind,
                "thread_external_id": i.thread_external_id,
                "parent_external_id": i.parent_external_id,
                "author_id": author_ids.get((source_id, i.author_external_id)),
                "title": i.title,
                "body_text": i.text,
                "url": i.url,
                "published_at": i.published_at,
                "first_collected_at": collected_at,
                "last_collected_at": collected_at,
                "collected_date": run_date,
                "content_hash": content_hash(i.title, i.text),
                "is_ours": own_source or (i.author_external_id in ours),
            }
        )
    counts.items = upsert(
        conn,
        content_item,
        item_rows,
        key=["source_id", "external_id"],
        update=[
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
        ],
    )
    obs_rows = [
        {
            "source_id": source_id,
            "subject_type": o.subject_type,
            "subject_external_id": o.subject_external_id,
            "metric": o.metric,
            "value": float(o.value),
            "observed_at": collected_at,
            # A dated export row (the csv kind) says its own day; else the run's.
            "observed_date": date.fromisoformat(o.observed_date) if o.observed_date else run_date,
        }
        for o in result.observations
    ]
    # One observation per subject, metric and day: a rerun replaces the value.
    dedup = {
        (r["subject_type"], r["subject_external_id"], r["metric"], r["observed_date"]): r for r in obs_rows
    }
    counts.observations = upsert(
        conn,
        engagement_observation,
        list(dedup.values()),
        key=["source_id", "subject_type", "subject_external_id", "metric", "observed_date"],
        update=["value", "observed_at"],
    )
    if result.referrals:
        from transforms.referrals import store_referrals

        counts.referrals = store_referrals(conn, result.referrals)
    conn.execute(
        update(source)
        .where(source.c.source_id == source_id)
        .values(
            etag=result.etag,
            last_modified=result.last_modified,
            watermark=result.watermark if result.watermark is not None else source.c.watermark,
            last_success_at=collected_at,
            last_error=None,
            consecutive_failures=0,
            next_attempt_at=None,
        )
    )
    return counts
