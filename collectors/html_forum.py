"""Forums without an API (phpBB, XenForo, vBulletin, Discourse's crawler pages,
and any other board), read from their HTML with CSS selectors.

The source's ``url`` is a thread-list page (a board, a sub-forum), or a
single thread with ``single_thread: true``. Which elements hold what comes
from ``preset`` (``phpbb``, ``xenforo``, ``vbulletin``, ``discourse``) and/or
from selector options, which override the preset's entries (``SELECTORS``).
Each run:

1. the thread list, following ``next_page`` up to ``max_pages`` pages: the
   links of ``thread_link`` (same host only), with the reply and view counts
   of ``list_replies`` / ``list_views`` inside each ``list_item`` row;
2. each thread (at most ``max_threads``), following ``next_page`` up to
   ``max_pages`` pages: every ``post`` element with its id, author, author
   title, date, body and likes.

Parsing is a pure function of the page bytes and headers (``parse_thread_page``,
``parse_thread_list``). A required selector that matches nothing (``thread_link``
on a list page, ``post`` on a thread page, ``body`` in a post) raises a
``ParseError`` naming the page and the selector: a changed theme is an error,
never an empty result.

Pages are decoded by the HTTP charset, else ``<meta charset>``, else
BeautifulSoup's detection. Dates (``date`` element; its ``date_attr``, else
``datetime`` / ``data-time`` / ``content`` / ``title``, else its text): ISO
8601, Unix epochs, the ``date_format`` strptime formats, then
``DATE_FORMATS``; German month names are read as English ones, and
"Today"/"Heute", "Yesterday"/"Gestern" count from the run date. Dates
without an offset are in ``timezone`` (IANA name, default UTC).

Identity: the forum's post id (``post_id``: ``@attr`` of the post element,
``selector@attr`` or ``selector`` inside it, e.g. ``p453``, ``post-53504``),
else the thread and the post number, else a hash of the thread URL, author,
date and body. A thread is its first page's URL without fragment and session
parameters. robots.txt is honoured for this kind (``collectors.politeness``).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, Tag
from soupsieve import SelectorSyntaxError

from collectors import HTML_FORUM_SELECTORS
from collectors.base import CollectContext
from collectors.common import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_THREADS,
    Harvest,
    Records,
    clean_reason,
    fragment_text,
    new_watermark,
    read_watermark,
)
from collectors.politeness import RobotsDisallowed
from collectors.records import MAX_TEXT, MAX_TITLE, AuthorRecord, CollectResult, ItemRecord, bounded_id, clip
from engage.errors import ConfigError, FetchError, ParseError

# Selector sets of common forum software (checked against real pages in the tests;
# the thread-list entries follow the software's default themes).
PRESETS: dict[str, dict[str, str]] = {
    "phpbb": {
        "thread_link": "a.topictitle",
        "list_item": "li.row",
        "list_replies": "dd.posts",
        "list_views": "dd.views",
        "title": "h2.topic-title, h2",
        "post": "div.post",
        "post_id": "@id",
        "author": "dl.postprofile a.username, dl.postprofile a.username-coloured, dl.postprofile span.username",
        "author_title": "dd.profile-rank",
        "date": "p.author",
        "body": "div.content",
        "next_page": "a[rel=next], li.next a",
    },
    "xenforo": {
        "thread_link": ".structItem-title a[href*='/threads/']",
        "list_item": ".structItem--thread",
        "list_replies": ".structItem-cell--meta dl:first-child dd",
        "list_views": ".structItem-cell--meta dl:last-child dd",
        "title": "h1.p-title-value",
        "post": "article.message--post",
        "post_id": "@data-content",
        "post_number": ".message-attribution-opposite a[href*='/post-']",
        "author": ".message-name",
        "author_title": ".userTitle",
        "date": ".message-attribution time",
        "body": ".message-body .bbWrapper",
        "likes": ".reactionsBar",
        "next_page": "a.pageNav-jump--next",
    },
    "vbulletin": {
        "thread_link": "a.title[id^=thread_title_], a[id^=thread_title_]",
        "list_item": "li.threadbit, tr[id^=vbpostrow]",
        "list_replies": "ul.threadstats li:first-child a",
        "list_views": "ul.threadstats li:nth-of-type(2)",
        "title": "span.threadtitle, h1",
        "post": "li.postcontainer, table[id^=post]",
        "post_id": "@id",
        "post_number": "a.postcounter, a[id^=postcount]",
        "author": ".username, a.bigusername",
        "author_title": ".usertitle",
        "date": "span.date, .postdate, dl.userstats dd",
        "body": "[id^=post_message_]",
        "next_page": "a[rel=next]",
    },
    "discourse": {
        "thread_link": "a.title.raw-link, td.main-link a.title",
        "list_item": "tr.topic-list-item",
        "list_replies": "td.replies .posts",
        "list_views": "td.views .views",
        "title": "#topic-title h1, h1",
        "post": "div.crawler-post",
        "post_number": "[itemprop=position]",
        "author": ".creator [itemprop=name], .creator a",
        "date": "[itemprop=datePublished], time.post-time",
        "body": "[itemprop=articleBody], div.post",
        "likes": "[itemprop=userInteractionCount]",
        "next_page": "a[rel=next]",
    },
}
# Text dates tried after the configured ``date_format`` (strptime, C locale).
DATE_FORMATS = (
    "%a %b %d, %Y %I:%M %p",  # phpBB: Mon Jan 04, 2021 5:12 pm
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y at %I:%M %p",  # XenForo titles: Sep 18, 2020 at 8:56 AM
    "%B %d, %Y, %I:%M%p",  # Discourse: June 19, 2015, 6:45am
    "%d.%m.%Y, %H:%M",  # phpBB / vBulletin (German boards): 04.01.2021, 17:12
    "%d.%m.%Y %H:%M",
    "%d. %B %Y um %H:%M",  # XenForo (German): 21. Januar 2022 um 12:25
    "%d. %B %Y, %H:%M",
    "%d. %b %Y, %H:%M",  # 12. Mär 2021, 10:00
    "%d %b %Y, %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d %B %Y %H:%M",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d. %B %Y",
    "%d.%m.%Y",
    "%Y-%m-%d",
)
# German month names (full and abbreviated) read as English ones for %B / %b.
GERMAN_MONTHS = {
    "januar": "January", "jänner": "January", "februar": "February", "märz": "March", "maerz": "March",
    "april": "April", "mai": "May", "juni": "June", "juli": "July", "august": "August",
    "september": "September", "oktober": "October", "november": "November", "dezember": "December",
    "jan": "Jan", "feb": "Feb", "mär": "Mar", "mrz": "Mar", "apr": "Apr", "jun": "Jun", "jul": "Jul",
    "aug": "Aug", "sep": "Sep", "sept": "Sep", "okt": "Oct", "nov": "Nov", "dez": "Dec",
}  # fmt: skip
_MONTH_RE = re.compile(
    r"\b(" + "|".join(sorted(GERMAN_MONTHS, key=len, reverse=True)) + r")\b\.?", re.IGNORECASE
)
RELATIVE_DAYS = {"today": 0, "heute": 0, "yesterday": 1, "gestern": 1}
_RELATIVE_RE = re.compile(r"\b(today|heute|yesterday|gestern)\b", re.IGNORECASE)
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?", re.IGNORECASE)
_DIRECTIVES = {
    "d": r"\d{1,2}", "m": r"\d{1,2}", "y": r"\d{2}", "Y": r"\d{4}", "H": r"\d{1,2}", "I": r"\d{1,2}",
    "M": r"\d{2}", "S": r"\d{2}", "p": r"[AaPp][Mm]", "b": r"[A-Za-z]{3}", "B": r"[A-Za-z]{3,9}",
    "a": r"[A-Za-z]{2,3}", "A": r"[A-Za-z]{5,9}", "z": r"(?:Z|[+-]\d{2}:?\d{2})", "%": "%",
}  # fmt: skip
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
DATE_ATTRS = ("datetime", "data-time", "content", "title")
SESSION_PARAMS = frozenset({"sid", "s", "phpsessid", "sessionid", "session", "sessid"})
_INT_RE = re.compile(r"\d[\d.,']*")
MAX_DATE_TEXT = 200


def _parser() -> str:
    try:
        import lxml  # noqa: F401

        return "lxml"
    except ImportError:  # pragma: no cover - lxml is a dependency
        return "html.parser"


@dataclass(frozen=True)
class ForumSettings:
    """The source's selectors (preset + overrides) and date settings."""

    selectors: dict[str, str]
    date_attr: str | None = None
    date_formats: tuple[str, ...] = ()
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ForumSettings:
        preset = options.get("preset")
        if preset is not None and preset not in PRESETS:
            raise ConfigError(
                f"option 'preset' must be one of {', '.join(PRESETS)}, got {clean_reason(preset, 40)!r}"
            )
        selectors = dict(PRESETS.get(preset, {})) if preset else {}
        selectors.update({k: str(options[k]) for k in HTML_FORUM_SELECTORS if options.get(k)})
        for key in ("post", "body"):
            if not selectors.get(key):
                raise ConfigError(f"option {key!r} (a CSS selector) is required when no 'preset' gives it")
        for key, value in selectors.items():
            css = value if key != "post_id" else value.partition("@")[0]
            if css:
                try:
                    BeautifulSoup("", "html.parser").select(css)
                except SelectorSyntaxError as exc:
                    raise ConfigError(
                        f"option {key!r}: {clean_reason(value, 80)!r} is not a CSS selector: {exc}"
                    ) from None
        formats = options.get("date_format") or ()
        formats = (formats,) if isinstance(formats, str) else tuple(str(f) for f in formats)
        name = str(options.get("timezone") or "UTC")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"option 'timezone': {clean_reason(name, 60)!r} is not an IANA time zone"
            ) from None
        return cls(
            selectors=selectors, date_attr=options.get("date_attr"), date_formats=formats, timezone=zone
        )


