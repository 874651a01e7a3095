"""Discourse forums, through their JSON API (every Discourse page has one).

The source's ``url`` is the forum (``https://meta.discourse.org``). Options:
``category`` (``slug`` or ``slug/id``: that category's topics instead of
the whole forum), ``max_pages``, ``max_threads`` (topics fetched per run),
``max_posts`` (posts read per topic, the newest), ``backfill_days``, plus the
common options; ``token_env`` / ``conn_id`` give a user API key (sent as
``User-Api-Key``) for forums that need a login. Each run:

1. ``GET /latest.json`` (or ``/c/{slug}/{id}/l/latest.json``): topics by
   last activity, with ``users[]``; paged with ``?page=N`` while the answer
   has ``topic_list.more_topics_url``. Paging stops at the first page whose
   topics (pinned ones aside) were last bumped before the watermark or the
   lookback window, or at ``max_pages``.
2. For each listed topic that is new or changed since the last run (its
   ``last_posted_at`` or ``posts_count`` differ from what the watermark
   remembers) or was active inside the lookback window (so its counts are
   re-observed): ``GET /t/{id}.json``, whose ``post_stream`` holds the first
   posts and ``stream`` (every post id); the rest are fetched with
   ``GET /t/{id}/posts.json?post_ids[]=...`` in chunks of ``CHUNK``.

Items: the first post of a topic is a ``post`` titled with the topic title,
the others ``reply``; the thread is the topic id, the parent the post that
``reply_to_post_number`` names (else the first post). Identity: Discourse's
post id and user id (the username when an old answer has no id). A topic
deleted or made private between the listing and its fetch (403, 404, 410)
is skipped with a warning; a private or unknown category fails the source
with an error naming it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from collectors.base import CollectContext
from collectors.common import (
    AccountUnavailable,
    ApiError,
    Harvest,
    Page,
    Records,
    api_token,
    clean_reason,
    count,
    fragment_text,
    new_watermark,
    nonblank,
    parse_api_time,
    read_watermark,
    require_dict,
    require_list,
    since_time,
    walk_pages,
)
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import ConfigError

CHUNK = 20  # post ids per /t/{id}/posts.json request (Discourse's page size)
DEFAULT_MAX_POSTS = 200
DEFAULT_MAX_THREADS = 25
# Topics remembered in the watermark (their last post time and post count).
MAX_REMEMBERED = 1_000
LIKE_ACTION = 2  # actions_summary id of a like
SKIPPED_STATUSES = (403, 404, 410)


def _id(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return bounded_id(str(value))
    return None


def listing_path(category: str | None) -> str:
    """``/latest.json``, or a category's latest topics (``slug`` or ``slug/id``)."""
    if not category:
        return "/latest.json"
    parts = [quote(p, safe="") for p in str(category).strip("/").split("/") if p]
    if not parts or len(parts) > 2:
        raise ConfigError(
            f"option 'category' must be 'slug' or 'slug/id', got {clean_reason(category, 80)!r}"
        )
    return "/c/" + "/".join(parts) + "/l/latest.json"


def post_author(post: dict[str, Any], base: str) -> AuthorRecord | None:
    """The author of a post (or a ``users[]`` entry) with its title and profile URL."""
    username = nonblank(post.get("username"))
    author_id = _id(post.get("user_id") if "user_id" in post else post.get("id")) or (
        bounded_id(username) if username else None
    )
    if author_id is None:
        return None
    name = nonblank(post.get("name")) or nonblank(post.get("display_username"))
    return AuthorRecord(
        external_id=author_id,
        handle=clip(username, MAX_TITLE),
        display_name=clip(name, MAX_TITLE),
        title=clip(nonblank(post.get("user_title")) or nonblank(post.get("title")), MAX_TITLE),
        profile_url=clip(f"{base}/u/{quote(username, safe='')}", 2_000) if username else None,
    )


def _likes(post: dict[str, Any]) -> int | None:
    likes = count(post.get("like_count"))
    if likes is not None:
        return likes
    for action in post.get("actions_summary") or []:
        if isinstance(action, dict) and action.get("id") == LIKE_ACTION:
            return count(action.get("count"))
    return None


