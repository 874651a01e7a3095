"""Mastodon (and Mastodon-compatible servers: Pleroma, Akkoma, Pixelfed).

The source's ``url`` is the server (``https://mastodon.social``). Options:
``account`` (our account, ``acme`` or ``acme@other.server``), ``hashtag``
and/or ``search`` -- at least one of them. Each run:

1. ``GET /api/v1/accounts/lookup?acct=`` -- the account's followers,
   following and post counts (a daily snapshot); a suspended account is an
   ``AccountUnavailable`` error, a moved one a warning.
2. ``GET /api/v1/accounts/{id}/statuses`` -- its posts and replies, newest
   first, paged with ``max_id``; each with its replies, boosts (reposts) and
   favourites (likes). A boost yields the boosted post.
3. ``GET /api/v1/timelines/tag/{hashtag}`` (same paging) and
   ``GET /api/v2/search?type=statuses&q=`` (``offset`` paging; most servers
   answer full-text search only with a token).
4. ``GET /api/v1/statuses/{id}/context`` for our posts of the lookback
   window that have replies or are replies: the thread's other posts, with
   their parent (``in_reply_to_id``) and the thread's root.

Paging stops at the first page reaching back past the watermark or the
lookback window (``lookback_days``, default 7, so counts are re-observed
while they change), or at ``max_pages``. Followers-only and direct
statuses are never collected. Identity: the server's status id and
account id, which never change when a status is edited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from collectors.base import CollectContext
from collectors.common import (
    AccountUnavailable,
    Harvest,
    Page,
    Records,
    clean_reason,
    fragment_text,
    new_watermark,
    parse_api_time,
    read_watermark,
    require_dict,
    require_list,
    since_time,
    threads_to_follow,
    walk_pages,
)
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import ConfigError

PAGE_SIZE = 40
PUBLIC = ("public", "unlisted", None)
TITLE_FIELDS = ("title", "job title", "job", "role", "position", "company")


def _id(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return bounded_id(str(value))
    return None


def account_author(account: dict[str, Any]) -> AuthorRecord | None:
    """An author from a Mastodon Account entity; the title from a profile field
    named like a job title ("Title", "Role", "Position"...), the bio from the note."""
    account_id = _id(account.get("id"))
    if account_id is None:
        return None
    title = None
    for entry in account.get("fields") or []:
        if isinstance(entry, dict) and str(entry.get("name", "")).strip(" :").lower() in TITLE_FIELDS:
            title = clip(fragment_text(entry.get("value")), MAX_TITLE)
            break
    handle = account.get("acct") or account.get("username")
    return AuthorRecord(
        external_id=account_id,
        handle=clip(str(handle), MAX_TITLE) if handle else None,
        display_name=clip(account.get("display_name") or None, MAX_TITLE),
        title=title,
        bio=clip(fragment_text(account.get("note")), MAX_TEXT),
        profile_url=clip(account.get("url"), 2_000) if isinstance(account.get("url"), str) else None,
    )


def parse_account(data: Any, *, where: str) -> Records:
    """The account snapshot: author and followers/following/posts counts.

    Accepts an Account, or an admin Account (which nests it under
    ``account``). Suspended accounts raise AccountUnavailable."""
    data = require_dict(data, where, "an account")
    account = data["account"] if isinstance(data.get("account"), dict) else data
    name = account.get("acct") or account.get("username") or account.get("id")
    if data.get("suspended") or account.get("suspended"):
        raise AccountUnavailable(f"{where}: account {clean_reason(name)!r} is suspended")
    author = account_author(account)
    if author is None:
        raise AccountUnavailable(f"{where}: no account in the answer (deleted?)")
    records = Records(authors=[author])
    if isinstance(account.get("moved"), dict):
        moved_to = account["moved"].get("acct") or account["moved"].get("url")
        records.warnings.append(f"account {clean_reason(name)!r} has moved to {clean_reason(moved_to)!r}")
    for metric, key in (
        ("followers", "followers_count"),
        ("following", "following_count"),
        ("posts", "statuses_count"),
    ):
        records.observe("account", author.external_id, metric, account.get(key))
    return records


def status_records(status: dict[str, Any], records: Records, *, thread_id: str | None = None) -> str | None:
    """Add one status (the boosted one, for a boost) to ``records``; its id, or
    None when it is not public or has no id."""
    if isinstance(status.get("reblog"), dict):
        status = status["reblog"]
    status_id = _id(status.get("id"))
    if status_id is None or status.get("visibility") not in PUBLIC:
        return None
    parent = _id(status.get("in_reply_to_id"))
    author = account_author(status["account"]) if isinstance(status.get("account"), dict) else None
    if author is not None:
        records.authors.append(author)
    text = fragment_text(status.get("content")) or fragment_text(status.get("text"))
    warning = (status.get("spoiler_text") or "").strip()
    records.items.append(
        ItemRecord(
            external_id=status_id,
            kind="reply" if parent else "post",
            title=clip(warning, MAX_TITLE) or None,
            text=clip(text, MAX_TEXT),
            url=clip(status.get("url") or status.get("uri"), 2_000),
            published_at=parse_api_time(status.get("created_at")),
            author_external_id=author.external_id if author else None,
            thread_external_id=thread_id or (None if parent else status_id),
            parent_external_id=parent,
        )
    )
    records.observe("item", status_id, "replies", status.get("replies_count"))
    records.observe("item", status_id, "reposts", status.get("reblogs_count"))
    records.observe("item", status_id, "likes", status.get("favourites_count"))
    return status_id


def parse_statuses(data: Any, *, where: str) -> Records:
    """Records from a list of statuses (an account's statuses, a timeline)."""
    records = Records()
    for status in require_list(data, where, "a list of statuses"):
        if isinstance(status, dict):
            status_records(status, records)
    return records


def parse_status(data: Any, *, where: str) -> Records:
    records = Records()
    status_records(require_dict(data, where, "a status"), records)
    return records


def parse_context(data: Any, *, status_id: str, where: str) -> tuple[str, Records]:
    """The thread around ``status_id`` (ancestors and descendants), each linked
    to the thread's root (the first ancestor, else the status itself)."""
    data = require_dict(data, where, "a status context")
    ancestors = [s for s in data.get("ancestors") or [] if isinstance(s, dict)]
    descendants = [s for s in data.get("descendants") or [] if isinstance(s, dict)]
    root = (_id(ancestors[0].get("id")) if ancestors else None) or status_id
    records = Records()
    for status in ancestors + descendants:
        status_records(status, records, thread_id=root)
    return root, records


def _page_times(data: Any) -> list[Any]:
    return (
        [parse_api_time(s.get("created_at")) for s in data if isinstance(s, dict)]
        if isinstance(data, list)
        else []
    )


def collect(ctx: CollectContext) -> CollectResult:
    account, hashtag, search = (ctx.option(k) for k in ("account", "hashtag", "search"))
    if not (account or hashtag or search):
        raise ConfigError(
            f"source {ctx.source.name!r}: kind 'mastodon' needs 'account', 'hashtag' or 'search'"
        )
    base = ctx.source.url.rstrip("/")
    harvest = Harvest.start(ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    since = since_time(ctx, watermark)
    own: list[str] = []
    if account:
        url = f"{base}/api/v1/accounts/lookup"
        snapshot = parse_account(harvest.get_json(url, {"acct": str(account).lstrip("@")}), where=url)
        harvest.add(snapshot)
        account_id = snapshot.authors[0].external_id
        statuses_url = f"{base}/api/v1/accounts/{quote(account_id, safe='')}/statuses"
        for records in _timeline(harvest, statuses_url, since, "account statuses"):
            own.extend(i.external_id for i in records.items if i.author_external_id == account_id)
    if hashtag:
        tag_url = f"{base}/api/v1/timelines/tag/{quote(str(hashtag).lstrip('#'), safe='')}"
        _timeline(harvest, tag_url, since, f"#{hashtag}")
    if search:
        _search(harvest, f"{base}/api/v2/search", str(search))
    _collect_threads(ctx, harvest, base, own)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _timeline(harvest: Harvest, url: str, since: datetime, what: str) -> list[Records]:
    """A list of statuses paged with ``max_id`` (the last id of the page before)."""
    pages: list[Records] = []

    def fetch(max_id: str | None) -> Page:
        data = harvest.get_json(url, {"limit": PAGE_SIZE, **({"max_id": max_id} if max_id else {})})
        records = parse_statuses(data, where=url)
        harvest.add(records)
        pages.append(records)
        last = _id(data[-1].get("id")) if data and isinstance(data[-1], dict) else None
        return Page(_page_times(data), last)

    walk_pages(harvest, fetch, since=since, what=what)
    return pages


def _search(harvest: Harvest, url: str, query: str) -> None:
    """Full-text search of statuses, paged with ``offset`` (results are not by date)."""

    def fetch(offset: int | None) -> Page:
        params = {"q": query, "type": "statuses", "limit": PAGE_SIZE, "offset": offset or 0}
        data = require_dict(harvest.get_json(url, params), url, "search results")
        statuses = data.get("statuses") or []
        harvest.add(parse_statuses(statuses, where=url))
        more = len(statuses) >= PAGE_SIZE
        return Page(_page_times(statuses), (offset or 0) + len(statuses) if more else None)

    walk_pages(harvest, fetch, since=None, what=f"search {query!r}")


def _collect_threads(ctx: CollectContext, harvest: Harvest, base: str, own: list[str]) -> None:
    """Contexts of our statuses of the window that have replies or are replies."""
    for status_id in threads_to_follow(ctx, harvest, own, "replies"):
        url = f"{base}/api/v1/statuses/{quote(status_id, safe='')}/context"
        data = harvest.get_thread(url)
        if data is None:
            continue
        root, records = parse_context(data, status_id=status_id, where=url)
        harvest.add(records)
        harvest.items[status_id].thread_external_id = root
