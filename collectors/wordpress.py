"""WordPress blogs: posts and comments through the REST API, feeds as a fallback.

The source's ``url`` is the blog's base URL (``https://blog.example.com``).
Each run:

1. ``GET {url}/wp-json/wp/v2/posts?orderby=modified&order=desc&modified_after=T&_embed=author``
   -- posts modified since ``T`` (the watermark or the lookback window),
   paged by ``page`` up to the ``X-WP-TotalPages`` header; the embedded users
   are the posts' authors.
2. ``GET {url}/wp-json/wp/v2/comments?post={id}`` for each post of the
   listing (at most ``max_threads``): its comments, and its comment count
   (the ``X-WP-Total`` header) as the ``comments`` observation.
3. ``GET {url}/wp-json/wp/v2/comments?after=T`` -- recent comments on any
   post (a comment does not change its post's modified date), paged like 1.

Comments link to their post (the thread) and to their parent comment
(``parent``; a top-level comment's parent is the post). Comment authors come
from ``author_name``/``author_url`` only: ``author_email`` and
``author_ip``, which an edit-context answer carries, are never read.
WordPress.com's ``like_count`` becomes a ``likes`` observation.

Fallback: when the REST API answers the first listing with 401, 403 or 404
(REST disabled or locked by a plugin), or with something that is not JSON
(an HTML page served as JSON), the run reads ``{url}/feed/`` (posts, with
``slash:comments`` as the ``comments`` observation) and
``{url}/comments/feed/`` (comments: their thread is the post whose link
they carry; their parent is unknown) with ``collectors.feeds``. A 429 or
5xx is not a fallback: it is retried, and still failing it fails the
source. Identity is the same in both modes: ``post:{id}`` and
``comment:{id}`` (read from the feeds' ``?p=`` and ``#comment-`` guids).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urldefrag

from collectors.base import CollectContext
from collectors.common import (
    API_ERROR_STATUSES,
    DEFAULT_MAX_THREADS,
    STATUS_WORDS,
    ApiError,
    Harvest,
    Page,
    Records,
    api_reason,
    clean_reason,
    fragment_text,
    new_watermark,
    nonblank,
    parse_api_time,
    read_watermark,
    require_list,
    since_time,
    walk_pages,
)
from collectors.feeds import parse_feed
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import FetchError, ParseError

PAGE_SIZE = 100
FALLBACK_STATUSES = (401, 403, 404)
COMMENT_TYPES = ("comment", "", None)
_POST_GUID = re.compile(r"[?&]p=(\d+)(?:&|$)")
_COMMENT_GUID = re.compile(r"#comment-(\d+)$")


class RestUnavailable(FetchError):
    """The blog's REST API is disabled or answers something else than JSON."""


def _wp_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return value.strip()
    return None


def post_id(value: Any) -> str | None:
    number = _wp_id(value)
    return f"post:{number}" if number else None


def comment_id(value: Any) -> str | None:
    number = _wp_id(value)
    return f"comment:{number}" if number else None


def _rendered(value: Any) -> str | None:
    """``{"rendered": html}`` (or a plain string) as readable text."""
    if isinstance(value, dict):
        value = value.get("rendered")
    return fragment_text(value)


def _time(obj: dict[str, Any], key: str) -> datetime | None:
    """``date_gmt``/``modified_gmt`` (UTC without an offset), else the local one."""
    return parse_api_time(obj.get(f"{key}_gmt")) or parse_api_time(obj.get(key))


def user_author(user: dict[str, Any]) -> AuthorRecord | None:
    """An author from a WordPress user (``_embedded.author``)."""
    number = _wp_id(user.get("id"))
    if number is None:
        return None
    return AuthorRecord(
        external_id=f"user:{number}",
        handle=clip(nonblank(user.get("slug")), MAX_TITLE),
        display_name=clip(nonblank(user.get("name")), MAX_TITLE),
        bio=clip(fragment_text(user.get("description")), MAX_TEXT),
        profile_url=clip(nonblank(user.get("link")) or nonblank(user.get("url")), 2_000),
    )


