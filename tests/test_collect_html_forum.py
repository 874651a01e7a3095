"""The html_forum collector: presets on real forum pages served over loopback,
configured selectors, dates, missing markup, and reruns through the pipeline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select

from collectors.base import CollectContext
from collectors.html_forum import ForumSettings, collect, normalise_url, parse_forum_date
from collectors.http import HttpClient
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from engage.warehouse.schema import collection_run
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)
DATA = Path(__file__).parent / "data"
HTML = "text/html"


def context(url: str, **options: Any) -> CollectContext:
    src = SourceConfig(name="board", kind="html_forum", url=url, options=options)
    client = HttpClient(retries=1, backoff_factor=0, backoff_max=0)
    return CollectContext(source=src, client=client, run_date=RUN_DATE)


def page(realworld: Path, name: str) -> bytes:
    return (realworld / "forums" / "html" / name).read_bytes()


def serve(
    server: HTTPServer, path: str, body: bytes, content_type: str = HTML, query: str | None = None
) -> str:
    server.expect_request(path, query_string=query).respond_with_data(body, content_type=content_type)
    return server.url_for(path) + (f"?{query}" if query else "")


def test_phpbb_thread_list_to_the_real_thread(realworld: Path, httpserver: HTTPServer) -> None:
    start = serve(httpserver, "/viewforum.php", (DATA / "forum_thread_list.html").read_bytes(), query="f=4")
    second = b'<html><body><ul><li class="row"><a class="topictitle" href="viewtopic.php?t=453">Again</a></li></ul></body></html>'
    serve(httpserver, "/viewforum.php", second, query="f=4&start=25")
    serve(httpserver, "/viewtopic.php", page(realworld, "phpbb_foren.myoos.de.html"), query="t=453")
    httpserver.expect_request("/viewtopic.php", query_string="t=999").respond_with_data("gone", status=404)

    result = collect(context(start, preset="phpbb", timezone="Europe/Berlin"))

    # One post in the real page: <div class="post has-profile bg2" id="p453">, by r23, "21.01.2009, 05:42".
    assert [i.external_id for i in result.items] == ["p453"]
    item = result.items[0]
    assert (item.kind, item.title, item.author_external_id) == ("post", "Was ist Freie Software", "r23")
    assert item.published_at == datetime(2009, 1, 21, 4, 42, tzinfo=UTC)  # 05:42 in Berlin (CET, +1)
    assert item.text is not None and item.text.startswith("Was ist Freie Software und warum ist sie wichtig?")
    # The thread is its URL without the phpBB session id.
    assert item.thread_external_id == httpserver.url_for("/viewtopic.php") + "?t=453"
    assert item.url == item.thread_external_id + "#p453"
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed == {("p453", "replies"): 0, ("p453", "views"): 1234}  # from the thread list row
    assert any("t=999: thread page skipped, not found (404)" in w for w in result.warnings)
    asked = [(r.path, r.query_string.decode()) for r, _ in httpserver.log]
    assert asked == [
        ("/viewforum.php", "f=4"),
        ("/viewforum.php", "f=4&start=25"),
        ("/viewtopic.php", "t=453"),
        ("/viewtopic.php", "t=999"),
    ]  # the thread on another host is never fetched
    authors = {a.external_id: a for a in result.authors}
    assert authors["r23"].profile_url == httpserver.url_for("/memberlist.php") + "?mode=viewprofile&u=5"


def test_xenforo_preset_on_a_real_thread(realworld: Path, httpserver: HTTPServer) -> None:
    url = serve(
        httpserver, "/threads/patchnotes.3976/", page(realworld, "xenforo_villagersandheroes_patchnotes.html")
    )
    result = collect(context(url, preset="xenforo", single_thread=True))
    items = result.items
    # Nine <article class="message message--post ..." data-content="post-..."> on the page.
    assert len(items) == 9
    assert [i.external_id for i in items[:3]] == ["post-53504", "post-53670", "post-53693"]
    first = items[0]
    assert (first.kind, first.author_external_id) == ("post", "Tiberius")
    assert first.title is not None and first.title.endswith(
        "Patchnotes 4.47.4 - Tagundnachtgleiche Bugfix Build"
    )
    # <time datetime="2020-09-18T08:56:40-0700" data-time="1600444600">
    assert first.published_at == datetime(2020, 9, 18, 15, 56, 40, tzinfo=UTC)
    assert all(i.kind == "reply" and i.parent_external_id == "post-53504" for i in items[1:])
    authors = {a.external_id: a for a in result.authors}
    assert authors["Tiberius"].title == "Forum Moderator"
    likes = {o.subject_external_id: o.value for o in result.observations if o.metric == "likes"}
    assert (
        likes["post-53693"] == 4
    )  # "Reactions: Bibi Blocksberg , Glockenfee , Herr Blocksberg and 1 other person x 4"
    assert len(likes) == 8  # eight posts have an active reactions bar


def test_xenforo_preset_on_an_article_page_without_posts_is_a_clear_error(
    realworld: Path, httpserver: HTTPServer
) -> None:
    # anglerboard.de's page is a XenForo Media/Article (AMS) page: no message posts at all.
    url = serve(httpserver, "/ams/raubfisch-rute.434/", page(realworld, "xenforo_anglerboard.de.html"))
    with pytest.raises(
        ParseError,
        match=r"ams/raubfisch-rute\.434/: no posts on the thread page \(selector 'article\.message--post'",
    ):
        collect(context(url, preset="xenforo", single_thread=True))


@pytest.mark.parametrize("content_type", ["text/html; charset=ISO-8859-1", "text/html"])
def test_vbulletin_preset_on_a_real_iso_8859_1_page(
    realworld: Path, httpserver: HTTPServer, content_type: str
) -> None:
    url = serve(
        httpserver,
        "/122760-update-34.html",
        page(realworld, "vbulletin_pocketpc.ch_iso-8859-1.html"),
        content_type,
    )
    result = collect(
        context(url, preset="vbulletin", timezone="Europe/Zurich", single_thread=True, max_pages=2)
    )
    items = result.items
    assert len(items) == 20  # posts #661 to #680 ("Ergebnis 661 bis 680 von 795")
    first = items[0]
    assert (first.external_id, first.author_external_id) == ("post_949757", "Predator")
    assert first.kind == "reply"  # page 34: its first post is #661, not the thread's first post
    assert first.published_at == datetime(2011, 3, 3, 13, 17, tzinfo=UTC)  # "03.03.2011, 14:17" in Zurich
    authors = {a.external_id: a for a in result.authors}
    # Decoded by the HTTP charset, else by <meta charset="ISO-8859-1">.
    assert authors["Predator"].title == "Gehöre zum Inventar"
    assert authors["sunsetkilling"].title == "Mich gibt's schon länger"
    # The next page link points to www.pocketpc.ch: never followed from a loopback page.
    assert any("is on another host; not followed" in w for w in result.warnings)
    assert len(httpserver.log) == 1


def test_discourse_crawler_page_preset(realworld: Path, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/t/congratulations/12483", page(realworld, "discourse_meta_topic.html"))
    result = collect(context(url, preset="discourse", single_thread=True))
    assert [i.external_id for i in result.items] == [f"{url}#1", f"{url}#2"]  # no post ids: thread + position
    first, second = result.items
    assert (first.kind, first.author_external_id, first.title) == (
        "post",
        "techAPJ",
        "Congratulations, most stars in 2013 GitHub Octoverse!",
    )
    assert first.published_at == datetime(2014, 2, 6, 4, 55, 19, tzinfo=UTC)  # datePublished
    assert (second.author_external_id, second.published_at) == (
        "codinghorror",
        datetime(2014, 2, 6, 5, 27, 6, tzinfo=UTC),
    )
    likes = {o.subject_external_id: o.value for o in result.observations if o.metric == "likes"}
    assert likes == {f"{url}#1": 8, f"{url}#2": 1}


def test_configured_selectors_on_a_forumotion_page(realworld: Path, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/t7-forums-regeln", page(realworld, "forumotion_wolfsrebellen.html"))
    options = {
        "single_thread": True,
        "post": "div.post:not(.post--0)",  # post--0 is an advert ("Gesponserte Inhalte")
        "post_id": "@id",
        "author": "p.author strong",
        "date": "p.author",
        "date_format": ["%d/%m/%y, %I:%M %p"],
        "timezone": "Europe/Berlin",
        "body": "div.post-entry",
        "title": "div.postbody-head h3 a",
    }
    result = collect(context(url, **options))
    assert [i.external_id for i in result.items] == ["p7", "p655", "p702"]
    first = result.items[0]
    assert (first.kind, first.title, first.author_external_id) == ("post", "Forums-Regeln", "lupa")
    # "von lupa am 26/10/13, 03:48 pm": Berlin was still on summer time (CEST, +2) that day.
    assert first.published_at == datetime(2013, 10, 26, 13, 48, tzinfo=UTC)
    assert result.items[1].published_at == datetime(2014, 5, 26, 5, 41, tzinfo=UTC)  # 26/05/14, 07:41 am


def test_missing_post_or_body_markup_is_an_error_naming_page_and_selector(
    realworld: Path, httpserver: HTTPServer
) -> None:
    # The "SMF" page of werkzeugforum.de is a WordPress article: no phpBB posts on it.
    url = serve(httpserver, "/heizjacken", page(realworld, "smf_werkzeugforum.de.html"))
    with pytest.raises(
        ParseError, match=r"/heizjacken: no posts on the thread page \(selector 'div\.post' matched nothing\)"
    ):
        collect(context(url, preset="phpbb", single_thread=True))
    url = serve(httpserver, "/viewtopic.php", page(realworld, "phpbb_foren.myoos.de.html"))
    with pytest.raises(ParseError, match=r"post 1 has no body \(selector 'div\.message' matched nothing"):
        collect(context(url, preset="phpbb", body="div.message", single_thread=True))
    list_url = serve(httpserver, "/empty-board", b"<html><body><p>Wartungsarbeiten</p></body></html>")
    with pytest.raises(
        ParseError, match=r"/empty-board: no thread links on the thread list \(selector 'a\.topictitle'"
    ):
        collect(context(list_url, preset="phpbb"))


def test_unreachable_list_page_fails_the_source(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/board").respond_with_data("nope", status=403)
    with pytest.raises(FetchError, match="forbidden"):
        collect(context(httpserver.url_for("/board"), preset="phpbb"))


@pytest.mark.parametrize(
    ("text", "zone", "formats", "expected"),
    [
        ("Mon Jan 04, 2021 5:12 pm", "UTC", (), datetime(2021, 1, 4, 17, 12)),
        ("Beitrag von r23 » 04.01.2021, 17:12", "Europe/Berlin", (), datetime(2021, 1, 4, 16, 12)),
        ("12. Mär 2021, 10:00", "Europe/Berlin", (), datetime(2021, 3, 12, 9, 0)),
        ("21. Januar 2022 um 12:25", "Europe/Berlin", (), datetime(2022, 1, 21, 11, 25)),
        ("2022-01-21T12:25:31+0100", "UTC", (), datetime(2022, 1, 21, 11, 25, 31)),
        ("1600444600", "UTC", (), datetime(2020, 9, 18, 15, 56, 40)),
        ("Heute, 17:12", "Europe/Berlin", (), datetime(2026, 11, 20, 16, 12)),
        ("Yesterday at 3:04 PM", "America/New_York", (), datetime(2026, 11, 19, 20, 4)),
        ("posted 11-19-2026 @ 08:15", "UTC", ("%m-%d-%Y @ %H:%M",), datetime(2026, 11, 19, 8, 15)),
        ("sometime last week", "UTC", (), None),
    ],
)
def test_forum_dates(text: str, zone: str, formats: tuple[str, ...], expected: datetime | None) -> None:
    parsed = parse_forum_date(text, formats=formats, zone=ZoneInfo(zone), run_date=RUN_DATE)
    assert parsed == (expected.replace(tzinfo=UTC) if expected else None)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="'preset' must be one of"):
        ForumSettings.from_options({"preset": "smf"})
    with pytest.raises(ConfigError, match="'post' .* is required"):
        ForumSettings.from_options({"body": "div"})
    with pytest.raises(ConfigError, match="'author': 'a\\[' is not a CSS selector"):
        ForumSettings.from_options({"preset": "phpbb", "author": "a["})
    with pytest.raises(ConfigError, match="'Mars/Olympus' is not an IANA time zone"):
        ForumSettings.from_options({"preset": "phpbb", "timezone": "Mars/Olympus"})
    settings = ForumSettings.from_options({"preset": "xenforo", "author": ".username"})
    assert (
        settings.selectors["author"] == ".username" and settings.selectors["post"] == "article.message--post"
    )
    assert (
        normalise_url("https://F.example/viewtopic.php?t=1&sid=abc#p2")
        == "https://f.example/viewtopic.php?t=1"
    )


def test_reruns_never_duplicate_and_robots_is_honoured(
    realworld: Path, httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    listing = (
        b'<html><body><div class="structItem structItem--thread">'
        b'<div class="structItem-title"><a href="/threads/patchnotes.3976/">Patchnotes</a></div>'
        b'<div class="structItem-cell--meta"><dl class="pairs"><dt>Replies</dt><dd>8</dd></dl>'
        b'<dl class="pairs"><dt>Views</dt><dd>1,204</dd></dl></div></div>'
        b'<div class="structItem structItem--thread"><div class="structItem-title">'
        b'<a href="/private/threads/staff.1/">Staff only</a></div></div></body></html>'
    )
    serve(httpserver, "/forums/patch-notes.12/", listing)
    serve(
        httpserver, "/threads/patchnotes.3976/", page(realworld, "xenforo_villagersandheroes_patchnotes.html")
    )
    source = f"{{name: board, kind: html_forum, url: '{httpserver.url_for('/forums/patch-notes.12/')}', preset: xenforo}}"
    days = [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    items, ours, per_day = run_days(engine, tmp_path, source, "Tiberius", days)
    assert (items, ours) == (9, 3)  # Tiberius wrote three of the nine posts
    assert per_day == {RUN_DATE: 8 + 2, date(2026, 11, 21): 8 + 2}  # likes of 8 posts; replies and views
    assert not any(r.path.startswith("/private/") for r, _ in httpserver.log)
    with engine.connect() as conn:
        errors = conn.execute(select(collection_run.c.error)).scalars().all()
    assert len(errors) == 3 and all(
        "robots.txt disallows" in (e or "") and "/private/threads/staff.1/" in e for e in errors
    )
