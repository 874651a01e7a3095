"""Queries for the reports, turned into plain dataclasses (no HTML here).

Everything is computed "as of" the report date D (UTC days), from the
warehouse tables, never from ``now()``: rerunning a past date gives the same
report.

- Recent engagement: items posted by an account's people (matched authors)
  in the window [D - window_days + 1, D]. Accounts are ranked by that
  engagement (an item by a decision maker counts twice), then by stage, then
  by name.
- An account's stage on a day: its latest row in ``account_stage_history``
  entered on or before that day. The change is against the stage on the date
  of the previous report in the reports folder, or, with none, on the day
  before the window.
- KPIs: 12 rolling 7-day periods ending on D, from ``fct_source_daily``
  (all sources together) and ``fct_item_engagement`` (new engagement).
- Half-life: new engagement of the last 28 days by hours since publishing.
- Content that moved accounts forward: threads of ours in which an account's
  people took part in the 30 days before the account moved to a later stage
  (moves in the window).
- Alerts for D: a decision maker of a target account posted; an account moved
  to a later stage; a thread of ours whose last post is someone else's and
  has waited ``wait_hours`` by the end of D.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import aliased

from engage.reports.config import Target
from engage.warehouse.db import as_utc, day_bounds
from engage.warehouse.schema import (
    account,
    account_stage_history,
    author,
    author_match,
    content_item,
    fct_account_daily,
    fct_item_engagement,
    fct_source_daily,
    prospect,
    source,
    stage_prediction,
)

STAGE_RANK = {"awareness": 1, "consideration": 2, "evaluation": 3, "decision": 4, "adoption": 5}
TIMELINE_DAYS = 30
KPI_PERIODS = 12
HALF_LIFE_DAYS = 28
MOVE_LOOKBACK_DAYS = 30
WAIT_LOOKBACK_DAYS = 14
MAX_ITEMS_PER_ACCOUNT = 20
MAX_TEXT = 200
AGE_BUCKETS = (
    (6, "00-06h"),
    (12, "06-12h"),
    (24, "12-24h"),
    (36, "24-36h"),
    (48, "36-48h"),
    (72, "48-72h"),
    (168, "3-7d"),
    (float("inf"), "7d+"),
)
KPI_LABELS = {
    "items_published": "Items published (all)",
    "our_items_published": "Our items published",
    "threads_started_by_us": "Threads started by us",
    "threads_started_by_others": "Threads started by others",
    "replies": "Replies (all)",
    "our_replies": "Our replies",
    "our_follow_ups": "Our follow-ups",
    "threads_answered": "Threads we answered",
    "new_engagement": "New engagement (comments, likes, reposts)",
    "followers_change": "Followers gained",
    "referrals": "Referral sessions",
    "decision_maker_days": "Decision-maker days",
    "prospect_days": "Prospect days",
    "median_response_minutes": "Median minutes to our first answer",
}
_SPACES = re.compile(r"\s+")


def as_date(value: Any) -> date:
    """Dates come back as ``date`` (PostgreSQL) or ``date``/str (SQLite views)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def safe_url(url: str | None) -> str | None:
    """The URL when it is http(s) with a host; anything else (javascript:, data:...) is dropped."""
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or len(url) > 2000:
        return None
    return url


def short_text(*candidates: str | None, limit: int = MAX_TEXT) -> str:
    for text in candidates:
        if text and text.strip():
            text = _SPACES.sub(" ", text).strip()
            return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return ""


def stage_change(before: str | None, now: str | None) -> str:
    if now is None:
        return "none"
    if before is None:
        return "new"
    a, b = STAGE_RANK.get(before, 0), STAGE_RANK.get(now, 0)
    return "forward" if b > a else "backward" if b < a else "steady"


# --- Prospect engagement ---------------------------------------------------


