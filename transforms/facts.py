"""The daily facts: one day rebuilt at a time.

``build_facts_for_date`` deletes the day's rows of every fact table and
inserts them again, in one transaction: a rerun replaces the day, and a
crash leaves the previous version of the day intact. It reads only that
day's items, observations and referrals (all indexed by date), plus the
threads our replies of the day belong to, so the cost of a day does not grow
with the years of history behind it.

- ``fct_source_daily``: per source and day, the KPIs: items published (by
  us and others), threads started (by us / by others), replies, comments,
  likes and reposts observed, followers and their change against the
  previous snapshot, referrals, decision makers and prospects taking part,
  threads we answered that day and the median time to our first answer,
  our follow-ups.
- ``fct_account_daily``: per account and day: items, people, decision
  makers, replies to us, and the most advanced stage their items showed.
- ``fct_item_engagement``: per item and day observed: engagement (comments
  + likes + reposts) and its change, with the hours since publication (the
  content half-life view reads it).
- ``account_stage_history``: the account's stage over a rolling 30-day
  window; a row each time it changes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select
from sqlalchemy.orm import aliased

from engage.warehouse.db import as_utc, day_bounds
from engage.warehouse.schema import (
    account_stage_history,
    author,
    author_match,
    content_item,
    engagement_observation,
    fct_account_daily,
    fct_item_engagement,
    fct_source_daily,
    prospect,
    referral,
    source,
    stage_prediction,
)
from transforms.decision_makers import is_decision_maker

if TYPE_CHECKING:
    from engage.config import SourcesConfig
    from engage.settings import Settings

STAGE_RANK = {"awareness": 1, "consideration": 2, "evaluation": 3, "decision": 4, "adoption": 5}
RANK_STAGE = {v: k for k, v in STAGE_RANK.items()}
COMMENT_METRICS = ("comments", "replies")
LIKE_METRICS = ("likes", "favourites", "upvotes", "score", "reactions")
REPOST_METRICS = ("reposts", "boosts", "shares", "retweets")
STAGE_WINDOW_DAYS = 30
THREAD_STARTS = ("post", "feed_item")
REPLIES = ("reply", "comment")


@dataclass
class FactCounts:
    sources: int = 0
    accounts: int = 0
    items: int = 0
    stage_changes: int = 0


def _day_items(conn: Connection, day: date) -> list[Any]:
    start, end = day_bounds(day)
    return conn.execute(
        select(
            content_item.c.item_id,
            content_item.c.source_id,
            content_item.c.kind,
            content_item.c.thread_external_id,
            content_item.c.parent_external_id,
            content_item.c.external_id,
            content_item.c.is_ours,
            content_item.c.published_at,
            content_item.c.author_id,
            author.c.title.label("author_title"),
            author.c.bio.label("author_bio"),
            author_match.c.prospect_id,
            func.coalesce(prospect.c.account_id, author_match.c.account_id).label("account_id"),
            prospect.c.is_decision_maker.label("prospect_dm"),
            prospect.c.title.label("prospect_title"),
            stage_prediction.c.label.label("stage"),
        )
        .select_from(
            content_item.outerjoin(author, author.c.author_id == content_item.c.author_id)
            .outerjoin(author_match, author_match.c.author_id == content_item.c.author_id)
            .outerjoin(prospect, prospect.c.prospect_id == author_match.c.prospect_id)
            .outerjoin(stage_prediction, stage_prediction.c.item_id == content_item.c.item_id)
        )
        .where(content_item.c.published_at >= start, content_item.c.published_at < end)
    ).all()


def _is_dm(row: Any) -> bool:
    if row.prospect_dm:
        return True
    return is_decision_maker(row.prospect_title, row.author_title)[0]


def _thread_items(
    conn: Connection, keys: set[tuple[int, str]], end: datetime
) -> dict[tuple[int, str], list[Any]]:
    """All items (up to ``end``) of the given threads, oldest first."""
    threads: dict[tuple[int, str], list[Any]] = defaultdict(list)
    by_source: dict[int, list[str]] = defaultdict(list)
    for source_id, thread in keys:
        by_source[source_id].append(thread)
    for source_id, thread_ids in by_source.items():
        for start in range(0, len(thread_ids), 500):
            rows = conn.execute(
                select(
                    content_item.c.source_id,
                    content_item.c.thread_external_id,
                    content_item.c.is_ours,
                    content_item.c.published_at,
                    content_item.c.item_id,
                ).where(
                    content_item.c.source_id == source_id,
                    content_item.c.thread_external_id.in_(thread_ids[start : start + 500]),
                )
            ).all()
            # Filtered and sorted here, so the database uses the thread index.
            for r in sorted(rows, key=lambda r: (as_utc(r.published_at) or end, r.item_id)):
                if r.published_at is not None and as_utc(r.published_at) < end:
                    threads[(r.source_id, r.thread_external_id)].append(r)
    return threads


def _responsiveness(conn: Connection, items: list[Any], day: date) -> dict[int, dict[str, Any]]:
    """Per source: threads first answered by us on ``day``, minutes to answer, follow-ups."""
    start, end = day_bounds(day)
    ours = [i for i in items if i.is_ours and i.kind in REPLIES and i.thread_external_id]
    keys = {(i.source_id, i.thread_external_id) for i in ours}
    threads = _thread_items(conn, keys, end)
    out: dict[int, dict[str, Any]] = defaultdict(lambda: {"answered": 0, "minutes": [], "follow_ups": 0})
    todays_ours = {i.item_id for i in ours}
    for (source_id, _thread), rows in threads.items():
        first_other = next((r for r in rows if not r.is_ours), None)
        our_rows = [r for r in rows if r.is_ours]
        if first_other is not None:
            t0 = as_utc(first_other.published_at)
            first_answer = next(
                (r for r in our_rows if as_utc(r.published_at) >= t0 and r.item_id != first_other.item_id),
                None,
            )
            if first_answer is not None and start <= as_utc(first_answer.published_at) < end:
                out[source_id]["answered"] += 1
                out[source_id]["minutes"].append(
                    (as_utc(first_answer.published_at) - t0).total_seconds() / 60
                )
        # Our replies of the day that were not our first in the thread.
        seen_ours = 0
        for r in our_rows:
            if seen_ours > 0 and r.item_id in todays_ours:
                out[source_id]["follow_ups"] += 1
            seen_ours += 1
    return out


def _observations(conn: Connection, day: date) -> list[Any]:
    return conn.execute(
        select(
            engagement_observation.c.source_id,
            engagement_observation.c.subject_type,
            engagement_observation.c.subject_external_id,
            engagement_observation.c.metric,
            engagement_observation.c.value,
            engagement_observation.c.observed_at,
        ).where(engagement_observation.c.observed_date == day)
    ).all()


def _previous_value(conn: Connection, source_id: int, subject: str, metric: str, day: date) -> float | None:
    """The latest observation of an account metric before ``day`` (natural-key index)."""
    obs = engagement_observation.c
    return conn.execute(
        select(obs.value)
        .where(
            obs.source_id == source_id,
            obs.subject_type == "account",
            obs.subject_external_id == subject,
            obs.metric == metric,
            obs.observed_date < day,
        )
        .order_by(obs.observed_date.desc())
        .limit(1)
    ).scalar()


def _item_engagement(
    conn: Connection, observations: list[Any], day: date, stamp: datetime
) -> list[dict[str, Any]]:
    totals: dict[tuple[int, str], float] = defaultdict(float)
    observed_at: dict[tuple[int, str], datetime] = {}
    for o in observations:
        if o.subject_type == "item" and o.metric in (*COMMENT_METRICS, *LIKE_METRICS, *REPOST_METRICS):
            totals[(o.source_id, o.subject_external_id)] += o.value
            observed_at[(o.source_id, o.subject_external_id)] = as_utc(o.observed_at)
    if not totals:
        return []
    rows = []
    items: dict[tuple[int, str], Any] = {
        (r.source_id, r.external_id): r
        for r in conn.execute(
            select(
                content_item.c.item_id,
                content_item.c.source_id,
                content_item.c.external_id,
                content_item.c.published_at,
            )
            .distinct()
            .join(
                engagement_observation,
                and_(
                    engagement_observation.c.source_id == content_item.c.source_id,
                    engagement_observation.c.subject_external_id == content_item.c.external_id,
                ),
            )
            .where(
                engagement_observation.c.observed_date == day, engagement_observation.c.subject_type == "item"
            )
        )
    }
    previous: dict[int, float] = {}
    item_ids = [r.item_id for r in items.values()]
    for start in range(0, len(item_ids), 500):
        prev = aliased(fct_item_engagement)
        latest = (
            select(prev.c.item_id, func.max(prev.c.fact_date).label("d"))
            .where(prev.c.item_id.in_(item_ids[start : start + 500]), prev.c.fact_date < day)
            .group_by(prev.c.item_id)
            .subquery()
        )
        for r in conn.execute(
            select(fct_item_engagement.c.item_id, fct_item_engagement.c.engagement).join(
                latest,
                and_(
                    latest.c.item_id == fct_item_engagement.c.item_id,
                    latest.c.d == fct_item_engagement.c.fact_date,
                ),
            )
        ):
            previous[r.item_id] = r.engagement
    for key, total in totals.items():
        item = items.get(key)
        if item is None:
            continue
        published = as_utc(item.published_at)
        hours = (observed_at[key] - published).total_seconds() / 3600 if published else None
        rows.append(
            {
                "fact_date": day,
                "item_id": item.item_id,
                "source_id": item.source_id,
                "hours_since_published": round(hours, 2) if hours is not None else None,
                "engagement": total,
                "engagement_change": total - previous.get(item.item_id, 0.0),
                "built_at": stamp,
            }
        )
    return rows


def build_facts_for_date(engine: Engine, day: date) -> FactCounts:
    """Rebuild every fact table for one day, in one transaction."""
    stamp = datetime.now(UTC)
    start, end = day_bounds(day)
    with engine.begin() as conn:
        items = _day_items(conn, day)
        observations = _observations(conn, day)
        answered = _responsiveness(conn, items, day)
        referrals = dict(
            conn.execute(
                select(referral.c.source_id, func.sum(referral.c.sessions))
                .where(referral.c.referral_date == day, referral.c.source_id.is_not(None))
                .group_by(referral.c.source_id)
            ).all()
        )
        source_ids = [r[0] for r in conn.execute(select(source.c.source_id))]

        per_source: dict[int, dict[str, Any]] = {
            sid: {
                "items_published": 0,
                "our_items_published": 0,
                "threads_started_by_us": 0,
                "threads_started_by_others": 0,
                "replies": 0,
                "our_replies": 0,
                "dms": set(),
                "prospects": set(),
            }
            for sid in source_ids
        }
        per_account: dict[int, dict[str, Any]] = defaultdict(
            lambda: {"items": 0, "people": set(), "dms": set(), "replies_to_us": 0, "rank": 0}
        )
        our_threads = {
            (i.source_id, i.thread_external_id) for i in items if i.is_ours and i.kind in THREAD_STARTS
        }
        for i in items:
            s = per_source[i.source_id]
            s["items_published"] += 1
            if i.is_ours:
                s["our_items_published"] += 1
            if i.kind in THREAD_STARTS and not i.parent_external_id:
                s["threads_started_by_us" if i.is_ours else "threads_started_by_others"] += 1
            if i.kind in REPLIES:
                s["replies"] += 1
                if i.is_ours:
                    s["our_replies"] += 1
            dm = not i.is_ours and i.author_id is not None and _is_dm(i)
            if dm:
                s["dms"].add(i.author_id)
            if i.prospect_id is not None:
                s["prospects"].add(i.prospect_id)
            if i.account_id is not None and not i.is_ours:
                a = per_account[i.account_id]
                a["items"] += 1
                a["people"].add(i.author_id)
                if dm:
                    a["dms"].add(i.author_id)
                if i.kind in REPLIES and (i.source_id, i.thread_external_id) in our_threads:
                    a["replies_to_us"] += 1
                a["rank"] = max(a["rank"], STAGE_RANK.get(i.stage or "", 0))

        metrics: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        followers: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for o in observations:
            m = metrics[o.source_id]
            if o.subject_type == "item":
                if o.metric in COMMENT_METRICS:
                    m["comments"] += o.value
                elif o.metric in LIKE_METRICS:
                    m["likes"] += o.value
                elif o.metric in REPOST_METRICS:
                    m["reposts"] += o.value
            elif o.metric == "followers":
                followers[o.source_id].append((o.subject_external_id, o.value))

        source_rows = []
        for sid in source_ids:
            s = per_source[sid]
            fol = followers.get(sid, [])
            followers_total = sum(v for _, v in fol) if fol else None
            change = None
            if fol:
                change = 0.0
                for subject, value in fol:
                    before = _previous_value(conn, sid, subject, "followers", day)
                    change += value - before if before is not None else 0.0
            resp = answered.get(sid, {"answered": 0, "minutes": [], "follow_ups": 0})
            source_rows.append(
                {
                    "fact_date": day,
                    "source_id": sid,
                    "items_published": s["items_published"],
                    "our_items_published": s["our_items_published"],
                    "threads_started_by_us": s["threads_started_by_us"],
                    "threads_started_by_others": s["threads_started_by_others"],
                    "replies": s["replies"],
                    "our_replies": s["our_replies"],
                    "comments": metrics[sid]["comments"],
                    "likes": metrics[sid]["likes"],
                    "reposts": metrics[sid]["reposts"],
                    "followers": followers_total,
                    "followers_change": change,
                    "referrals": int(referrals.get(sid) or 0),
                    "decision_makers_active": len(s["dms"]),
                    "prospects_active": len(s["prospects"]),
                    "threads_answered": resp["answered"],
                    "our_follow_ups": resp["follow_ups"],
                    "median_response_minutes": round(statistics.median(resp["minutes"]), 1)
                    if resp["minutes"]
                    else None,
                    "built_at": stamp,
                }
            )
        account_rows = [
            {
                "fact_date": day,
                "account_id": account_id,
                "items": a["items"],
                "people_active": len(a["people"]),
                "decision_makers_active": len(a["dms"]),
                "replies_to_us": a["replies_to_us"],
                "stage": RANK_STAGE.get(a["rank"]),
                "stage_rank": a["rank"] or None,
                "built_at": stamp,
            }
            for account_id, a in per_account.items()
        ]
        item_rows = _item_engagement(conn, observations, day, stamp)

        for table in (fct_source_daily, fct_account_daily, fct_item_engagement):
            conn.execute(delete(table).where(table.c.fact_date == day))
        for table, rows in (
            (fct_source_daily, source_rows),
            (fct_account_daily, account_rows),
            (fct_item_engagement, item_rows),
        ):
            for i in range(0, len(rows), 500):
                conn.execute(insert(table), rows[i : i + 500])
        changes = _update_stage_history(conn, day, [r["account_id"] for r in account_rows if r["stage_rank"]])
    return FactCounts(len(source_rows), len(account_rows), len(item_rows), changes)


def _update_stage_history(conn: Connection, day: date, accounts: list[int]) -> int:
    """Record accounts whose rolling-window stage changes on ``day``."""
    conn.execute(delete(account_stage_history).where(account_stage_history.c.entered_date == day))
    if not accounts:
        return 0
    window_start = day - timedelta(days=STAGE_WINDOW_DAYS - 1)
    changes = 0
    for i in range(0, len(accounts), 500):
        part = accounts[i : i + 500]
        rolling = dict(
            conn.execute(
                select(fct_account_daily.c.account_id, func.max(fct_account_daily.c.stage_rank))
                .where(
                    fct_account_daily.c.account_id.in_(part),
                    fct_account_daily.c.fact_date >= window_start,
                    fct_account_daily.c.fact_date <= day,
                )
                .group_by(fct_account_daily.c.account_id)
            ).all()
        )
        h = account_stage_history.c
        latest = (
            select(h.account_id, func.max(h.entered_date).label("d"))
            .where(h.account_id.in_(part), h.entered_date < day)
            .group_by(h.account_id)
            .subquery()
        )
        current = dict(
            conn.execute(
                select(h.account_id, h.stage).join(
                    latest, and_(latest.c.account_id == h.account_id, latest.c.d == h.entered_date)
                )
            ).all()
        )
        rows = []
        for account_id, rank in rolling.items():
            stage = RANK_STAGE.get(rank or 0)
            if stage and current.get(account_id) != stage:
                rows.append(
                    {
                        "account_id": account_id,
                        "stage": stage,
                        "entered_date": day,
                        "previous_stage": current.get(account_id),
                    }
                )
        if rows:
            conn.execute(insert(account_stage_history), rows)
            changes += len(rows)
    return changes


def build_facts_day(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine
) -> FactCounts:
    """The daily step: match new authors to prospects, then rebuild the day's facts."""
    from transforms.people import match_authors

    match_authors(engine, only_unmatched=True)
    return build_facts_for_date(engine, run_date)


def rebuild_all(engine: Engine, first: date, last: date) -> int:
    """Rebuild every day from ``first`` to ``last`` (what a full rebuild costs)."""
    days = 0
    day = first
    while day <= last:
        build_facts_for_date(engine, day)
        day += timedelta(days=1)
        days += 1
    return days
