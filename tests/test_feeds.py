"""The feed collector: parsing real-world feeds and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from collectors.feeds import comment_count, entry_identity, html_to_text, parse_feed
from engage.errors import ParseError

RSS_NO_GUID = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>t</title>
<item><title>First</title><link>http://e.com/1</link><description>One</description></item>
<item><title>Second, no link</title><pubDate>Fri, 20 Nov 2026 10:00:00 GMT</pubDate><description>Two</description></item>
</channel></rss>"""


def test_entries_without_guid_get_a_stable_identity() -> None:
    first = parse_feed(RSS_NO_GUID, {}, url="http://e.com/feed")
    again = parse_feed(RSS_NO_GUID, {}, url="http://e.com/feed")
    ids = [i.external_id for i in first.items]
    assert ids == [i.external_id for i in again.items]
    assert ids[0] == "http://e.com/1"
    assert ids[1].startswith("sha256:") and len(set(ids)) == 2


def test_edited_entry_with_a_link_keeps_its_identity() -> None:
    edited = RSS_NO_GUID.replace(b"<title>First</title>", b"<title>First (updated)</title>")
    before = parse_feed(RSS_NO_GUID, {}, url="u").items[0]
    after = parse_feed(edited, {}, url="u").items[0]
    assert before.external_id == after.external_id
    assert before.title != after.title


def test_comment_counts_from_slash_and_thr(realworld: Path) -> None:
    slash = parse_feed((realworld / "feeds/wordpress_manton_slash_comments.rss").read_bytes(), {}, url="u")
    assert len(slash.observations) == len(slash.items) == 10
    assert all(o.metric == "comments" and o.value >= 0 for o in slash.observations)
    thr = parse_feed((realworld / "feeds/blogger_atom_thr_total.atom").read_bytes(), {}, url="u")
    assert len(thr.observations) == 25
    replies_link = parse_feed((realworld / "feeds/samruby_atom_thr.xml").read_bytes(), {}, url="http://x/f")
    assert len(replies_link.observations) == 20


def test_html_in_summaries_becomes_text_and_scripts_vanish() -> None:
    body = b"""<rss version="2.0"><channel><item><guid>g1</guid><title>&lt;b&gt;Bold&lt;/b&gt; move</title>
    <description>&lt;p&gt;Hello &lt;script&gt;alert(1)&lt;/script&gt;world&lt;/p&gt;</description></item></channel></rss>"""
    item = parse_feed(body, {}, url="u").items[0]
    assert item.title == "Bold move"
    assert item.text == "Hello world"


def test_malformed_xml_keeps_what_is_readable_and_warns() -> None:
    body = b"""<rss version="2.0"><channel><item><guid>a</guid><title>Fine</title></item>
    <item><guid>b</guid><title>Broken &bogus; entity</title></item>"""
    result = parse_feed(body, {}, url="http://e.com/feed")
    assert [i.external_id for i in result.items][:1] == ["a"]
    assert result.warnings and "http://e.com/feed" in result.warnings[0]


def test_a_document_with_nothing_readable_is_a_parse_error_naming_the_url() -> None:
    with pytest.raises(ParseError, match="http://e.com/broken"):
        parse_feed(b"<html><body>Service unavailable", {}, url="http://e.com/broken")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("feedparser_koi8r_no_encoding.xml", "Как пережить новогоднюю ночь"),
        ("windows-1251_rss20.xml", "Цитата"),
        ("dvbbs_forum_gb2312.rss", "建国35周年纪念"),
        ("feedcreator_iso-8859-1_slash.xml", "Red Dead Redemption 2"),
    ],
)
def test_declared_and_undeclared_encodings_decode(realworld: Path, name: str, expected: str) -> None:
    items = parse_feed((realworld / "feeds" / name).read_bytes(), {}, url="u").items
    assert any(expected in (i.title or "") for i in items)


def test_http_charset_header_is_used() -> None:
    body = (
        '<rss version="2.0"><channel><item><guid>1</guid><title>Café für Ärzte</title></item></channel></rss>'
    )
    result = parse_feed(
        body.encode("iso-8859-1"), {"Content-Type": "application/rss+xml; charset=iso-8859-1"}, url="u"
    )
    assert result.items[0].title == "Café für Ärzte"


