"""The WordPress collector against a loopback server answering with real WordPress files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select
from werkzeug import Request, Response

from collectors.base import CollectContext
from collectors.http import HttpClient
from collectors.wordpress import collect, parse_comments, parse_posts
from engage.config import SourceConfig
from engage.errors import FetchError
from engage.warehouse.schema import author, content_item
from tests.social_support import run_days

DATA = Path(__file__).parent / "data" / "wordpress"
API = "/wp-json/wp/v2"


def context(
    server: HTTPServer, run_date: date, *, watermark: str | None = None, **options: Any
) -> CollectContext:
    src = SourceConfig(name="blog", kind="wordpress", url=server.url_for("/").rstrip("/"), options=options)
    client = HttpClient(retries=0, backoff_factor=0, backoff_max=0)
    return CollectContext(source=src, client=client, run_date=run_date, watermark=watermark)


def paged(pages: list[list[dict[str, Any]]], *, key: str = "page"):
    """A handler answering page N of ``pages`` with WordPress's paging headers."""

    def handler(request: Request) -> Response:
        number = int(request.args.get(key, "1"))
        body = pages[number - 1] if number <= len(pages) else []
        headers = {"X-WP-TotalPages": str(len(pages)), "X-WP-Total": str(sum(map(len, pages)))}
        return Response(json.dumps(body), content_type="application/json", headers=headers)

    return handler


def comments_by_post(comments: list[dict[str, Any]]):
    """``/comments``: ``?post=N`` filters by post (with X-WP-Total), else all of them."""

    def handler(request: Request) -> Response:
        chosen = comments
        if "post" in request.args:
            chosen = [c for c in comments if str(c["post"]) == request.args["post"]]
        headers = {"X-WP-TotalPages": "1", "X-WP-Total": str(len(chosen))}
        return Response(json.dumps(chosen), content_type="application/json", headers=headers)

    return handler


# --- parsing the real answers ---------------------------------------------------


def test_real_pages_answer_gives_posts_with_ids_titles_links_and_times(realworld: Path) -> None:
    data = json.loads((realworld / "wordpress" / "wp-v2-pages_wordpress.org.json").read_bytes())
    records = parse_posts(data, where="pages.json")
    items = {i.external_id: i for i in records.items}
    assert list(items) == [f"post:{n}" for n in (457, 385, 379, 375, 373, 371, 329, 315, 309, 281)]
    assert items["post:375"].title == "Beta/Nightly"  # "Beta\/Nightly" in the file
    assert items["post:379"].url == "https://wordpress.org/download/source/"
    assert items["post:457"].published_at == datetime(2019, 2, 6, 0, 37, 47, tzinfo=UTC)
    assert items["post:457"].author_external_id == "user:5911429"
    assert all(i.kind == "post" and i.thread_external_id == i.external_id for i in items.values())


def test_real_edit_context_comments_keep_no_email_or_ip(realworld: Path) -> None:
    raw = (realworld / "wordpress" / "wp-v2-comments_edit_context.json").read_bytes()
    assert b"john.doe@example.com" in raw and b"192.168.1.1" in raw
    records = parse_comments(json.loads(raw), where="comments.json")
    items = {i.external_id: i for i in records.items}
    assert list(items) == ["comment:2", "comment:3"]
    assert {i.thread_external_id for i in items.values()} == {"post:49"}
    assert {i.parent_external_id for i in items.values()} == {"comment:1"}
    assert items["comment:2"].text == "Some example comment."
    # date_gmt (10:50) is UTC; "date" (17:50) is the blog's local time.
    assert items["comment:2"].published_at == datetime(2021, 7, 1, 10, 50, 11, tzinfo=UTC)
    assert items["comment:3"].url == "https://example.com/2021/05/25/example-post/comment-page-1/#comment-3"
    authors = {a.external_id: a for a in records.authors}
    assert authors["user:135"].display_name == "John Doe"
    assert authors["user:202"].profile_url == "https://example.com/mary-sue"
    dumped = repr(records)
    assert "@example.com" not in dumped and "192.168" not in dumped
    assert all(a.email is None for a in records.authors)


def test_guest_comment_authors_are_keyed_by_url_or_name() -> None:
    records = parse_comments(
        [
            {
                "id": 7,
                "post": 3,
                "parent": 0,
                "author": 0,
                "author_name": "Sam Lee",
                "author_url": "",
                "date_gmt": "2026-11-19T08:00:00",
                "content": {"rendered": "<p>Pricing for 50 seats?</p>"},
                "status": "approved",
                "type": "comment",
            },
            {
                "id": 8,
                "post": 3,
                "parent": 0,
                "author": 0,
                "author_name": "Other blog",
                "date_gmt": "2026-11-19T09:00:00",
                "content": {"rendered": "<p>[&#8230;] linked […]</p>"},
                "status": "approved",
                "type": "pingback",
            },
            {
                "id": 9,
                "post": 3,
                "parent": 0,
                "author": 0,
                "author_name": "Spammer",
                "date_gmt": "2026-11-19T09:00:00",
                "content": {"rendered": "buy"},
                "status": "spam",
                "type": "comment",
            },
        ],
        where="comments",
    )
    assert [(i.external_id, i.parent_external_id, i.author_external_id) for i in records.items] == [
        ("comment:7", "post:3", "guest:Sam Lee")
    ]


