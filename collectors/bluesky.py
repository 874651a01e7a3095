"""Bluesky, through the public AppView's XRPC API (no account needed).

The source's ``url`` is the AppView (``https://public.api.bsky.app``).
Options: ``actor`` (our handle or DID) and/or ``search`` (a query). Each run:

1. ``app.bsky.actor.getProfile?actor=`` -- followers, follows and posts
   counts (a daily snapshot). A suspended (``AccountTakedown``),
   deactivated or unknown account is an ``AccountUnavailable`` error.
2. ``app.bsky.feed.getAuthorFeed?actor=&filter=posts_with_replies`` -- the
   account's posts, replies and reposts (a repost yields the reposted post),
   newest first, paged with ``cursor``; each with its reply, repost, like
   and quote counts.
3. ``app.bsky.feed.searchPosts?q=&sort=latest`` (cursor paging; the public
   AppView may ask for a token for search).
4. ``app.bsky.feed.getPostThread?uri=`` for our posts of the lookback window
   that have replies or are replies: the whole thread, each post with its
   parent and the thread's root. Blocked and deleted posts in a thread are
   skipped.

Identity: a post's ``at://`` URI and an author's DID, which survive handle
changes. Paging stops as in ``collectors.common.walk_pages``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from collectors.base import CollectContext
from collectors.common import (
    AccountUnavailable,
    ApiError,
    Harvest,
    Page,
    Records,
    clean_reason,
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
THREAD_DEPTH = 10
POST_VIEW = "app.bsky.feed.defs#threadViewPost"
GONE_ACCOUNT_ERRORS = {
    "AccountTakedown": "suspended (taken down)",
    "AccountDeactivated": "deactivated",
    "AccountNotFound": "not found",
    "ActorNotFound": "not found",
}


def profile_author(profile: dict[str, Any]) -> AuthorRecord | None:
    did = nonblank(profile.get("did"))
    if did is None:
        return None
    handle = nonblank(profile.get("handle"))
    return AuthorRecord(
        external_id=bounded_id(did),
        handle=clip(handle, MAX_TITLE),
        display_name=clip(nonblank(profile.get("displayName")), MAX_TITLE),
        bio=clip(nonblank(profile.get("description")), MAX_TEXT),
        profile_url=f"https://bsky.app/profile/{quote(handle or did, safe=':.')}",
    )


def parse_profile(data: Any, *, where: str) -> Records:
    """A profile (``getProfile``): the author and its followers/following/posts counts."""
    author = profile_author(require_dict(data, where, "a profile"))
    if author is None:
        raise ParseError(f"{where}: the profile has no 'did'")
    records = Records(authors=[author])
    for metric, key in (
        ("followers", "followersCount"),
        ("following", "followsCount"),
        ("posts", "postsCount"),
    ):
        records.observe("account", author.external_id, metric, data.get(key))
    return records


def post_url(uri: str, handle: str | None) -> str | None:
    """The bsky.app address of ``at://did/app.bsky.feed.post/rkey``."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or parts[1] != "app.bsky.feed.post":
        return None
    return f"https://bsky.app/profile/{quote(handle or parts[0], safe=':.')}/post/{quote(parts[2], safe='')}"


def post_records(post: dict[str, Any], records: Records) -> str | None:
    """Add one post view to ``records``; its URI, or None without one."""
    uri = nonblank(post.get("uri"))
    if uri is None:
        return None
    uri = bounded_id(uri)
    record = post.get("record") if isinstance(post.get("record"), dict) else {}
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    root = nonblank((reply.get("root") or {}).get("uri")) if isinstance(reply.get("root"), dict) else None
    parent = (
        nonblank((reply.get("parent") or {}).get("uri")) if isinstance(reply.get("parent"), dict) else None
    )
    author = profile_author(post["author"]) if isinstance(post.get("author"), dict) else None
    if author is not None:
        records.authors.append(author)
    records.items.append(
        ItemRecord(
            external_id=uri,
            kind="reply" if parent else "post",
            text=clip(nonblank(record.get("text")), MAX_TEXT),
            url=post_url(uri, author.handle if author else None),
            published_at=parse_api_time(record.get("createdAt")) or parse_api_time(post.get("indexedAt")),
            author_external_id=author.external_id if author else None,
            thread_external_id=bounded_id(root) if root else uri,
            parent_external_id=bounded_id(parent) if parent else None,
        )
    )
    for metric, key in (
        ("replies", "replyCount"),
        ("reposts", "repostCount"),
        ("likes", "likeCount"),
        ("quotes", "quoteCount"),
    ):
        records.observe("item", uri, metric, post.get(key))
    return uri


