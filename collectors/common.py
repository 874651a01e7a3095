"""Helpers shared by the collectors of JSON APIs (social networks, forums).

- ``Harvest``: the records of one run, deduplicated by their natural keys
  and bounded by ``max_items``, with ``get_json`` -- a GET through the
  shared HTTP module that counts requests, sends the optional token, and
  turns an API's error answer (401, 403, 404, 410, 400 with an error body)
  into an ``ApiError`` (a ``FetchError``) that quotes the API's own reason.
- ``walk_pages``: the paging loop (cursor, ``max_id``, ``after``, page
  number): newest first, until the items are older than the window, the
  cursor ends, or ``max_pages`` is reached.
- Time: ``parse_api_time`` reads ISO 8601 (any offset, ``Z``, fractions)
  and Unix epochs into aware UTC datetimes; ``since_time`` is where a run
  stops paging, from the stored watermark and the lookback window.
- Tokens: ``api_token`` reads the source's ``token_env`` (an environment
  variable) or ``conn_id`` (the password of an Airflow connection). The
  token goes into a request header only: never into a URL, an error or a log.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

from collectors.records import AuthorRecord, CollectResult, ItemRecord, ObservationRecord
from engage.errors import ConfigError, EngageError, FetchError, ParseError

if TYPE_CHECKING:
    from collectors.base import CollectContext

DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_BACKFILL_DAYS = 30
DEFAULT_MAX_PAGES = 10
DEFAULT_MAX_ITEMS = 5_000
DEFAULT_MAX_THREADS = 25
# Answers whose body says why (the API's error JSON), read instead of raised.
API_ERROR_STATUSES = (400, 401, 403, 404, 410)
MAX_REASON = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class AccountUnavailable(EngageError):
    """The account or community is suspended, deleted, deactivated or banned."""


class ApiError(FetchError):
    """An API answered with an error; ``code`` is its own error name, if it gave one
    (e.g. XRPC's ``AccountTakedown``, Reddit's ``banned``)."""

    def __init__(self, url: str, reason: str, status: int, code: str | None) -> None:
        super().__init__(url, reason, status=status)
        self.code = code


def clean_reason(value: Any, limit: int = MAX_REASON) -> str:
    """Remote text fit for an error message: one line, bounded."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def api_reason(body: bytes) -> tuple[str | None, str | None]:
    """The error name and the reason an API gives in its error JSON, if any
    (from "error", "reason", "message", "error_description")."""
    try:
        data = json.loads(body[:20_000])
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    parts = []
    for key in ("error", "reason", "message", "error_description"):
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) not in parts:
            parts.append(str(value))
    code = data.get("reason") or data.get("error")
    code = clean_reason(code, 60) if isinstance(code, str) else None
    return code, (clean_reason(": ".join(parts)) if parts else None)


STATUS_WORDS = {
    400: "bad request (400)",
    401: "unauthorised (401): check the token",
    403: "forbidden (403)",
    404: "not found (404)",
    410: "gone (410)",
}


def api_token(ctx: CollectContext) -> str | None:
    """The source's token from ``token_env`` or the Airflow connection ``conn_id``."""
    name = ctx.source.name
    env_name = ctx.option("token_env")
    if env_name:
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise ConfigError(
                f"source {name!r}: option 'token_env' names the environment variable "
                f"{env_name!r}, which is not set"
            )
        return value
    conn_id = ctx.option("conn_id")
    if conn_id:
        try:
            from airflow.sdk import Connection

            password = Connection.get(conn_id).password
        except Exception as exc:  # noqa: BLE001 - any lookup failure is a config problem
            raise ConfigError(
                f"source {name!r}: Airflow connection {conn_id!r} (option 'conn_id') "
                f"cannot be read: {type(exc).__name__}"
            ) from None
        if not password:
            raise ConfigError(f"source {name!r}: Airflow connection {conn_id!r} has no password (the token)")
        return password
    return None


