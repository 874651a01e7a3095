"""Reddit: a subreddit's new posts, their comment trees, scores and comment counts.

The source's ``url`` is ``https://www.reddit.com`` (or
``https://oauth.reddit.com`` with a token); option ``subreddit`` (``revops``
or ``r/revops``). Every request asks for ``raw_json=1`` (text as written,
not HTML-escaped). Each run:

1. ``GET /r/{sub}/about.json`` -- subscribers and active users (a daily
   snapshot of the community, subject ``t5_...``). A banned, private or
   quarantined subreddit is an ``AccountUnavailable`` error.
2. ``GET /r/{sub}/new.json?limit=100&after=`` -- posts newest first, paged
   with ``after``, back to the watermark or the lookback window; each with
   its score and comment count.
3. ``GET /comments/{id}.json?sort=new&limit=500&depth=10`` for the posts of
   the lookback window that have comments (at most ``max_threads``): the
   comment tree with each comment's parent and score; the ``more`` stubs it
   holds are expanded with ``GET /api/morechildren.json`` (100 ids a
   request, at most ``max_more`` requests a thread, default 3).

Identity: Reddit's fullnames (``t3_...`` posts, ``t1_...`` comments,
``t2_...`` authors), stable across edits. Removed or deleted comments are
not collected (their replies are); a deleted author leaves the item
without author. The author's flair is kept as their title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collectors.base import CollectContext
from collectors.common import (
    AccountUnavailable,
    ApiError,
    Harvest,
    Page,
    Records,
    new_watermark,
    nonblank,
    parse_api_time,
    read_watermark,
    require_dict,
    since_time,
    threads_to_follow,
    walk_pages,
)
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import ConfigError, ParseError

PAGE_SIZE = 100
MORE_BATCH = 100
DEFAULT_MAX_MORE = 3
SUBREDDIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
ID36_RE = re.compile(r"^[a-z0-9]{1,16}$")
GONE = ("[deleted]", "[removed]")
UNAVAILABLE_REASONS = ("banned", "private", "quarantined", "gold_only")


@dataclass
class MoreStub:
    """Collapsed comments to fetch with ``/api/morechildren`` (ids without ``t1_``)."""

    parent: str
    children: list[str] = field(default_factory=list)


def _author(data: dict[str, Any]) -> AuthorRecord | None:
    name = nonblank(data.get("author"))
    if name is None or name in GONE:
        return None
    return AuthorRecord(
        external_id=bounded_id(nonblank(data.get("author_fullname")) or name),
        handle=clip(name, MAX_TITLE),
        title=clip(nonblank(data.get("author_flair_text")), MAX_TITLE),
        profile_url=f"https://www.reddit.com/user/{name}" if re.fullmatch(r"[\w-]{1,40}", name) else None,
    )


def _permalink(data: dict[str, Any]) -> str | None:
    link = nonblank(data.get("permalink"))
    return clip("https://www.reddit.com" + link, 2_000) if link and link.startswith("/") else None


def thing_records(kind: str, data: dict[str, Any], records: Records) -> str | None:
    """Add a post (t3) or comment (t1) to ``records``; its fullname, or None when
    it is neither or was removed."""
    name = nonblank(data.get("name"))
    if kind not in ("t1", "t3") or name is None:
        return None
    name = bounded_id(name)
    text = nonblank(data.get("body") if kind == "t1" else data.get("selftext"))
    if kind == "t1" and text in GONE:
        return None
    author = _author(data)
    if author is not None:
        records.authors.append(author)
    parent = nonblank(data.get("parent_id")) if kind == "t1" else None
    records.items.append(
        ItemRecord(
            external_id=name,
            kind="comment" if kind == "t1" else "post",
            title=clip(nonblank(data.get("title")), MAX_TITLE) if kind == "t3" else None,
            text=clip(None if text in GONE else text, MAX_TEXT),
            url=_permalink(data),
            published_at=parse_api_time(data.get("created_utc")),
            author_external_id=author.external_id if author else None,
            thread_external_id=bounded_id(nonblank(data.get("link_id")) or name) if kind == "t1" else name,
            parent_external_id=bounded_id(parent) if parent else None,
        )
    )
    records.observe("item", name, "score", data.get("score"))
    if kind == "t3":
        records.observe("item", name, "comments", data.get("num_comments"))
    return name


def parse_about(data: Any, *, where: str) -> Records:
    """``/r/{sub}/about.json``: the subreddit's subscribers and active users."""
    data = require_dict(data, where, "a subreddit")
    about = data.get("data") if isinstance(data.get("data"), dict) else {}
    name = nonblank(about.get("name"))
    if data.get("kind") != "t5" or name is None:
        raise ParseError(f"{where}: expected a subreddit (kind t5), got kind {data.get('kind')!r}")
    records = Records()
    records.observe("account", name, "subscribers", about.get("subscribers"))
    records.observe("account", name, "active_users", about.get("active_user_count"))
    return records


def parse_listing(data: Any, *, where: str) -> tuple[Records, list[datetime | None], str | None]:
    """A Listing of posts or comments: records, their times and the ``after`` cursor."""
    data = require_dict(data, where, "a listing")
    listing = data.get("data") if isinstance(data.get("data"), dict) else None
    if data.get("kind") != "Listing" or listing is None or not isinstance(listing.get("children"), list):
        raise ParseError(f"{where}: expected a Listing, got kind {data.get('kind')!r}")
    records = Records()
    times: list[datetime | None] = []
    for child in listing["children"]:
        if isinstance(child, dict) and isinstance(child.get("data"), dict):
            thing_records(str(child.get("kind")), child["data"], records)
            times.append(parse_api_time(child["data"].get("created_utc")))
    return records, times, nonblank(listing.get("after"))