def comment_author(comment: dict[str, Any]) -> AuthorRecord | None:
    """The author of a comment from ``author``, ``author_name`` and ``author_url``
    only (never ``author_email`` or ``author_ip``). A registered user is
    ``user:{id}``; a guest is keyed by their URL, else their name."""
    name = nonblank(comment.get("author_name"))
    url = nonblank(comment.get("author_url"))
    number = _wp_id(comment.get("author"))
    if number:
        external_id = f"user:{number}"
    elif url or name:
        external_id = bounded_id(f"guest:{url or name}")
    else:
        return None
    return AuthorRecord(
        external_id=external_id,
        display_name=clip(name, MAX_TITLE),
        profile_url=clip(url, 2_000),
    )


def parse_posts(data: Any, *, where: str) -> Records:
    """Records from a ``/wp/v2/posts`` (or ``/pages``) answer."""
    records = Records()
    for post in require_list(data, where, "a list of posts"):
        if not isinstance(post, dict):
            continue
        item_id = post_id(post.get("id"))
        if item_id is None:
            continue
        author_id = None
        embedded = post.get("_embedded") if isinstance(post.get("_embedded"), dict) else {}
        for user in embedded.get("author") or []:
            author = user_author(user) if isinstance(user, dict) else None
            if author is not None:
                records.authors.append(author)
                author_id = author.external_id
                break
        if author_id is None and _wp_id(post.get("author")):
            author_id = f"user:{_wp_id(post.get('author'))}"
            records.authors.append(AuthorRecord(external_id=author_id))
        text = _rendered(post.get("content")) or _rendered(post.get("excerpt"))
        records.items.append(
            ItemRecord(
                external_id=item_id,
                kind="post",
                title=clip(_rendered(post.get("title")), MAX_TITLE),
                text=clip(text, MAX_TEXT),
                url=clip(nonblank(post.get("link")), 2_000),
                published_at=_time(post, "date"),
                author_external_id=author_id,
                thread_external_id=item_id,
            )
        )
        records.observe("item", item_id, "likes", post.get("like_count"))
    return records


def parse_comments(data: Any, *, where: str) -> Records:
    """Records from a ``/wp/v2/comments`` answer: approved comments only."""
    records = Records()
    for comment in require_list(data, where, "a list of comments"):
        if not isinstance(comment, dict):
            continue
        item_id = comment_id(comment.get("id"))
        thread = post_id(comment.get("post"))
        if item_id is None or comment.get("status", "approved") != "approved":
            continue
        if comment.get("type") not in COMMENT_TYPES:
            continue  # pingbacks and trackbacks
        author = comment_author(comment)
        if author is not None:
            records.authors.append(author)
        records.items.append(
            ItemRecord(
                external_id=item_id,
                kind="comment",
                text=clip(_rendered(comment.get("content")), MAX_TEXT),
                url=clip(nonblank(comment.get("link")), 2_000),
                published_at=_time(comment, "date"),
                author_external_id=author.external_id if author else None,
                thread_external_id=thread,
                parent_external_id=comment_id(comment.get("parent")) or thread,
            )
        )
        records.observe("item", item_id, "likes", comment.get("like_count"))
    return records