def parse_posts(
    posts: list[Any],
    *,
    base: str,
    topic: dict[str, Any],
    numbers: dict[int, str],
    where: str,
) -> Records:
    """Records from the posts of one topic. ``numbers`` maps post numbers to
    post ids for the whole topic (filled here too), to link replies to parents."""
    records = Records()
    topic_id = _id(topic.get("id"))
    slug = nonblank(topic.get("slug")) or "topic"
    title = clip(nonblank(topic.get("title")) or fragment_text(topic.get("fancy_title")), MAX_TITLE)
    dicts = [p for p in require_list(posts, where, "a list of posts") if isinstance(p, dict)]
    for post in dicts:
        number = count(post.get("post_number"))
        if number is not None and _id(post.get("id")):
            numbers[number] = str(_id(post.get("id")))
    first = numbers.get(1)
    for post in dicts:
        post_id = _id(post.get("id"))
        if post_id is None or post.get("deleted_at") or post.get("hidden") and not post.get("cooked"):
            continue
        thread = topic_id or _id(post.get("topic_id"))
        number = count(post.get("post_number"))
        is_first = number == 1
        reply_to = count(post.get("reply_to_post_number"))
        parent = None if is_first else numbers.get(reply_to) if reply_to else first
        author = post_author(post, base)
        if author is not None:
            records.authors.append(author)
        post_slug = nonblank(post.get("topic_slug")) or slug
        records.items.append(
            ItemRecord(
                external_id=post_id,
                kind="post" if is_first else "reply",
                title=title if is_first else None,
                text=clip(fragment_text(post.get("cooked")) or nonblank(post.get("raw")), MAX_TEXT),
                url=clip(f"{base}/t/{quote(post_slug, safe='')}/{thread}/{number}", 2_000)
                if thread and number
                else None,
                published_at=parse_api_time(post.get("created_at")),
                author_external_id=author.external_id if author else None,
                thread_external_id=thread,
                parent_external_id=parent if parent != post_id else None,
            )
        )
        records.observe("item", post_id, "likes", _likes(post))
        records.observe("item", post_id, "reads", post.get("reads"))
        if is_first:
            posts_count = count(topic.get("posts_count"))
            records.observe("item", post_id, "replies", posts_count - 1 if posts_count else None)
            records.observe("item", post_id, "views", topic.get("views"))
        else:
            records.observe("item", post_id, "replies", post.get("reply_count"))
    return records


def parse_topic(
    data: Any, *, base: str, where: str
) -> tuple[Records, list[str], dict[int, str], dict[str, Any]]:
    """A ``/t/{id}.json`` answer: its records, the ids of every post in the
    stream, the post-number map so far, and the topic itself."""
    topic = require_dict(data, where, "a topic")
    stream = require_dict(topic.get("post_stream"), where, "a topic's post_stream")
    numbers: dict[int, str] = {}
    records = parse_posts(stream.get("posts") or [], base=base, topic=topic, numbers=numbers, where=where)
    ids = [str(i) for i in stream.get("stream") or [] if _id(i)]
    return records, ids, numbers, topic


def parse_listing(data: Any, *, base: str, where: str) -> tuple[list[dict[str, Any]], Records, int | None]:
    """A topic list (``/latest.json``): its topics, the authors of ``users[]``,
    and the next page number from ``more_topics_url`` (None on the last page)."""
    data = require_dict(data, where, "a topic list")
    topic_list = require_dict(data.get("topic_list"), where, "topic_list")
    topics = [t for t in require_list(topic_list.get("topics") or [], where, "topics") if isinstance(t, dict)]
    records = Records()
    for user in data.get("users") or []:
        if isinstance(user, dict):
            author = post_author(user, base)
            if author is not None:
                records.authors.append(author)
    next_page = None
    more = nonblank(topic_list.get("more_topics_url"))
    if more:
        pages = parse_qs(urlsplit(more).query).get("page")
        if pages and pages[0].isdigit():
            next_page = int(pages[0])
    return topics, records, next_page


def _activity(topic: dict[str, Any]) -> datetime | None:
    return parse_api_time(topic.get("last_posted_at")) or parse_api_time(topic.get("bumped_at"))


def _state(topic: dict[str, Any]) -> list[Any]:
    return [count(topic.get("posts_count")), topic.get("last_posted_at")]