# --- the REST API over loopback ------------------------------------------------


def test_rest_run_pages_the_real_listing_and_reads_recent_comments(
    realworld: Path, httpserver: HTTPServer
) -> None:
    pages = json.loads((realworld / "wordpress" / "wp-v2-pages_wordpress.org.json").read_bytes())
    comments = json.loads((realworld / "wordpress" / "wp-v2-comments_edit_context.json").read_bytes())
    httpserver.expect_request(f"{API}/posts").respond_with_handler(paged([pages[:5], pages[5:]]))
    httpserver.expect_request(f"{API}/comments").respond_with_handler(comments_by_post(comments))

    result = collect(context(httpserver, date(2019, 7, 1), backfill_days=2000))

    ids = {i.external_id for i in result.items}
    assert len([i for i in ids if i.startswith("post:")]) == 10
    assert {"comment:2", "comment:3"} <= ids
    asked = [
        (r.args.get("page"), r.args.get("orderby"), r.args.get("_embed"))
        for r, _ in httpserver.log
        if r.path.endswith("/posts")
    ]
    assert asked == [("1", "modified", "author"), ("2", "modified", "author")]
    assert all(r.args.get("modified_after") for r, _ in httpserver.log if r.path.endswith("/posts"))
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("post:457", "comments")] == 0
    assert len([k for k in observed if k[1] == "comments"]) == 10
    assert not any(a.email for a in result.authors)
    assert "192.168" not in json.dumps(result.to_json())
    assert result.http_status == 200 and not result.warnings


def post(number: int, modified: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": number,
        "date_gmt": modified,
        "modified_gmt": modified,
        "link": f"https://example.com/2021/05/25/post-{number}/",
        "title": {"rendered": f"Post {number} &#8211; pipeline forecasting"},
        "content": {"rendered": "<p>How RevOps teams forecast.<\\/p>"},
        "author": 1,
        "_embedded": {
            "author": [
                {
                    "id": 1,
                    "name": "Acme Team",
                    "slug": "acme",
                    "link": "https://example.com/author/acme/",
                    "description": "Product marketing",
                }
            ]
        },
        **extra,
    }


def test_comment_counts_threads_likes_and_the_window(realworld: Path, httpserver: HTTPServer) -> None:
    view = json.loads((realworld / "wordpress" / "wp-v2-comments_view_context.json").read_bytes())
    listing = [
        [post(49, "2021-06-30T08:00:00", like_count=12), post(48, "2021-06-01T08:00:00")],
        [post(40, "2021-05-01T08:00:00")],
    ]
    httpserver.expect_request(f"{API}/posts").respond_with_handler(paged(listing))
    httpserver.expect_request(f"{API}/comments").respond_with_handler(comments_by_post(view))
    watermark = json.dumps({"newest": "2021-06-29T00:00:00+00:00"})

    result = collect(context(httpserver, date(2021, 7, 1), watermark=watermark))

    items = {i.external_id: i for i in result.items}
    # Page one reaches back past the 7-day window: page two is not read.
    assert set(items) == {"post:49", "post:48", "comment:2", "comment:3"}
    assert [r.args["page"] for r, _ in httpserver.log if r.path.endswith("/posts")] == ["1"]
    assert items["post:49"].title == "Post 49 \u2013 pipeline forecasting"
    assert items["post:49"].author_external_id == "user:1"
    assert (items["comment:3"].thread_external_id, items["comment:3"].parent_external_id) == (
        "post:49",
        "comment:1",
    )
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("post:49", "comments")] == 2 and observed[("post:48", "comments")] == 0
    assert observed[("post:49", "likes")] == 12
    authors = {a.external_id: a for a in result.authors}
    assert authors["user:1"].handle == "acme" and authors["user:1"].bio == "Product marketing"
    assert json.loads(result.watermark or "{}")["newest"].startswith("2021-07-01T10:50:20")


# --- the fallback to the feeds ------------------------------------------------------


def serve_feeds(server: HTTPServer, realworld: Path) -> None:
    server.expect_request("/feed/").respond_with_data(
        (realworld / "feeds" / "wordpress_natasha_slash_comments.xml").read_bytes(),
        content_type="application/rss+xml",
    )
    server.expect_request("/comments/feed/").respond_with_data(
        (DATA / "comments_feed.xml").read_bytes(), content_type="application/rss+xml; charset=UTF-8"
    )