def _get(
    harvest: Harvest, url: str, params: dict[str, Any], *, first: bool = False
) -> tuple[Any, dict[str, str]]:
    """GET a REST listing: its JSON and headers. On the first request of a run,
    401/403/404 or a body that is not JSON raise ``RestUnavailable``."""
    resp = harvest.ctx.client.get(
        url, params=params, headers=harvest.headers, ok_statuses=(200, *API_ERROR_STATUSES)
    )
    harvest.requests += resp.attempts
    asked = resp.request_url or url
    if resp.status != 200:
        code, why = api_reason(resp.body)
        code = code or _wp_code(resp.body)
        why = f"{code}: {why}" if code and why and code not in why else why or code
        reason = STATUS_WORDS.get(resp.status, f"HTTP {resp.status}") + (f": {why}" if why else "")
        if first and resp.status in FALLBACK_STATUSES:
            raise RestUnavailable(asked, reason, status=resp.status)
        raise ApiError(asked, reason, resp.status, code)
    try:
        data = resp.json()
    except ParseError as exc:
        if first:
            raise RestUnavailable(asked, str(exc), status=resp.status) from None
        raise
    harvest.http_status = resp.status
    return data, {k.lower(): v for k, v in resp.headers.items()}


def _wp_code(body: bytes) -> str | None:
    """WordPress's own error name (``{"code": "rest_forbidden", ...}``), if any."""
    try:
        data = json.loads(body[:20_000])
    except ValueError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return clean_reason(code, 60) if isinstance(code, str) and code.strip() else None