# --- pages ------------------------------------------------------------------


def _charset(headers: Any) -> str | None:
    content_type = (headers or {}).get("Content-Type") or ""
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def soup_of(body: bytes, headers: Any = None) -> BeautifulSoup:
    """The page parsed, decoded by the HTTP charset, else <meta charset>, else detection."""
    charset = _charset(headers)
    markup: str | bytes = body
    if charset:
        try:
            markup = body.decode(charset, errors="replace")
        except LookupError:
            markup = body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        return BeautifulSoup(markup, _parser())


def normalise_url(url: str) -> str:
    """A URL without fragment and session parameters (phpBB ``sid``, vBulletin ``s``)."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SESSION_PARAMS
    ]
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", urlencode(query), ""))


def _same_host(url: str, base: str) -> bool:
    return (
        urlsplit(url).scheme in ("http", "https")
        and urlsplit(url).netloc.lower() == urlsplit(base).netloc.lower()
    )


def _text(element: Tag | None) -> str | None:
    if element is None:
        return None
    return (
        fragment_text(element.decode_contents())
        if element.find(True)
        else (element.get_text(" ", strip=True) or None)
    )


def _line(element: Tag | None) -> str | None:
    """An element's text on one line (names, titles)."""
    if element is None:
        return None
    return " ".join(element.get_text(" ", strip=True).split()) or None