@dataclass
class EngagementItem:
    item_id: int
    published_at: datetime
    person: str
    is_decision_maker: bool
    source: str
    kind: str
    text: str
    url: str | None
    thread_text: str
    thread_url: str | None
    stage: str | None
    in_our_thread: bool


@dataclass
class Person:
    key: str
    name: str
    title: str
    is_decision_maker: bool
    items: int = 0
    last_engaged_at: datetime | None = None


@dataclass
class AccountEngagement:
    account_id: int
    name: str
    domain: str
    owner: str
    is_target: bool
    items: int = 0
    decision_maker_items: int = 0
    stage: str | None = None
    stage_since: date | None = None
    previous_stage: str | None = None  # on the date compared with
    change: str = "none"  # against the date compared with: new, forward, backward, steady, none
    entered_from: str | None = None  # the stage before ``stage_since``
    people: list[Person] = field(default_factory=list)
    engagement: list[EngagementItem] = field(default_factory=list)
    timeline_days: list[date] = field(default_factory=list)
    timeline_items: list[int] = field(default_factory=list)
    timeline_decision_makers: list[int] = field(default_factory=list)

    @property
    def decision_makers(self) -> int:
        return sum(1 for p in self.people if p.is_decision_maker)

    @property
    def score(self) -> int:
        return self.items + self.decision_maker_items


@dataclass
class ProspectReport:
    day: date
    window_start: date
    compared_with: date
    compared_with_report: bool  # True: the date of an earlier report; False: the day before the window
    accounts: list[AccountEngagement]
    owners: list[str]

    def for_owner(self, owner: str | None) -> list[AccountEngagement]:
        if owner is None:
            return self.accounts
        return [a for a in self.accounts if a.owner == owner]


def _engagement_rows(conn: Any, start: datetime, end: datetime) -> list[Any]:
    thread = aliased(content_item)
    account_id = func.coalesce(prospect.c.account_id, author_match.c.account_id)
    return conn.execute(
        select(
            content_item.c.item_id,
            content_item.c.published_at,
            content_item.c.kind,
            content_item.c.title,
            content_item.c.body_text,
            content_item.c.url,
            content_item.c.author_id,
            source.c.name.label("source_name"),
            author.c.display_name,
            author.c.handle,
            author.c.title.label("author_title"),
            author.c.is_decision_maker.label("author_dm"),
            prospect.c.prospect_id,
            prospect.c.full_name,
            prospect.c.title.label("prospect_title"),
            prospect.c.is_decision_maker.label("prospect_dm"),
            account_id.label("account_id"),
            stage_prediction.c.label.label("stage"),
            thread.c.title.label("thread_title"),
            thread.c.body_text.label("thread_body"),
            thread.c.url.label("thread_url"),
            thread.c.is_ours.label("thread_is_ours"),
        )
        .select_from(
            content_item.join(source, source.c.source_id == content_item.c.source_id)
            .join(author, author.c.author_id == content_item.c.author_id)
            .join(author_match, author_match.c.author_id == author.c.author_id)
            .outerjoin(prospect, prospect.c.prospect_id == author_match.c.prospect_id)
            .outerjoin(stage_prediction, stage_prediction.c.item_id == content_item.c.item_id)
            .outerjoin(
                thread,
                and_(
                    thread.c.source_id == content_item.c.source_id,
                    thread.c.external_id == content_item.c.thread_external_id,
                ),
            )
        )
        .where(
            content_item.c.published_at >= start,
            content_item.c.published_at < end,
            content_item.c.is_ours == False,  # noqa: E712 - SQL expression
            account_id.is_not(None),
        )
        .order_by(content_item.c.published_at.desc(), content_item.c.item_id)
    ).all()


def stages_on(history: list[tuple[date, str]], day: date) -> tuple[str | None, date | None]:
    """The stage entered last on or before ``day`` (history sorted by date)."""
    stage, since = None, None
    for entered, value in history:
        if entered > day:
            break
        stage, since = value, entered
    return stage, since