def _header_int(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _listing(
    harvest: Harvest,
    url: str,
    params: dict[str, Any],
    since: datetime,
    what: str,
    *,
    parse: Any,
    time_key: str,
    first: bool = False,
) -> None:
    """A listing paged by ``page`` up to ``X-WP-TotalPages``, newest first."""

    def fetch(page: int | None) -> Page:
        number = page or 1
        data, headers = _get(
            harvest, url, {**params, "per_page": PAGE_SIZE, "page": number}, first=first and number == 1
        )
        harvest.add(parse(data, where=url))
        total = _header_int(headers, "x-wp-totalpages")
        more = number < total if total is not None else len(data) >= PAGE_SIZE
        times = [_time(x, time_key) for x in data if isinstance(x, dict)]
        return Page(times, number + 1 if more else None)

    walk_pages(harvest, fetch, since=since, what=what)


def collect(ctx: CollectContext) -> CollectResult:
    base = ctx.source.url.rstrip("/")
    harvest = Harvest.start(ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    since = since_time(ctx, watermark)
    try:
        _collect_rest(ctx, harvest, base, since)
    except RestUnavailable as exc:
        harvest.warn(
            f"REST API unavailable ({clean_reason(exc.reason)}): read {base}/feed/ and {base}/comments/feed/ instead"
        )
        _collect_feeds(harvest, base)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _collect_rest(ctx: CollectContext, harvest: Harvest, base: str, since: datetime) -> None:
    api = f"{base}/wp-json/wp/v2"
    after = since.strftime("%Y-%m-%dT%H:%M:%S")
    posts_params = {"orderby": "modified", "order": "desc", "modified_after": after, "_embed": "author"}
    _listing(
        harvest,
        f"{api}/posts",
        posts_params,
        since,
        "posts",
        parse=parse_posts,
        time_key="modified",
        first=True,
    )
    posts = [i for i in harvest.items if i.startswith("post:")]
    limit = int(ctx.option("max_threads", DEFAULT_MAX_THREADS))
    if len(posts) > limit:
        harvest.warn(f"{len(posts)} posts to count comments of, read the first max_threads={limit}")
    comments_url = f"{api}/comments"
    for item_id in posts[:limit]:
        number = item_id.removeprefix("post:")
        try:
            data, headers = _get(
                harvest,
                comments_url,
                {"post": number, "per_page": PAGE_SIZE, "orderby": "date_gmt", "order": "desc"},
            )
        except ApiError as exc:
            if exc.status not in (401, 403, 404, 410):
                raise
            harvest.warn(f"{exc.url}: comments not read, {exc.reason}")
            continue
        records = parse_comments(data, where=comments_url)
        total = _header_int(headers, "x-wp-total")
        records.observe("item", item_id, "comments", total if total is not None else len(records.items))
        harvest.add(records)
    recent = {"after": after, "orderby": "date_gmt", "order": "desc"}
    try:
        _listing(harvest, comments_url, recent, since, "comments", parse=parse_comments, time_key="date")
    except ApiError as exc:
        if exc.status not in FALLBACK_STATUSES:
            raise
        harvest.warn(f"{exc.url}: {exc.reason}; read {base}/comments/feed/ instead")
        harvest.add(
            feed_comments(_feed(harvest, f"{base}/comments/feed/"), posts_by_url(harvest.items.values()))
        )


def _feed(harvest: Harvest, url: str) -> CollectResult:
    resp = harvest.ctx.client.get(url, ok_statuses=(200,))
    harvest.requests += resp.attempts
    harvest.http_status = resp.status
    return parse_feed(resp.body, dict(resp.headers), url=resp.url)


def _feed_id(guid: str, pattern: re.Pattern[str], prefix: str) -> str:
    match = pattern.search(guid)
    return f"{prefix}:{match.group(1)}" if match else guid


def posts_by_url(items: Any) -> dict[str, str]:
    """Post ids by their link without fragment (to find a comment's post)."""
    return {urldefrag(i.url)[0].rstrip("/"): i.external_id for i in items if i.kind == "post" and i.url}


def _feed_authors(parsed: CollectResult) -> list[AuthorRecord]:
    """Feed authors without e-mail addresses (never stored for WordPress): one
    keyed by its e-mail is re-keyed by its name, and its items follow."""
    authors, renamed = [], {}
    for a in parsed.authors:
        external_id = a.external_id
        if a.email:
            external_id = bounded_id(a.display_name or "unknown")
            renamed[a.external_id] = external_id
        authors.append(
            AuthorRecord(external_id=external_id, display_name=a.display_name, profile_url=a.profile_url)
        )
    for item in parsed.items:
        if item.author_external_id in renamed:
            item.author_external_id = renamed[item.author_external_id]
    return authors


def feed_posts(parsed: CollectResult) -> Records:
    """A blog's posts feed as posts: ``post:{id}`` from the ``?p=`` guid, and
    ``slash:comments`` as the ``comments`` observation."""
    records = Records(authors=_feed_authors(parsed), warnings=list(parsed.warnings))
    ids = {}
    for item in parsed.items:
        new_id = _feed_id(item.external_id, _POST_GUID, "post")
        ids[item.external_id] = new_id
        item.external_id = item.thread_external_id = new_id
        item.kind = "post"
        records.items.append(item)
    for obs in parsed.observations:
        records.observe(
            obs.subject_type, ids.get(obs.subject_external_id, obs.subject_external_id), obs.metric, obs.value
        )
    return records


def feed_comments(parsed: CollectResult, posts: dict[str, str]) -> Records:
    """A comments feed as comments: ``comment:{id}`` from the ``#comment-`` guid;
    the thread is the post of the guid's ``?p=``, else the post whose link the
    comment carries (among ``posts``); the parent is unknown."""
    records = Records(authors=_feed_authors(parsed), warnings=list(parsed.warnings))
    for item in parsed.items:
        guid = item.external_id
        item.external_id = _feed_id(guid, _COMMENT_GUID, "comment")
        item.kind = "comment"
        item.title = None  # "By: Name" / "Comment on Post by Name"
        on_post = _POST_GUID.search(urldefrag(guid)[0])
        post_url = urldefrag(item.url or "")[0].rstrip("/")
        item.thread_external_id = f"post:{on_post.group(1)}" if on_post else posts.get(post_url)
        item.parent_external_id = None
        records.items.append(item)
    return records


def _collect_feeds(harvest: Harvest, base: str) -> None:
    posts = feed_posts(_feed(harvest, f"{base}/feed/"))
    harvest.add(posts)
    try:
        comments = _feed(harvest, f"{base}/comments/feed/")
    except FetchError as exc:
        if exc.status not in (401, 403, 404, 410):
            raise
        harvest.warn(f"{exc.url}: comments feed not read, {exc.reason}")
        return
    harvest.add(feed_comments(comments, posts_by_url(harvest.items.values())))