def parse_api_time(value: Any) -> datetime | None:
    """An API timestamp (ISO 8601 with any offset, or Unix seconds) as aware UTC."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), tz=UTC)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def day_end(run_date: date) -> datetime:
    return datetime.combine(run_date + timedelta(days=1), time(), tzinfo=UTC)


def window_start(ctx: CollectContext) -> datetime:
    """Items published after this are re-observed on every run."""
    days = int(ctx.option("lookback_days", DEFAULT_LOOKBACK_DAYS))
    return day_end(ctx.run_date) - timedelta(days=max(0, days))


def read_watermark(ctx: CollectContext, warnings: list[str]) -> dict[str, Any]:
    """The source's stored cursor (JSON object); unreadable ones start afresh with a warning."""
    if not ctx.watermark:
        return {}
    try:
        data = json.loads(ctx.watermark)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        warnings.append(
            f"stored watermark {clean_reason(ctx.watermark, 80)!r} is not readable; starting afresh"
        )
        return {}
    return data


def since_time(ctx: CollectContext, watermark: dict[str, Any]) -> datetime:
    """Page back to here: the lookback window, or further back to the last item seen
    when the source has not run for longer than that; ``backfill_days`` on a first run."""
    start = window_start(ctx)
    newest = parse_api_time(watermark.get("newest"))
    if newest is None:
        days = int(ctx.option("backfill_days", DEFAULT_BACKFILL_DAYS))
        return min(start, day_end(ctx.run_date) - timedelta(days=max(0, days)))
    return min(start, newest)


def new_watermark(old: dict[str, Any], items: Iterable[ItemRecord], **extra: Any) -> str:
    """The old watermark advanced to the newest item published (never moved back)."""
    newest = parse_api_time(old.get("newest"))
    for item in items:
        if item.published_at is not None and (newest is None or item.published_at > newest):
            newest = item.published_at
    data = {**old, **extra}
    if newest is not None:
        data["newest"] = newest.isoformat()
    return json.dumps(data, sort_keys=True)


def fragment_text(html: Any) -> str | None:
    """Readable text of an HTML fragment from an API (posts, bios): line breaks kept,
    links as their text, scripts and styles dropped, entities decoded."""
    if not isinstance(html, str) or not html.strip():
        return None
    if "<" not in html and "&" not in html:
        return html.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "blockquote", "pre"]):
        block.insert_before("\n")
        block.append("\n")
    lines = (" ".join(line.split()) for line in soup.get_text("").splitlines())
    text = "\n".join(line for line in lines if line)
    return text or None