def _history(conn: Any, account_ids: set[int] | None, until: date) -> dict[int, list[tuple[date, str]]]:
    h = account_stage_history.c
    query = (
        select(h.account_id, h.entered_date, h.stage)
        .where(h.entered_date <= until)
        .order_by(h.account_id, h.entered_date)
    )
    out: dict[int, list[tuple[date, str]]] = defaultdict(list)
    for row in conn.execute(query):
        if account_ids is None or row.account_id in account_ids:
            out[row.account_id].append((as_date(row.entered_date), row.stage))
    return out


def build_prospect_report(
    engine: Engine, day: date, *, window_days: int, compared_with: date | None
) -> ProspectReport:
    window_start = day - timedelta(days=window_days - 1)
    start, _ = day_bounds(window_start)
    _, end = day_bounds(day)
    baseline = compared_with or window_start - timedelta(days=1)
    timeline_first = day - timedelta(days=TIMELINE_DAYS - 1)
    with engine.connect() as conn:
        rows = _engagement_rows(conn, start, end)
        history = _history(conn, None, day)
        moved = {
            account_id
            for account_id, changes in history.items()
            if stages_on(changes, day)[0] != stages_on(changes, baseline)[0]
        }
        wanted = {r.account_id for r in rows} | moved
        accounts = {
            r.account_id: r
            for r in conn.execute(
                select(
                    account.c.account_id,
                    account.c.name,
                    account.c.domain,
                    account.c.owner,
                    account.c.is_target,
                )
            )
            if r.account_id in wanted
        }
        timeline: dict[int, dict[date, tuple[int, int]]] = defaultdict(dict)
        f = fct_account_daily.c
        for r in conn.execute(
            select(f.account_id, f.fact_date, f["items"], f.decision_makers_active).where(
                f.fact_date >= timeline_first, f.fact_date <= day
            )
        ):
            if r.account_id in wanted:
                timeline[r.account_id][as_date(r.fact_date)] = (r.items, r.decision_makers_active)

    result: dict[int, AccountEngagement] = {}
    for account_id, a in accounts.items():
        stage, since = stages_on(history.get(account_id, []), day)
        before, _ = stages_on(history.get(account_id, []), baseline)
        entered_from = stages_on(history.get(account_id, []), since - timedelta(days=1))[0] if since else None
        days = [timeline_first + timedelta(days=i) for i in range(TIMELINE_DAYS)]
        per_day = timeline.get(account_id, {})
        result[account_id] = AccountEngagement(
            account_id=account_id,
            name=a.name or "",
            domain=a.domain or "",
            owner=a.owner or "",
            is_target=bool(a.is_target),
            stage=stage,
            stage_since=since,
            previous_stage=before,
            change=stage_change(before, stage),
            entered_from=entered_from,
            timeline_days=days,
            timeline_items=[per_day.get(d, (0, 0))[0] for d in days],
            timeline_decision_makers=[per_day.get(d, (0, 0))[1] for d in days],
        )
    people: dict[tuple[int, str], Person] = {}
    for r in rows:
        acc = result[r.account_id]
        is_dm = bool(r.prospect_dm or r.author_dm)
        key = f"p{r.prospect_id}" if r.prospect_id is not None else f"a{r.author_id}"
        name = short_text(r.full_name, r.display_name, r.handle, limit=120) or "(unnamed)"
        person = people.get((r.account_id, key))
        if person is None:
            person = Person(key, name, short_text(r.prospect_title, r.author_title, limit=120), is_dm)
            people[(r.account_id, key)] = person
            acc.people.append(person)
        published = as_utc(r.published_at)
        person.items += 1
        person.last_engaged_at = max(filter(None, (person.last_engaged_at, published)), default=None)
        acc.items += 1
        acc.decision_maker_items += int(is_dm)
        acc.engagement.append(
            EngagementItem(
                item_id=r.item_id,
                published_at=published,  # type: ignore[arg-type]
                person=name,
                is_decision_maker=is_dm,
                source=r.source_name,
                kind=r.kind,
                text=short_text(r.title, r.body_text),
                url=safe_url(r.url),
                thread_text=short_text(r.thread_title, r.thread_body, limit=120),
                thread_url=safe_url(r.thread_url),
                stage=r.stage,
                in_our_thread=bool(r.thread_is_ours),
            )
        )
    for acc in result.values():
        acc.people.sort(key=lambda p: (not p.is_decision_maker, -p.items, p.name))
    ranked = sorted(
        result.values(),
        key=lambda a: (-a.score, -STAGE_RANK.get(a.stage or "", 0), a.name.lower(), a.account_id),
    )
    return ProspectReport(
        day=day,
        window_start=window_start,
        compared_with=baseline,
        compared_with_report=compared_with is not None,
        accounts=ranked,
        owners=sorted({a.owner for a in ranked if a.owner}),
    )


