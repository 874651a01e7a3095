"""Hacker News: stories and comments found by keyword or domain, with their trees.

Two APIs, chosen by the source's ``url`` and options:

- **Algolia search** (``url: https://hn.algolia.com/api/v1``) with ``query``
  (keywords) or ``domain`` (stories linking to a site, e.g. ``acme.example``):
  ``GET /search_by_date?query=&tags=story&numericFilters=created_at_i>T``
  newest first, paged with ``page`` (``tags`` option, default ``story``;
  ``comment`` finds comments). For the stories of the lookback window that
  have comments (at most ``max_threads``), ``GET /items/{id}`` gives the
  whole comment tree in one answer.
- **Firebase** (``url: https://hacker-news.firebaseio.com/v0``) with ``list``
  (``top``, ``new``, ``best``, ``ask``, ``show`` or ``job``):
  ``GET /{list}stories.json`` then ``GET /item/{id}.json`` for the first
  ``max_stories`` (default 30): the stories with score and comment count
  (comments are not walked: one request per comment).

Each story is observed with its ``score`` (points) and ``comments``.
Identity: HN's item ids; authors by user name. Deleted and dead items are
not collected (their replies are). Items link to their HN discussion page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.base import CollectContext
from collectors.common import (
    Harvest,
    Page,
    Records,
    fragment_text,
    new_watermark,
    nonblank,
    parse_api_time,
    read_watermark,
    require_dict,
    require_list,
    since_time,
    threads_to_follow,
    walk_pages,
)
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import ConfigError, ParseError

PAGE_SIZE = 100
LISTS = ("top", "new", "best", "ask", "show", "job")
DEFAULT_MAX_STORIES = 30
ITEM_TYPES = ("story", "comment", "poll", "pollopt", "job")
DISCUSSION = "https://news.ycombinator.com/item?id={}"


def _hn_id(value: Any) -> str | None:
    """An HN item id (digits only: it goes into URLs)."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return text if text.isdigit() and len(text) <= 12 else None


def _add(
    records: Records,
    *,
    item_id: str,
    is_comment: bool,
    author: str | None,
    title: str | None,
    html: str | None,
    created: Any,
    thread: str | None,
    parent: str | None,
    score: Any,
    comments: Any,
) -> None:
    if author:
        records.authors.append(
            AuthorRecord(
                external_id=bounded_id(author),
                handle=clip(author, MAX_TITLE),
                profile_url=f"https://news.ycombinator.com/user?id={author}" if author.isalnum() else None,
            )
        )
    records.items.append(
        ItemRecord(
            external_id=item_id,
            kind="comment" if is_comment else "post",
            title=clip(nonblank(title), MAX_TITLE),
            text=clip(fragment_text(html), MAX_TEXT),
            url=DISCUSSION.format(item_id),
            published_at=parse_api_time(created),
            author_external_id=bounded_id(author) if author else None,
            thread_external_id=thread if is_comment else item_id,
            parent_external_id=parent if is_comment else None,
        )
    )
    records.observe("item", item_id, "score", score)
    if not is_comment:
        records.observe("item", item_id, "comments", comments)


def parse_search(data: Any, *, where: str) -> tuple[Records, list[datetime | None], int | None]:
    """An Algolia search answer: records, their times and the next page number."""
    data = require_dict(data, where, "search results")
    hits = require_list(data.get("hits"), where, "'hits'")
    records = Records()
    times: list[datetime | None] = []
    for hit in hits:
        item_id = _hn_id(hit.get("objectID")) if isinstance(hit, dict) else None
        if item_id is None:
            continue
        is_comment = "comment" in (hit.get("_tags") or []) or hit.get("comment_text") is not None
        _add(
            records,
            item_id=item_id,
            is_comment=is_comment,
            author=nonblank(hit.get("author")),
            title=None if is_comment else hit.get("title"),
            html=hit.get("comment_text") if is_comment else hit.get("story_text"),
            created=hit.get("created_at_i") or hit.get("created_at"),
            thread=_hn_id(hit.get("story_id")),
            parent=_hn_id(hit.get("parent_id")),
            score=hit.get("points"),
            comments=hit.get("num_comments"),
        )
        times.append(parse_api_time(hit.get("created_at_i") or hit.get("created_at")))
    page, pages = data.get("page"), data.get("nbPages")
    more = isinstance(page, int) and isinstance(pages, int) and page + 1 < pages
    return records, times, page + 1 if more else None