def parse_feed(data: Any, *, where: str) -> tuple[Records, list[datetime | None], str | None]:
    """A feed page (``getAuthorFeed``): records, when each entry entered the
    feed (a repost: when it was reposted), and the next cursor."""
    data = require_dict(data, where, "a feed")
    if not isinstance(data.get("feed"), list):
        raise ParseError(f"{where}: expected a feed (an object with a 'feed' list)")
    records = Records()
    times: list[datetime | None] = []
    for entry in data["feed"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("post"), dict):
            continue
        post_records(entry["post"], records)
        reason = entry.get("reason") if isinstance(entry.get("reason"), dict) else {}
        record = entry["post"].get("record") if isinstance(entry["post"].get("record"), dict) else {}
        times.append(parse_api_time(reason.get("indexedAt")) or parse_api_time(record.get("createdAt")))
    return records, times, nonblank(data.get("cursor"))


def parse_posts(data: Any, *, where: str) -> tuple[Records, list[datetime | None], str | None]:
    """A list of post views (``searchPosts``, ``getPosts``) and the next cursor."""
    data = require_dict(data, where, "posts")
    if not isinstance(data.get("posts"), list):
        raise ParseError(f"{where}: expected posts (an object with a 'posts' list)")
    records = Records()
    for post in data["posts"]:
        if isinstance(post, dict):
            post_records(post, records)
    times = [i.published_at for i in records.items]
    return records, times, nonblank(data.get("cursor"))


def parse_thread(data: Any, *, where: str) -> Records:
    """Every post of a thread (``getPostThread``): the parents above it and the
    replies below, walked without recursion; blocked and deleted posts skipped."""
    thread = require_dict(data, where, "a thread").get("thread")
    if not isinstance(thread, dict):
        raise ParseError(f"{where}: expected a thread (an object with a 'thread')")
    records = Records()
    skipped = 0
    stack = [thread]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.get("$type", POST_VIEW) != POST_VIEW or not isinstance(node.get("post"), dict):
            skipped += 1
            continue
        post_records(node["post"], records)
        if isinstance(node.get("parent"), dict):
            stack.append(node["parent"])
        stack.extend(r for r in node.get("replies") or [] if isinstance(r, dict))
    if skipped:
        records.warnings.append(f"{where}: {skipped} blocked or deleted post(s) in the thread skipped")
    return records


def collect(ctx: CollectContext) -> CollectResult:
    actor, search = ctx.option("actor"), ctx.option("search")
    if not (actor or search):
        raise ConfigError(f"source {ctx.source.name!r}: kind 'bluesky' needs 'actor' or 'search'")
    xrpc = ctx.source.url.rstrip("/") + "/xrpc/"
    harvest = Harvest.start(ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    since = since_time(ctx, watermark)
    own: list[str] = []
    if actor:
        url = xrpc + "app.bsky.actor.getProfile"
        try:
            profile = parse_profile(harvest.get_json(url, {"actor": actor}), where=url)
        except ApiError as exc:
            gone = GONE_ACCOUNT_ERRORS.get(exc.code or "")
            if gone is None and "not found" not in exc.reason.lower():
                raise
            raise AccountUnavailable(
                f"{exc.url}: Bluesky account {clean_reason(actor)!r} is {gone or 'not found'} ({exc.reason})"
            ) from exc
        harvest.add(profile)
        did = profile.authors[0].external_id
        own = _pages(
            harvest,
            xrpc + "app.bsky.feed.getAuthorFeed",
            {"actor": did, "filter": "posts_with_replies"},
            parse_feed,
            since,
            "author feed",
            owner=did,
        )
    if search:
        _pages(
            harvest,
            xrpc + "app.bsky.feed.searchPosts",
            {"q": search, "sort": "latest"},
            parse_posts,
            since,
            f"search {search!r}",
        )
    _collect_threads(ctx, harvest, xrpc, own)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _pages(
    harvest: Harvest,
    url: str,
    params: dict[str, Any],
    parse: Any,
    since: datetime,
    what: str,
    owner: str | None = None,
) -> list[str]:
    """Cursor paging; the URIs of ``owner``'s own posts found."""
    own: list[str] = []

    def fetch(cursor: str | None) -> Page:
        data = harvest.get_json(url, {**params, "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})})
        records, times, next_cursor = parse(data, where=url)
        harvest.add(records)
        own.extend(i.external_id for i in records.items if owner and i.author_external_id == owner)
        return Page(times, next_cursor)

    walk_pages(harvest, fetch, since=since, what=what)
    return own


def _collect_threads(ctx: CollectContext, harvest: Harvest, xrpc: str, own: list[str]) -> None:
    url = xrpc + "app.bsky.feed.getPostThread"
    for uri in threads_to_follow(ctx, harvest, own, "replies"):
        data = harvest.get_thread(url, {"uri": uri, "depth": THREAD_DEPTH})
        if data is not None:
            harvest.add(parse_thread(data, where=url))