# --- KPIs --------------------------------------------------------------------


@dataclass
class Kpi:
    key: str
    label: str
    period_ends: list[date]
    values: list[float | None]
    target: Target | None

    @property
    def current(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def previous(self) -> float | None:
        return self.values[-2] if len(self.values) > 1 else None

    @property
    def change(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def met(self) -> bool | None:
        return self.target.met(self.current) if self.target else None


@dataclass
class HalfLifeBucket:
    bucket: str
    new_engagement: float
    share: float


@dataclass
class MovingContent:
    title: str
    url: str | None
    source: str
    accounts: list[str]


@dataclass
class KpiReport:
    day: date
    kpis: list[Kpi]
    half_life: list[HalfLifeBucket]
    moving_content: list[MovingContent]


def _sum(values: list[float]) -> float:
    return float(sum(values))


def build_kpi_report(
    engine: Engine, day: date, *, targets: dict[str, Target], window_days: int = 7
) -> KpiReport:
    first = day - timedelta(days=7 * KPI_PERIODS - 1)
    f = fct_source_daily.c
    e = fct_item_engagement.c
    daily: dict[date, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with engine.connect() as conn:
        for r in conn.execute(select(fct_source_daily).where(f.fact_date >= first, f.fact_date <= day)):
            d = daily[as_date(r.fact_date)]
            for key in (
                "items_published",
                "our_items_published",
                "threads_started_by_us",
                "threads_started_by_others",
                "replies",
                "our_replies",
                "our_follow_ups",
                "threads_answered",
                "referrals",
            ):
                d[key].append(float(r._mapping[key] or 0))
            d["followers_change"].append(float(r.followers_change or 0))
            d["decision_maker_days"].append(float(r.decision_makers_active))
            d["prospect_days"].append(float(r.prospects_active))
            if r.median_response_minutes is not None:
                d["median_response_minutes"].append(float(r.median_response_minutes))
        for r in conn.execute(
            select(e.fact_date, func.sum(e.engagement_change).label("change"))
            .where(e.fact_date >= first, e.fact_date <= day)
            .group_by(e.fact_date)
        ):
            daily[as_date(r.fact_date)]["new_engagement"].append(float(r.change or 0))
        half_first = day - timedelta(days=HALF_LIFE_DAYS - 1)
        buckets: dict[str, float] = {label: 0.0 for _, label in AGE_BUCKETS}
        for r in conn.execute(
            select(e.hours_since_published, func.sum(e.engagement_change).label("change"))
            .where(e.fact_date >= half_first, e.fact_date <= day, e.hours_since_published.is_not(None))
            .group_by(e.hours_since_published)
        ):
            hours = float(r.hours_since_published)
            label = next(lbl for limit, lbl in AGE_BUCKETS if hours < limit)
            buckets[label] += float(r.change or 0)
        moving = _moving_content(conn, day, window_days)

    period_ends = [day - timedelta(days=7 * k) for k in range(KPI_PERIODS - 1, -1, -1)]
    kpis = []
    for key, label in KPI_LABELS.items():
        values: list[float | None] = []
        for end in period_ends:
            collected = [v for i in range(7) for v in daily.get(end - timedelta(days=i), {}).get(key, [])]
            if key == "median_response_minutes":
                values.append(round(sum(collected) / len(collected), 1) if collected else None)
            else:
                values.append(_sum(collected))
        kpis.append(Kpi(key, label, period_ends, values, targets.get(key)))
    # KPIs with a target first (plan, do, check, act), then the rest.
    kpis.sort(key=lambda k: k.target is None)
    total = sum(v for v in buckets.values() if v > 0)
    half_life = [
        HalfLifeBucket(b, v, (v / total) if total > 0 and v > 0 else 0.0) for b, v in buckets.items()
    ]
    return KpiReport(day=day, kpis=kpis, half_life=half_life, moving_content=moving)


def _moving_content(conn: Any, day: date, window_days: int) -> list[MovingContent]:
    window_start = day - timedelta(days=window_days - 1)
    h = account_stage_history.c
    moves = [
        (r.account_id, as_date(r.entered_date))
        for r in conn.execute(
            select(h.account_id, h.entered_date, h.stage, h.previous_stage).where(
                h.entered_date >= window_start, h.entered_date <= day
            )
        )
        if r.previous_stage and stage_change(r.previous_stage, r.stage) == "forward"
    ]
    if not moves:
        return []
    names = dict(conn.execute(select(account.c.account_id, account.c.name)).all())
    start, _ = day_bounds(window_start - timedelta(days=MOVE_LOOKBACK_DAYS))
    _, end = day_bounds(day)
    thread = aliased(content_item)
    account_id = func.coalesce(prospect.c.account_id, author_match.c.account_id)
    rows = conn.execute(
        select(
            account_id.label("account_id"),
            content_item.c.published_at,
            thread.c.item_id.label("thread_id"),
            thread.c.title,
            thread.c.body_text,
            thread.c.url,
            source.c.name.label("source_name"),
        )
        .select_from(
            content_item.join(author_match, author_match.c.author_id == content_item.c.author_id)
            .outerjoin(prospect, prospect.c.prospect_id == author_match.c.prospect_id)
            .join(
                thread,
                and_(
                    thread.c.source_id == content_item.c.source_id,
                    thread.c.external_id == content_item.c.thread_external_id,
                ),
            )
            .join(source, source.c.source_id == thread.c.source_id)
        )
        .where(
            content_item.c.published_at >= start,
            content_item.c.published_at < end,
            thread.c.is_ours == True,  # noqa: E712 - SQL expression
            content_item.c.is_ours == False,  # noqa: E712
        )
    ).all()
    threads: dict[int, MovingContent] = {}
    credited: dict[int, set[int]] = defaultdict(set)
    for account_id_, moved_on in moves:
        lookback = moved_on - timedelta(days=MOVE_LOOKBACK_DAYS - 1)
        for r in rows:
            if r.account_id != account_id_:
                continue
            published = as_utc(r.published_at)
            if published is None or not lookback <= published.date() <= moved_on:
                continue
            threads.setdefault(
                r.thread_id,
                MovingContent(
                    short_text(r.title, r.body_text, limit=160), safe_url(r.url), r.source_name, []
                ),
            )
            credited[r.thread_id].add(account_id_)
    for thread_id, content in threads.items():
        content.accounts = sorted(names.get(a, "") for a in credited[thread_id])
    return sorted(threads.values(), key=lambda c: (-len(c.accounts), c.title))


# --- Alerts ------------------------------------------------------------------


@dataclass
class Alert:
    kind: str  # decision_maker | stage_forward | thread_waiting
    key: str  # de-duplication key
    account: str
    owner: str
    text: str
    url: str | None
    new: bool = True  # not reported on an earlier date


def build_alerts(engine: Engine, report: ProspectReport, *, wait_hours: float) -> list[Alert]:
    day = report.day
    start, end = day_bounds(day)
    alerts: list[Alert] = []
    for acc in report.accounts:
        if acc.is_target:
            for item in acc.engagement:
                if item.is_decision_maker and start <= item.published_at < end:
                    alerts.append(
                        Alert(
                            "decision_maker",
                            f"dm:{item.item_id}",
                            acc.name,
                            acc.owner,
                            f"{item.person} (decision maker, {acc.name}) posted on {item.source}: {item.text}",
                            item.url,
                        )
                    )
        if (
            acc.stage_since == day
            and acc.entered_from
            and stage_change(acc.entered_from, acc.stage) == "forward"
        ):
            alerts.append(
                Alert(
                    "stage_forward",
                    f"stage:{acc.account_id}:{acc.stage}:{day.isoformat()}",
                    acc.name,
                    acc.owner,
                    f"{acc.name} moved from {acc.entered_from} to {acc.stage}",
                    None,
                )
            )
    alerts.extend(_waiting_threads(engine, end, wait_hours))
    return alerts


def _waiting_threads(engine: Engine, end: datetime, wait_hours: float) -> list[Alert]:
    thread = aliased(content_item)
    start = end - timedelta(days=WAIT_LOOKBACK_DAYS)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                content_item.c.item_id,
                content_item.c.source_id,
                content_item.c.thread_external_id,
                content_item.c.published_at,
                content_item.c.is_ours,
                content_item.c.url,
                author.c.display_name,
                author.c.handle,
                thread.c.title.label("thread_title"),
                thread.c.body_text.label("thread_body"),
                thread.c.url.label("thread_url"),
                source.c.name.label("source_name"),
                account.c.name.label("account_name"),
                account.c.owner,
            )
            .select_from(
                content_item.join(
                    thread,
                    and_(
                        thread.c.source_id == content_item.c.source_id,
                        thread.c.external_id == content_item.c.thread_external_id,
                    ),
                )
                .join(source, source.c.source_id == content_item.c.source_id)
                .outerjoin(author, author.c.author_id == content_item.c.author_id)
                .outerjoin(author_match, author_match.c.author_id == content_item.c.author_id)
                .outerjoin(prospect, prospect.c.prospect_id == author_match.c.prospect_id)
                .outerjoin(
                    account,
                    account.c.account_id == func.coalesce(prospect.c.account_id, author_match.c.account_id),
                )
            )
            .where(
                thread.c.is_ours == True,  # noqa: E712 - SQL expression
                content_item.c.published_at >= start,
                content_item.c.published_at < end,
                or_(content_item.c.item_id != thread.c.item_id, content_item.c.is_ours == False),  # noqa: E712
            )
        ).all()
    last: dict[tuple[int, str], Any] = {}
    for r in rows:
        key = (r.source_id, r.thread_external_id)
        published = as_utc(r.published_at)
        if key not in last or (published, r.item_id) > (as_utc(last[key].published_at), last[key].item_id):
            last[key] = r
    alerts = []
    for r in sorted(last.values(), key=lambda r: as_utc(r.published_at)):  # type: ignore[arg-type, return-value]
        waited = (end - as_utc(r.published_at)).total_seconds() / 3600  # type: ignore[operator]
        if r.is_ours or waited < wait_hours:
            continue
        who = short_text(r.display_name, r.handle, limit=120) or "someone"
        alerts.append(
            Alert(
                "thread_waiting",
                f"wait:{r.item_id}",
                r.account_name or "",
                r.owner or "",
                f"{who} has waited {waited:.0f} h for our answer in {short_text(r.thread_title, r.thread_body, limit=120)!s} ({r.source_name})",
                safe_url(r.url) or safe_url(r.thread_url),
            )
        )
    return alerts
