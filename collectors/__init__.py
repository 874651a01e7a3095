"""Collectors: one small module per kind of source.

A collector is a plain function ``collect(ctx: CollectContext) ->
CollectResult``: where to ask (through ``ctx.client``, the shared HTTP
module), how to page, and how to turn each response into records. Parsing
lives in pure functions of bytes and headers so it can be tested on saved
inputs. Nothing here runs at import time: the registry below names modules
and functions as strings and imports them only when a source of that kind
is collected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from engage.errors import ConfigError

if TYPE_CHECKING:
    from collectors.base import CollectContext
    from collectors.records import CollectResult

# Options every kind accepts (types are checked on load).
COMMON_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "lookback_days": int,
    "max_items": int,
    "timeout": (int, float),
    "max_bytes": int,
    "requests_per_second": (int, float),
    "max_concurrency": int,
    "token_env": str,
    "conn_id": str,
    "description": str,
}


@dataclass(frozen=True)
class Kind:
    target: str  # "module:function"
    options: dict[str, type | tuple[type, ...]] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def load(self) -> Callable[[CollectContext], CollectResult]:
        module, func = self.target.split(":")
        return getattr(import_module(module), func)


# The CSS selectors an html_forum source may set (collectors.html_forum).
HTML_FORUM_SELECTORS = (
    "thread_link",
    "list_item",
    "list_replies",
    "list_views",
    "title",
    "post",
    "post_id",
    "post_number",
    "author",
    "author_title",
    "date",
    "body",
    "likes",
    "next_page",
)

KINDS: dict[str, Kind] = {
    "rss": Kind("collectors.feeds:collect"),
    "atom": Kind("collectors.feeds:collect"),
    "mastodon": Kind(
        "collectors.mastodon:collect",
        options={
            "account": str,
            "hashtag": str,
            "search": str,
            "max_pages": int,
            "max_threads": int,
            "backfill_days": int,
        },
    ),
    "bluesky": Kind(
        "collectors.bluesky:collect",
        options={"actor": str, "search": str, "max_pages": int, "max_threads": int, "backfill_days": int},
    ),
    "reddit": Kind(
        "collectors.reddit:collect",
        options={
            "subreddit": str,
            "max_pages": int,
            "max_threads": int,
            "max_more": int,
            "backfill_days": int,
        },
        required=("subreddit",),
    ),
    "hackernews": Kind(
        "collectors.hackernews:collect",
        options={
            "query": str,
            "domain": str,
            "tags": str,
            "list": str,
            "max_pages": int,
            "max_threads": int,
            "max_stories": int,
            "backfill_days": int,
        },
    ),
    "wordpress": Kind(
        "collectors.wordpress:collect",
        options={"max_pages": int, "max_threads": int, "backfill_days": int},
    ),
    "csv": Kind(
        "collectors.csv_files:collect",
        options={"format": str, "columns": dict, "date_format": str, "site": str, "account": str},
        required=("format",),
    ),
    "discourse": Kind(
        "collectors.discourse:collect",
        options={
            "category": str,
            "max_pages": int,
            "max_threads": int,
            "max_posts": int,
            "backfill_days": int,
        },
    ),
    "html_forum": Kind(
        "collectors.html_forum:collect",
        options={
            "preset": str,
            **dict.fromkeys(HTML_FORUM_SELECTORS, str),
            "date_attr": str,
            "date_format": (str, list),
            "timezone": str,
            "single_thread": bool,
            "max_pages": int,
            "max_threads": int,
        },
    ),
}


def validate_options(kind: str, options: dict[str, Any]) -> None:
    spec = KINDS[kind]
    allowed = {**COMMON_OPTIONS, **spec.options}
    for name in spec.required:
        if name not in options:
            raise ConfigError(f"field {name!r} is required for kind {kind!r}")
    for name, value in options.items():
        if name not in allowed:
            raise ConfigError(
                f"field {name!r} is not an option of kind {kind!r} (options: {', '.join(sorted(allowed))})"
            )
        if not isinstance(value, allowed[name]) or isinstance(value, bool) and allowed[name] is int:
            raise ConfigError(f"field {name!r} has the wrong type ({type(value).__name__})")


@cache
def collector_for(kind: str) -> Callable[[CollectContext], CollectResult]:
    return KINDS[kind].load()