def _walk_things(things: list[Any], records: Records) -> list[MoreStub]:
    """Add every t1/t3 of a (nested) list of things; return the ``more`` stubs."""
    stubs: list[MoreStub] = []
    stack = list(reversed(things))
    while stack:
        thing = stack.pop()
        if not isinstance(thing, dict) or not isinstance(thing.get("data"), dict):
            continue
        data = thing["data"]
        if thing.get("kind") == "more":
            children = [c for c in data.get("children") or [] if isinstance(c, str) and ID36_RE.match(c)]
            if children:
                stubs.append(MoreStub(parent=str(data.get("parent_id")), children=children))
            continue
        thing_records(str(thing.get("kind")), data, records)
        replies = data.get("replies")
        if isinstance(replies, dict) and isinstance(replies.get("data"), dict):
            stack.extend(reversed(replies["data"].get("children") or []))
    return stubs


def parse_comments(data: Any, *, where: str) -> tuple[Records, list[MoreStub]]:
    """``/comments/{id}.json``: [post Listing, comment Listing] with nested replies."""
    if not isinstance(data, list) or len(data) != 2 or not all(isinstance(part, dict) for part in data):
        raise ParseError(f"{where}: expected a post and its comments (a list of two Listings)")
    records = Records()
    things = []
    for part in data:
        listing = part.get("data") if isinstance(part.get("data"), dict) else {}
        things.extend(listing.get("children") or [])
    return records, _walk_things(things, records)


def parse_morechildren(data: Any, *, where: str) -> tuple[Records, list[MoreStub]]:
    """``/api/morechildren.json?api_type=json``: a flat list of comments (and stubs)."""
    answer = require_dict(require_dict(data, where, "a morechildren answer").get("json"), where, "'json'")
    if answer.get("errors"):
        raise ParseError(f"{where}: Reddit answered with errors: {str(answer['errors'])[:200]}")
    things = (answer.get("data") or {}).get("things") if isinstance(answer.get("data"), dict) else None
    if not isinstance(things, list):
        raise ParseError(f"{where}: expected 'json.data.things' (a list)")
    records = Records()
    return records, _walk_things(things, records)


def collect(ctx: CollectContext) -> CollectResult:
    sub = str(ctx.option("subreddit", "")).strip().strip("/").removeprefix("r/")
    if not SUBREDDIT_RE.match(sub):
        raise ConfigError(f"source {ctx.source.name!r}: 'subreddit' {sub!r} is not a subreddit name")
    base = ctx.source.url.rstrip("/")
    harvest = Harvest.start(ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    about_url = f"{base}/r/{sub}/about.json"
    try:
        harvest.add(parse_about(harvest.get_json(about_url, {"raw_json": 1}), where=about_url))
    except ApiError as exc:
        if exc.code not in UNAVAILABLE_REASONS:
            raise
        raise AccountUnavailable(f"{exc.url}: subreddit r/{sub} is {exc.code} ({exc.reason})") from exc
    posts: list[str] = []
    new_url = f"{base}/r/{sub}/new.json"

    def fetch(after: str | None) -> Page:
        data = harvest.get_json(
            new_url, {"limit": PAGE_SIZE, "raw_json": 1, **({"after": after} if after else {})}
        )
        records, times, next_after = parse_listing(data, where=new_url)
        harvest.add(records)
        posts.extend(i.external_id for i in records.items if i.kind == "post")
        return Page(times, next_after)

    walk_pages(harvest, fetch, since=since_time(ctx, watermark), what=f"r/{sub}/new")
    for post in threads_to_follow(ctx, harvest, posts, "comments"):
        _collect_thread(ctx, harvest, base, post)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _collect_thread(ctx: CollectContext, harvest: Harvest, base: str, post: str) -> None:
    """One post's comment tree, then up to ``max_more`` batches of its collapsed comments."""
    id36 = post.removeprefix("t3_")
    if not ID36_RE.match(id36):
        return
    url = f"{base}/comments/{id36}.json"
    data = harvest.get_thread(url, {"raw_json": 1, "sort": "new", "limit": 500, "depth": 10})
    if data is None:
        return
    records, stubs = parse_comments(data, where=url)
    harvest.add(records)
    pending = [child for stub in stubs for child in stub.children]
    more_url = f"{base}/api/morechildren.json"
    for _ in range(int(ctx.option("max_more", DEFAULT_MAX_MORE))):
        if not pending or harvest.full:
            break
        batch, pending = pending[:MORE_BATCH], pending[MORE_BATCH:]
        params = {
            "api_type": "json",
            "link_id": post,
            "children": ",".join(batch),
            "raw_json": 1,
            "sort": "new",
        }
        records, stubs = parse_morechildren(harvest.get_json(more_url, params), where=more_url)
        harvest.add(records)
        pending.extend(child for stub in stubs for child in stub.children if child not in batch)
    if pending:
        harvest.warn(f"{post}: {len(pending)} collapsed comments left unread (max_more)")