def _number(element: Tag | None) -> int | None:
    """A count shown in an element: its ``content`` attribute, else the last number
    in its text (``Reactions: A, B and 1 other person x 4`` is 4; ``1.234`` is 1234)."""
    if element is None:
        return None
    content = element.get("content")
    text = content if isinstance(content, str) and content.strip() else element.get_text(" ", strip=True)
    found = _INT_RE.findall(text or "")
    if not found:
        return None
    digits = re.sub(r"\D", "", found[-1])
    return int(digits) if digits and len(digits) < 13 else None


def _next_page(soup: BeautifulSoup, settings: ForumSettings, page_url: str) -> str | None:
    selector = settings.selectors.get("next_page")
    if not selector:
        return None
    for link in soup.select(selector):
        href = link.get("href")
        if isinstance(href, str) and href.strip() and not href.startswith(("#", "javascript:")):
            return urljoin(page_url, href.strip())
    return None


# --- dates ------------------------------------------------------------------


def _format_regex(fmt: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and i + 1 < len(fmt):
            out.append(_DIRECTIVES.get(fmt[i + 1], ".+?"))
            i += 2
            continue
        out.append(r"\s+" if char.isspace() else re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE)


def _english(text: str) -> str:
    text = " ".join(text.replace("\xa0", " ").split())
    return _MONTH_RE.sub(lambda m: GERMAN_MONTHS[m.group(1).lower()], text)


def parse_forum_date(
    value: str, *, formats: tuple[str, ...] = (), zone: ZoneInfo, run_date: date
) -> datetime | None:
    """A date as forums print it (see the module docstring), as aware UTC."""
    value = value.strip()[:MAX_DATE_TEXT]
    if not value:
        return None
    if value.isdigit() and 9 <= len(value) <= 11:
        return datetime.fromtimestamp(int(value), tz=UTC)
    if _ISO_RE.match(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)
    text = _english(value)
    relative = _RELATIVE_RE.search(text)
    if relative:
        day = run_date - timedelta(days=RELATIVE_DAYS[relative.group(1).lower()])
        clock = _TIME_RE.search(text, relative.end())
        hour, minute, second = (int(clock.group(n) or 0) for n in (1, 2, 3)) if clock else (0, 0, 0)
        meridiem = (clock.group(4) or "").lower().replace(".", "") if clock else ""
        if meridiem and hour <= 12:
            hour = hour % 12 + (12 if meridiem == "pm" else 0)
        local = datetime(
            day.year, day.month, day.day, min(hour, 23), min(minute, 59), min(second, 59), tzinfo=zone
        )
        return local.astimezone(UTC)
    for fmt in (*formats, *DATE_FORMATS):
        match = _format_regex(fmt).search(text)
        if not match:
            continue
        try:
            parsed = datetime.strptime(match.group(0), fmt)
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)
    return None