def collect(ctx: CollectContext) -> CollectResult:
    base = ctx.source.url.rstrip("/")
    try:
        path = listing_path(ctx.option("category"))
    except ConfigError as exc:
        raise ConfigError(f"source {ctx.source.name!r}: {exc}") from None
    # A Discourse user API key goes in its own header (Discourse ignores bearer tokens).
    token = api_token(ctx)
    harvest = Harvest(
        ctx=ctx, headers={"Accept": "application/json", **({"User-Api-Key": token} if token else {})}
    )
    watermark = read_watermark(ctx, harvest.warnings)
    since = since_time(ctx, watermark)
    known = watermark.get("topics") if isinstance(watermark.get("topics"), dict) else {}
    listed: dict[str, dict[str, Any]] = {}

    def fetch(page: int | None) -> Page:
        url = base + path
        try:
            data = harvest.get_json(url, {"page": page} if page else None)
        except ApiError as exc:
            if exc.status in (403, 404) and ctx.option("category"):
                raise AccountUnavailable(
                    f"source {ctx.source.name!r}: category {clean_reason(ctx.option('category'), 80)!r} "
                    f"is private or does not exist ({exc.reason}; {exc.url})"
                ) from None
            raise
        topics, records, next_page = parse_listing(data, base=base, where=url)
        harvest.add(records)
        for topic in topics:
            topic_id = _id(topic.get("id"))
            if topic_id and topic_id not in listed:
                listed[topic_id] = topic
        times = [_activity(t) for t in topics if not t.get("pinned")]
        return Page(times or [None] * len(topics), next_page)

    walk_pages(harvest, fetch, since=since, what=f"{ctx.source.name}: {path}")
    start = since
    wanted = [
        topic_id
        for topic_id, topic in listed.items()
        if (_activity(topic) or start) >= start or (topic_id in known and known[topic_id] != _state(topic))
    ]
    limit = int(ctx.option("max_threads", DEFAULT_MAX_THREADS))
    if len(wanted) > limit:
        harvest.warn(f"{len(wanted)} topics to fetch, fetched the first max_threads={limit}")
    fetched = {}
    for topic_id in wanted[:limit]:
        if harvest.full:
            break
        if _collect_topic(ctx, harvest, base, topic_id):
            fetched[topic_id] = _state(listed[topic_id])
    remembered = {**known, **fetched}
    topics_state = dict(list(remembered.items())[-MAX_REMEMBERED:])
    return harvest.result(new_watermark(watermark, harvest.items.values(), topics=topics_state))


def _get_topic_json(harvest: Harvest, url: str, params: dict[str, Any] | None = None) -> Any:
    """A topic's JSON; one deleted or made private since the listing is skipped."""
    try:
        return harvest.get_json(url, params)
    except ApiError as exc:
        if exc.status not in SKIPPED_STATUSES:
            raise
        harvest.warn(f"{exc.url}: topic skipped, {exc.reason}")
        return None


def _collect_topic(ctx: CollectContext, harvest: Harvest, base: str, topic_id: str) -> bool:
    url = f"{base}/t/{quote(topic_id, safe='')}.json"
    data = _get_topic_json(harvest, url)
    if data is None:
        return False
    records, stream, numbers, topic = parse_topic(data, base=base, where=url)
    harvest.add(records)
    have = {i.external_id for i in records.items}
    max_posts = int(ctx.option("max_posts", DEFAULT_MAX_POSTS))
    missing = [i for i in stream if i not in have]
    room = max(0, max_posts - len(have))
    if len(missing) > room:
        harvest.warn(f"{url}: {len(missing)} more posts, read the newest max_posts={max_posts}")
        missing = missing[len(missing) - room :] if room else []
    posts_url = f"{base}/t/{quote(topic_id, safe='')}/posts.json"
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        more = _get_topic_json(harvest, posts_url, {"post_ids[]": chunk})
        if more is None:
            break
        stream_part = require_dict(
            require_dict(more, posts_url, "posts").get("post_stream"), posts_url, "post_stream"
        )
        harvest.add(
            parse_posts(
                stream_part.get("posts") or [], base=base, topic=topic, numbers=numbers, where=posts_url
            )
        )
    return True