def test_xxe_entity_is_not_resolved(realworld: Path) -> None:
    body = (realworld / "feeds/xxe_atom10_doctype_entity.xml").read_bytes()
    try:
        result = parse_feed(body, {}, url="u")
    except ParseError:
        return
    dumped = json.dumps(result.to_json())
    assert "root:" not in dumped  # /etc/passwd never read


def _feed_files(realworld_dir: Path) -> list[Path]:
    return sorted((realworld_dir / "feeds").iterdir())


def test_every_realworld_feed_is_collected_over_loopback(realworld: Path, httpserver: HTTPServer) -> None:
    """Serve each real feed over HTTP and parse it: no unhandled error, items found."""
    from collectors.base import CollectContext
    from collectors.feeds import collect
    from collectors.http import HttpClient
    from engage.config import SourceConfig

    client = HttpClient(retries=0)
    empty_by_design = {
        "feedparser_empty_document.xml",
        "feedparser_utf16le_bom.xml",
        "xxe_atom10_doctype_entity.xml",
        "feedparser_undefined_entity.xml",
        "reuters_rss20_invalid.xml",
    }
    for path in _feed_files(realworld):
        httpserver.expect_request(f"/{path.name}").respond_with_data(
            path.read_bytes(), content_type="application/xml"
        )
        src = SourceConfig(name="f", kind="rss", url=httpserver.url_for(f"/{path.name}"))
        try:
            result = collect(
                CollectContext(source=src, client=client, run_date=__import__("datetime").date(2026, 11, 20))
            )
        except ParseError:
            assert path.name in empty_by_design, f"{path.name} could not be read"
            continue
        raw_items = path.read_bytes().count(b"<item") + path.read_bytes().count(b"<entry")
        if path.name not in empty_by_design:
            assert result.items, f"{path.name}: no items"
            assert len(result.items) <= raw_items
        for item in result.items:
            assert item.external_id and len(item.external_id) <= 500


def test_comment_count_ignores_garbage() -> None:
    assert comment_count({"slash_comments": "many"}) is None
    assert comment_count({"slash_comments": " 7 "}) == 7
    assert comment_count({"thr_total": "-3"}) is None


def test_entry_identity_prefers_guid() -> None:
    assert entry_identity({"id": "tag:x,2026:1", "link": "http://x/1"}) == "tag:x,2026:1"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Pricing <b>and</b> plans</p><p>tail</p>", "Pricing and plans tail"),
        ("<p>a<!-- hidden note -->b</p>", "a b"),
        ("<style>p {color: red}</style><script>alert(1)</script>Hello &amp; bye", "Hello & bye"),
        ("plain &lt;text&gt;", "plain <text>"),
        ("<p>broken <b>nesting</p>", "broken nesting"),
        ("<!-- only a comment -->", ""),
        # Whole documents, as some feeds put in their summaries.
        ("<html>", ""),
        ("<html><head><title>T</title></head><body>a</body><body>b</body></html>", "T a b"),
        # A lone surrogate (a badly decoded JSON escape) is neither lost nor fatal.
        ("<p>ok \ud800 then</p>", "ok ? then"),
    ],
)
def test_html_to_text_matches_what_a_reader_sees(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_gives_the_same_text_as_beautifulsoup_on_every_realworld_feed(realworld: Path) -> None:
    import feedparser
    from bs4 import BeautifulSoup

    compared = 0
    for path in sorted((realworld / "feeds").iterdir()):
        parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        for entry in parsed.entries:
            content = entry.get("content")
            for html in (
                entry.get("title"),
                content[0].get("value") if content else None,
                entry.get("summary"),
            ):
                if not html or "<" not in html:
                    continue
                soup = BeautifulSoup(html, "lxml")
                for tag in soup(["script", "style"]):
                    tag.decompose()
                assert html_to_text(html) == " ".join(soup.get_text(" ").split()), (path.name, html[:200])
                compared += 1
    assert compared > 100