def _date_of(element: Tag | None, settings: ForumSettings, run_date: date) -> datetime | None:
    if element is None:
        return None
    candidates: list[Any] = []
    if settings.date_attr:
        candidates.append(element.get(settings.date_attr))
    else:
        inner = element.find("time") if element.name != "time" else None
        for source in (element, inner):
            if source is not None:
                candidates.extend(source.get(a) for a in DATE_ATTRS)
    candidates.append(element.get_text(" ", strip=True))
    for value in candidates:
        if isinstance(value, str) and value.strip():
            parsed = parse_forum_date(
                value, formats=settings.date_formats, zone=settings.timezone, run_date=run_date
            )
            if parsed is not None:
                return parsed
    return None


# --- thread list ------------------------------------------------------------


@dataclass
class ThreadLink:
    url: str
    title: str | None = None
    replies: int | None = None
    views: int | None = None


def parse_thread_list(
    body: bytes, headers: Any, *, page_url: str, settings: ForumSettings
) -> tuple[list[ThreadLink], str | None]:
    """The threads linked from a list page (same host only) and the next list page."""
    soup = soup_of(body, headers)
    link_css = settings.selectors.get("thread_link")
    if not link_css:
        raise ConfigError("option 'thread_link' (a CSS selector) is required for a thread list")
    rows_css = settings.selectors.get("list_item")
    rows = soup.select(rows_css) if rows_css else []
    found: dict[str, ThreadLink] = {}

    def add(link: Tag, row: Tag | None) -> None:
        href = link.get("href")
        if not isinstance(href, str) or not href.strip():
            return
        url = normalise_url(urljoin(page_url, href.strip()))
        if not _same_host(url, page_url) or url in found:
            return
        thread = ThreadLink(url=url, title=clip(_line(link), MAX_TITLE))
        if row is not None:
            for key in ("list_replies", "list_views"):
                css = settings.selectors.get(key)
                if css:
                    setattr(thread, key.removeprefix("list_"), _number(row.select_one(css)))
        found[url] = thread

    for row in rows:
        link = row.select_one(link_css)
        if link is not None:
            add(link, row)
    for link in soup.select(link_css):
        add(link, None)
    if not found:
        raise ParseError(
            f"{page_url}: no thread links on the thread list (selector {link_css!r} matched nothing)"
        )
    return list(found.values()), _next_page(soup, settings, page_url)