def require_dict(data: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ParseError(f"{where}: expected {what} (a JSON object), got {type(data).__name__}")
    return data


def require_list(data: Any, where: str, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ParseError(f"{where}: expected {what} (a JSON list), got {type(data).__name__}")
    return data


def nonblank(value: Any) -> str | None:
    """A remote string, stripped; None for anything else or blank."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def count(value: Any) -> int | None:
    """A non-negative count from remote JSON, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value >= 0 else None


@dataclass
class Records:
    """Authors, items and observations found in one response (pure parse output)."""

    authors: list[AuthorRecord] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def observe(self, subject_type: str, subject: str, metric: str, value: Any) -> None:
        number = count(value)
        if number is not None:
            self.observations.append(ObservationRecord(subject_type, subject, metric, number))

    def extend(self, other: Records) -> None:
        self.authors.extend(other.authors)
        self.items.extend(other.items)
        self.observations.extend(other.observations)
        self.warnings.extend(other.warnings)


@dataclass
class Harvest:
    """Everything one run of one source found, deduplicated, with its requests."""

    ctx: CollectContext
    headers: dict[str, str] = field(default_factory=dict)
    authors: dict[str, AuthorRecord] = field(default_factory=dict)
    items: dict[str, ItemRecord] = field(default_factory=dict)
    observations: dict[tuple[str, str, str], ObservationRecord] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    http_status: int | None = None

    @classmethod
    def start(cls, ctx: CollectContext, headers: dict[str, str] | None = None) -> Harvest:
        """A harvest that sends the source's token (if any) as a bearer token."""
        token = api_token(ctx)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        return cls(ctx=ctx, headers=sent)

    @property
    def max_items(self) -> int:
        return int(self.ctx.option("max_items", DEFAULT_MAX_ITEMS))

    @property
    def full(self) -> bool:
        return len(self.items) >= self.max_items

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode JSON; an API error answer raises FetchError with the API's reason."""
        resp = self.ctx.client.get(
            url, params=params, headers=self.headers, ok_statuses=(200, *API_ERROR_STATUSES)
        )
        self.requests += resp.attempts
        if resp.status != 200:
            code, why = api_reason(resp.body)
            reason = STATUS_WORDS.get(resp.status, f"HTTP {resp.status}") + (f": {why}" if why else "")
            raise ApiError(resp.request_url or url, reason, resp.status, code)
        self.http_status = resp.status
        return resp.json()

    def get_thread(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """Like ``get_json``, for a thread found in a listing: one deleted since
        (404, 410, XRPC ``NotFound``) is skipped with a warning, not a failure."""
        try:
            return self.get_json(url, params)
        except ApiError as exc:
            if exc.status not in (404, 410) and exc.code != "NotFound":
                raise
            self.warn(f"{exc.url}: thread skipped, {exc.reason}")
            return None

    def add(self, records: Records) -> None:
        for author in records.authors:
            self.authors[author.external_id] = _merged(self.authors.get(author.external_id), author)
        for item in records.items:
            if item.external_id not in self.items and self.full:
                self.warn(f"stopped at max_items={self.max_items}")
                continue
            self.items[item.external_id] = _merged(self.items.get(item.external_id), item)
        for obs in records.observations:
            self.observations[(obs.subject_type, obs.subject_external_id, obs.metric)] = obs
        for warning in records.warnings:
            self.warn(warning)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def result(self, watermark: str | None) -> CollectResult:
        kept = set(self.items)
        return CollectResult(
            http_status=self.http_status,
            authors=list(self.authors.values()),
            items=list(self.items.values()),
            # Observations of items dropped at max_items are dropped with them.
            observations=[
                o
                for o in self.observations.values()
                if o.subject_type != "item" or o.subject_external_id in kept
            ],
            watermark=watermark,
            warnings=self.warnings,
            requests=self.requests,
        )


R = TypeVar("R", AuthorRecord, ItemRecord)


def _merged(old: R | None, new: R) -> R:
    """``new``, with the fields it lacks taken from ``old`` (e.g. a thread id found earlier)."""
    if old is None:
        return new
    for f in fields(new):
        if getattr(new, f.name) is None and getattr(old, f.name) is not None:
            setattr(new, f.name, getattr(old, f.name))
    return new


def threads_to_follow(
    ctx: CollectContext, harvest: Harvest, candidates: Iterable[str], metric: str
) -> list[str]:
    """The items among ``candidates`` published in the lookback window that have
    replies (``metric`` > 0) or are replies, at most ``max_threads`` of them."""
    start = window_start(ctx)
    limit = int(ctx.option("max_threads", DEFAULT_MAX_THREADS))
    wanted = []
    for item_id in dict.fromkeys(candidates):
        item = harvest.items.get(item_id)
        replies = harvest.observations.get(("item", item_id, metric))
        if item is None or item.published_at is None or item.published_at < start:
            continue
        if (replies is not None and replies.value > 0) or item.parent_external_id:
            wanted.append(item_id)
    if len(wanted) > limit:
        harvest.warn(f"{len(wanted)} threads to follow, followed the first max_threads={limit}")
    return wanted[:limit]


@dataclass
class Page:
    """One page of a listing: when its items were published, and the next cursor."""

    published: list[datetime | None]
    next_cursor: Any = None


def walk_pages(
    harvest: Harvest,
    fetch: Callable[[Any], Page],
    *,
    since: datetime | None,
    what: str,
    first_cursor: Any = None,
) -> int:
    """Fetch pages newest first until one reaches back past ``since``, the cursor
    ends, a page is empty, ``max_items`` is reached or ``max_pages`` pages were read.
    Every item on a fetched page is kept (fetched anyway; loads are upserts)."""
    max_pages = int(harvest.ctx.option("max_pages", DEFAULT_MAX_PAGES))
    cursor = first_cursor
    pages = 0
    while pages < max_pages:
        page = fetch(cursor)
        pages += 1
        known = [t for t in page.published if t is not None]
        if not page.published or page.next_cursor in (None, "", cursor) or harvest.full:
            return pages
        if since is not None and known and min(known) < since:
            return pages
        cursor = page.next_cursor
    harvest.warn(f"{what}: stopped after max_pages={max_pages} pages; older items were not read")
    return pages