def parse_item_tree(data: Any, *, where: str) -> Records:
    """An item and everything below it: an Algolia ``/items/{id}`` tree (nested
    ``children``) or a Firebase ``/item/{id}.json`` item (one item, ``kids`` ids)."""
    root = require_dict(data, where, "an item")
    if root.get("type") not in ITEM_TYPES or _hn_id(root.get("id")) is None:
        raise ParseError(
            f"{where}: expected a Hacker News item (with an id and a type), got keys {sorted(root)[:8]}"
        )
    records = Records()
    root_id = _hn_id(root.get("id"))
    stack: list[tuple[dict[str, Any], str | None]] = [(root, None)]
    while stack:
        node, thread = stack.pop()
        item_id = _hn_id(node.get("id"))
        if item_id is None:
            continue
        author = nonblank(node.get("author") or node.get("by"))
        is_comment = node.get("type") == "comment"
        story = thread or _hn_id(node.get("story_id")) or (None if is_comment else item_id)
        alive = (
            not node.get("deleted")
            and not node.get("dead")
            and (author or node.get("text") or node.get("title"))
        )
        if alive:
            _add(
                records,
                item_id=item_id,
                is_comment=is_comment,
                author=author,
                title=node.get("title"),
                html=node.get("text"),
                created=node.get("created_at_i") or node.get("time") or node.get("created_at"),
                thread=story,
                parent=_hn_id(node.get("parent_id") or node.get("parent")),
                score=node.get("points") if "points" in node else node.get("score"),
                comments=node.get("descendants"),
            )
        children = node.get("children") if isinstance(node.get("children"), list) else []
        stack.extend((child, story or root_id) for child in reversed(children) if isinstance(child, dict))
    return records


def parse_story_ids(data: Any, *, where: str) -> list[str]:
    """A Firebase story list (``/beststories.json``): item ids, best first."""
    ids = [_hn_id(value) for value in require_list(data, where, "a list of item ids")]
    return [i for i in ids if i is not None]


def collect(ctx: CollectContext) -> CollectResult:
    query, domain, story_list = ctx.option("query"), ctx.option("domain"), ctx.option("list")
    if bool(story_list) == bool(query or domain):
        raise ConfigError(
            f"source {ctx.source.name!r}: kind 'hackernews' needs 'query' or 'domain' (Algolia search), "
            "or 'list' (Firebase), not both"
        )
    base = ctx.source.url.rstrip("/")
    harvest = Harvest.start(ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    if story_list:
        _collect_list(ctx, harvest, base, str(story_list))
    else:
        _collect_search(ctx, harvest, base, str(query or domain), by_domain=not query, watermark=watermark)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _collect_search(
    ctx: CollectContext, harvest: Harvest, base: str, text: str, *, by_domain: bool, watermark: dict[str, Any]
) -> None:
    since = since_time(ctx, watermark)
    url = f"{base}/search_by_date"
    params: dict[str, Any] = {
        "query": text,
        "tags": ctx.option("tags", "story"),
        "hitsPerPage": PAGE_SIZE,
        "numericFilters": f"created_at_i>{int(since.timestamp())}",
    }
    if by_domain:
        params["restrictSearchableAttributes"] = "url"
    stories: list[str] = []

    def fetch(page: int | None) -> Page:
        records, times, next_page = parse_search(
            harvest.get_json(url, {**params, "page": page or 0}), where=url
        )
        harvest.add(records)
        stories.extend(i.external_id for i in records.items if i.kind == "post")
        return Page(times, next_page)

    walk_pages(harvest, fetch, since=since, what=f"search {text!r}")
    for story in threads_to_follow(ctx, harvest, stories, "comments"):
        tree_url = f"{base}/items/{story}"
        data = harvest.get_thread(tree_url)
        if data is not None:
            harvest.add(parse_item_tree(data, where=tree_url))


def _collect_list(ctx: CollectContext, harvest: Harvest, base: str, story_list: str) -> None:
    if story_list not in LISTS:
        raise ConfigError(f"source {ctx.source.name!r}: 'list' must be one of {', '.join(LISTS)}")
    url = f"{base}/{story_list}stories.json"
    ids = parse_story_ids(harvest.get_json(url), where=url)
    for item_id in ids[: int(ctx.option("max_stories", DEFAULT_MAX_STORIES))]:
        item_url = f"{base}/item/{item_id}.json"
        data = harvest.get_json(item_url)
        if data is None:  # Firebase answers null for an id it does not know
            harvest.warn(f"{item_url}: no such item")
            continue
        harvest.add(parse_item_tree(data, where=item_url))