# --- thread pages -----------------------------------------------------------


@dataclass
class ThreadPage:
    records: Records
    title: str | None
    next_page: str | None
    first_post: str | None  # external id of the thread's first post, when on this page


def _post_id(post: Tag, spec: str | None) -> str | None:
    if not spec:
        return None
    css, _, attr = spec.partition("@")
    element = post.select_one(css) if css.strip() else post
    if element is None:
        return None
    value = element.get(attr) if attr else element.get_text(" ", strip=True)
    if isinstance(value, list):
        value = " ".join(value)
    return bounded_id(value) if isinstance(value, str) and value.strip() else None


def _author(post: Tag, settings: ForumSettings, page_url: str) -> AuthorRecord | None:
    css = settings.selectors.get("author")
    element = post.select_one(css) if css else None
    name = _line(element)
    if not name:
        return None
    link = (
        element if element is not None and element.name == "a" else (element.find("a") if element else None)
    )
    href = link.get("href") if link is not None else None
    if link is None and element is not None:
        parent = element.find_parent("a")
        href = parent.get("href") if parent is not None else None
    profile = (
        normalise_url(urljoin(page_url, href))
        if isinstance(href, str) and href.strip() and not href.startswith(("#", "javascript:"))
        else None
    )
    title_css = settings.selectors.get("author_title")
    return AuthorRecord(
        external_id=bounded_id(name),
        handle=clip(name, MAX_TITLE),
        display_name=clip(name, MAX_TITLE),
        title=clip(_line(post.select_one(title_css)), MAX_TITLE) if title_css else None,
        profile_url=clip(profile, 2_000),
    )


def parse_thread_page(
    body: bytes,
    headers: Any,
    *,
    page_url: str,
    thread_id: str,
    first_page: bool,
    first_post: str | None,
    settings: ForumSettings,
    run_date: date,
) -> ThreadPage:
    """The posts of one page of a thread. The thread's first post (post number 1,
    else the first post of its first page) is a ``post`` with the thread's title;
    the others are replies to it."""
    soup = soup_of(body, headers)
    sel = settings.selectors
    posts = soup.select(sel["post"])
    if not posts:
        raise ParseError(
            f"{page_url}: no posts on the thread page (selector {sel['post']!r} matched nothing)"
        )
    title_el = soup.select_one(sel["title"]) if sel.get("title") else None
    title = _line(title_el) or _line(soup.title)
    records = Records()
    for index, post in enumerate(posts):
        body_el = post.select_one(sel["body"])
        if body_el is None:
            raise ParseError(
                f"{page_url}: post {index + 1} has no body (selector {sel['body']!r} matched nothing in {sel['post']!r})"
            )
        number = _number(post.select_one(sel["post_number"])) if sel.get("post_number") else None
        is_first = number == 1 if number is not None else first_page and index == 0
        author = _author(post, settings, page_url)
        published = _date_of(post.select_one(sel["date"]) if sel.get("date") else None, settings, run_date)
        text = _text(body_el)
        post_id = _post_id(post, sel.get("post_id"))
        if post_id is None and number is not None:
            post_id = bounded_id(f"{thread_id}#{number}")
        if post_id is None:
            seed = "\n".join(
                [
                    thread_id,
                    author.external_id if author else "",
                    published.isoformat() if published else "",
                    text or "",
                ]
            )
            post_id = "sha256:" + hashlib.sha256(seed.encode("utf-8")).hexdigest()
        if is_first:
            first_post = post_id
        if author is not None:
            records.authors.append(author)
        anchor = post.get("id")
        records.items.append(
            ItemRecord(
                external_id=post_id,
                kind="post" if is_first else "reply",
                title=clip(title, MAX_TITLE) if is_first else None,
                text=clip(text, MAX_TEXT),
                url=clip(
                    f"{page_url.split('#')[0]}#{anchor}" if isinstance(anchor, str) and anchor else page_url,
                    2_000,
                ),
                published_at=published,
                author_external_id=author.external_id if author else None,
                thread_external_id=thread_id,
                parent_external_id=None if is_first else first_post,
            )
        )
        if sel.get("likes"):
            records.observe("item", post_id, "likes", _number(post.select_one(sel["likes"])))
    return ThreadPage(records, title, _next_page(soup, settings, page_url), first_post)