def check_feed_records(result: Any) -> None:
    items = {i.external_id: i for i in result.items}
    assert len([i for i in items if i.startswith("post:")]) == 10
    assert items["post:6602"].title == "The Easiest Way to Get a URL for your Apple Wallet Passkit Pass"
    assert items["post:6602"].url == "https://www.natashatherobot.com/url-apple-wallet-passkit-pass/"
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("post:6602", "comments")] == 6 and observed[("post:6568", "comments")] == 13
    comment = items["comment:70211"]
    assert (comment.kind, comment.thread_external_id, comment.parent_external_id, comment.title) == (
        "comment",
        "post:6602",
        None,
        None,
    )
    assert (
        comment.text
        == "We evaluated three pass vendors last quarter \u2013 is there a way to sign passes server-side?"
    )
    assert items["comment:70190"].thread_external_id == "post:6592"
    assert items["comment:60001"].thread_external_id == "post:1200"  # a post older than the feed
    names = {a.display_name for a in result.authors}
    assert {"Natasha Murashev", "Priya Raman", "Tom & Jerry"} <= names


def test_rest_forbidden_falls_back_to_the_feeds(realworld: Path, httpserver: HTTPServer) -> None:
    forbidden = (realworld / "wordpress" / "wp-rest_forbidden_401.json").read_bytes()
    httpserver.expect_request(f"{API}/posts").respond_with_data(
        forbidden, status=401, content_type="application/json"
    )
    serve_feeds(httpserver, realworld)

    result = collect(context(httpserver, date(2017, 7, 8)))

    check_feed_records(result)
    assert any(
        "REST API unavailable (unauthorised (401): check the token: rest_forbidden: Sorry, you are not allowed"
        in w
        for w in result.warnings
    )
    assert not any(r.path.endswith("/comments") for r, _ in httpserver.log)


def test_an_html_page_served_as_json_falls_back_to_the_feeds(realworld: Path, httpserver: HTTPServer) -> None:
    body = (realworld / "wordpress" / "wpcom_throttled_html_body.json").read_bytes()
    httpserver.expect_request(f"{API}/posts").respond_with_data(
        body, status=200, content_type="application/json"
    )
    serve_feeds(httpserver, realworld)
    result = collect(context(httpserver, date(2017, 7, 8)))
    check_feed_records(result)
    assert any("expected JSON but got an HTML page" in w for w in result.warnings)


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_answer_is_a_fetch_error_not_a_fallback(
    realworld: Path, httpserver: HTTPServer, status: int
) -> None:
    body = (realworld / "wordpress" / "wpcom_throttled_html_body.json").read_bytes()
    httpserver.expect_request(f"{API}/posts").respond_with_data(
        body, status=status, content_type="application/json"
    )
    with pytest.raises(FetchError) as caught:
        collect(context(httpserver, date(2017, 7, 8)))
    assert caught.value.status == status
    assert not any(r.path.endswith("/feed/") for r, _ in httpserver.log)


def test_a_comments_endpoint_locked_alone_reads_the_comments_feed(
    realworld: Path, httpserver: HTTPServer
) -> None:
    forbidden = (realworld / "wordpress" / "wp-rest_forbidden_401.json").read_bytes()
    httpserver.expect_request(f"{API}/posts").respond_with_handler(
        paged([[post(6602, "2017-07-07T11:06:10")]])
    )
    httpserver.expect_request(f"{API}/comments").respond_with_data(
        forbidden, status=401, content_type="application/json"
    )
    serve_feeds(httpserver, realworld)
    result = collect(context(httpserver, date(2017, 7, 8)))
    items = {i.external_id: i for i in result.items}
    assert items["comment:70211"].thread_external_id == "post:6602"
    assert any("comments not read, unauthorised (401)" in w for w in result.warnings)
    assert any("read http://" in w and "/comments/feed/ instead" in w for w in result.warnings)


# --- the real pipeline on the warehouse --------------------------------------------


def test_reruns_never_duplicate_and_store_no_email(
    realworld: Path, httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    edit = json.loads((realworld / "wordpress" / "wp-v2-comments_edit_context.json").read_bytes())
    httpserver.expect_request(f"{API}/posts").respond_with_handler(paged([[post(49, "2021-06-30T08:00:00")]]))
    httpserver.expect_request(f"{API}/comments").respond_with_handler(comments_by_post(edit))
    source = f"{{name: blog, kind: wordpress, url: '{httpserver.url_for('/').rstrip('/')}', own: true}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme", [date(2021, 7, 1), date(2021, 7, 1), date(2021, 7, 2)]
    )
    assert items == 3  # post:49, comment:2, comment:3
    assert per_day == {date(2021, 7, 1): 1, date(2021, 7, 2): 1}  # the post's comment count, once a day
    with engine.connect() as conn:
        rows = conn.execute(select(content_item.c.external_id, content_item.c.parent_external_id)).all()
        emails = conn.execute(select(author.c.email).where(author.c.email.is_not(None))).all()
    assert dict(rows)["comment:2"] == "comment:1"
    assert emails == []
    assert ours == 3  # an own blog: the loader marks its items ours


def test_fallback_reruns_never_duplicate(
    realworld: Path, httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    httpserver.expect_request(f"{API}/posts").respond_with_data(b"Not Found", status=404)
    serve_feeds(httpserver, realworld)
    source = f"{{name: blog, kind: wordpress, url: '{httpserver.url_for('/').rstrip('/')}'}}"
    items, _, per_day = run_days(engine, tmp_path, source, "acme", [date(2017, 7, 8), date(2017, 7, 8)])
    assert items == 13 and per_day == {date(2017, 7, 8): 10}