# --- the run ----------------------------------------------------------------


def _fetch(harvest: Harvest, url: str) -> tuple[bytes, Any]:
    resp = harvest.ctx.client.get(
        url, headers={"Accept": "text/html,application/xhtml+xml"}, ok_statuses=(200,)
    )
    harvest.requests += resp.attempts
    harvest.http_status = resp.status
    return resp.body, resp.headers


def collect(ctx: CollectContext) -> CollectResult:
    try:
        settings = ForumSettings.from_options(ctx.source.options)
    except ConfigError as exc:
        raise ConfigError(f"source {ctx.source.name!r}: {exc}") from None
    harvest = Harvest(ctx=ctx)
    watermark = read_watermark(ctx, harvest.warnings)
    max_pages = int(ctx.option("max_pages", DEFAULT_MAX_PAGES))
    start = ctx.source.url
    if ctx.option("single_thread"):
        threads = [ThreadLink(url=normalise_url(start))]
    else:
        threads = _thread_list(harvest, settings, start, max_pages)
    limit = int(ctx.option("max_threads", DEFAULT_MAX_THREADS))
    if len(threads) > limit:
        harvest.warn(f"{len(threads)} threads listed, read the first max_threads={limit}")
    for thread in threads[:limit]:
        if harvest.full:
            break
        _collect_thread(ctx, harvest, settings, thread, max_pages)
    return harvest.result(new_watermark(watermark, harvest.items.values()))


def _thread_list(harvest: Harvest, settings: ForumSettings, start: str, max_pages: int) -> list[ThreadLink]:
    threads: dict[str, ThreadLink] = {}
    url: str | None = start
    seen: set[str] = set()
    pages = 0
    while url and pages < max_pages and url not in seen:
        seen.add(url)
        body, headers = _fetch(harvest, url)
        links, url = parse_thread_list(body, headers, page_url=url, settings=settings)
        pages += 1
        if url and not _same_host(url, start):
            harvest.warn(f"{start}: next list page {clean_reason(url, 200)} is on another host; not followed")
            url = None
        for link in links:
            threads.setdefault(link.url, link)
    if url and url not in seen and pages >= max_pages:
        harvest.warn(f"{start}: thread list stopped after max_pages={max_pages} pages")
    return list(threads.values())


def _collect_thread(
    ctx: CollectContext, harvest: Harvest, settings: ForumSettings, thread: ThreadLink, max_pages: int
) -> None:
    url: str | None = thread.url
    seen: set[str] = set()
    first_post: str | None = None
    pages = 0
    while url and pages < max_pages and url not in seen:
        if not _same_host(url, thread.url):
            harvest.warn(f"{thread.url}: next page {clean_reason(url, 200)} is on another host; not followed")
            break
        seen.add(url)
        try:
            body, headers = _fetch(harvest, url)
        except RobotsDisallowed as exc:
            harvest.warn(f"{url}: thread page skipped, {exc.reason}")
            break
        except FetchError as exc:
            if exc.status not in (403, 404, 410):
                raise
            harvest.warn(f"{url}: thread page skipped, {exc.reason}")
            break
        page = parse_thread_page(
            body, headers, page_url=url, thread_id=thread.url, first_page=pages == 0,
            first_post=first_post, settings=settings, run_date=ctx.run_date,
        )  # fmt: skip
        first_post = page.first_post
        harvest.add(page.records)
        pages += 1
        url = page.next_page and normalise_url(page.next_page)
    if url and url not in seen and pages >= max_pages:
        harvest.warn(f"{thread.url}: stopped after max_pages={max_pages} pages of the thread")
    if first_post and first_post in harvest.items:
        records = Records()
        records.observe("item", first_post, "replies", thread.replies)
        records.observe("item", first_post, "views", thread.views)
        harvest.add(records)
