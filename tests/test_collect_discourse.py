"""The Discourse collector against a loopback server answering like Discourse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from werkzeug import Request, Response

from collectors.base import CollectContext
from collectors.common import AccountUnavailable
from collectors.discourse import collect, listing_path, parse_listing, parse_topic
from collectors.http import HttpClient
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)
DANA = {"id": 77, "username": "dana", "name": "Dana Ortiz", "user_title": "VP Revenue Operations"}
ACME = {"id": 5, "username": "acme", "name": "Acme Support", "user_title": None}


def context(server: HTTPServer, *, watermark: str | None = None, **options: Any) -> CollectContext:
    src = SourceConfig(name="forum", kind="discourse", url=server.url_for("/").rstrip("/"), options=options)
    client = HttpClient(retries=1, backoff_factor=0, backoff_max=0)
    return CollectContext(source=src, client=client, run_date=RUN_DATE, watermark=watermark)


def topic_entry(topic_id: int, last: str, *, posts: int = 2, pinned: bool = False) -> dict[str, Any]:
    return {
        "id": topic_id,
        "title": f"Topic {topic_id}",
        "slug": f"topic-{topic_id}",
        "posts_count": posts,
        "created_at": "2026-11-01T08:00:00.000Z",
        "last_posted_at": last,
        "bumped_at": last,
        "pinned": pinned,
        "views": 10 * topic_id,
        "like_count": 1,
    }


def listing(topics: list[dict[str, Any]], more: int | None = None) -> dict[str, Any]:
    topic_list: dict[str, Any] = {"topics": topics}
    if more is not None:
        topic_list["more_topics_url"] = f"/latest?page={more}"
    return {"users": [{"id": 77, "username": "dana"}], "topic_list": topic_list}


def post(
    post_id: int,
    number: int,
    created: str,
    *,
    who: dict[str, Any] = DANA,
    reply_to: int | None = None,
    likes: int = 0,
    cooked: str = "<p>Which CRM exports to Snowflake?</p>",
) -> dict[str, Any]:
    return {
        "id": post_id,
        "post_number": number,
        "user_id": who["id"],
        "username": who["username"],
        "name": who["name"],
        "user_title": who["user_title"],
        "created_at": created,
        "cooked": cooked,
        "reply_to_post_number": reply_to,
        "reply_count": 0,
        "reads": 7,
        "actions_summary": [{"id": LIKE, "count": likes}] if likes else [],
        "topic_slug": "crm-exports",
        "topic_id": 900,
    }


LIKE = 2


def topic_json(topic_id: int, posts: list[dict[str, Any]], stream: list[int] | None = None) -> dict[str, Any]:
    return {
        "id": topic_id,
        "title": "CRM exports to Snowflake?",
        "slug": "crm-exports",
        "posts_count": len(stream or posts),
        "views": 321,
        "post_stream": {"posts": posts, "stream": stream or [p["id"] for p in posts]},
    }


def test_listing_topics_posts_and_links(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/latest.json").respond_with_json(
        listing([topic_entry(900, "2026-11-19T10:00:00Z", posts=3)])
    )
    httpserver.expect_request("/t/900.json").respond_with_json(
        topic_json(
            900,
            [
                post(1001, 1, "2026-11-18T09:00:00.000-05:00", likes=4),
                post(1002, 2, "2026-11-19T09:00:00Z", who=ACME, cooked="<p>Yes.<br>Ask us</p>"),
                post(1003, 3, "2026-11-19T10:00:00Z", reply_to=2),
            ],
        )
    )
    result = collect(context(httpserver))
    items = {i.external_id: i for i in result.items}
    assert set(items) == {"1001", "1002", "1003"}
    first = items["1001"]
    assert (first.kind, first.title, first.thread_external_id, first.parent_external_id) == (
        "post",
        "CRM exports to Snowflake?",
        "900",
        None,
    )
    assert first.published_at == datetime(2026, 11, 18, 14, 0, tzinfo=UTC)
    assert first.url == httpserver.url_for("/t/crm-exports/900/1")
    assert first.text == "Which CRM exports to Snowflake?"
    assert (items["1002"].kind, items["1002"].parent_external_id, items["1002"].text) == (
        "reply",
        "1001",
        "Yes.\nAsk us",
    )
    assert items["1003"].parent_external_id == "1002"  # reply_to_post_number 2
    authors = {a.external_id: a for a in result.authors}
    assert authors["77"].title == "VP Revenue Operations" and authors["77"].display_name == "Dana Ortiz"
    assert authors["77"].profile_url == httpserver.url_for("/u/dana")
    assert authors["5"].title is None
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("1001", "likes")] == 4 and observed[("1001", "views")] == 321
    assert observed[("1001", "replies")] == 2 and observed[("1002", "reads")] == 7
    assert json.loads(result.watermark or "{}")["topics"] == {"900": [3, "2026-11-19T10:00:00Z"]}


def test_a_later_run_fetches_only_new_changed_or_recent_topics(httpserver: HTTPServer) -> None:
    topics = [
        topic_entry(1, "2026-11-19T10:00:00Z"),  # inside the window: re-observed
        topic_entry(2, "2026-10-01T10:00:00Z"),  # old, unchanged: not fetched
        topic_entry(3, "2026-10-01T09:00:00Z", posts=5),  # old, but a post was added or removed
        topic_entry(4, "2026-01-01T00:00:00Z", pinned=True),  # pinned: does not stop the paging
    ]
    httpserver.expect_request("/latest.json").respond_with_json(listing(topics, more=1))
    for topic_id in (1, 3):
        httpserver.expect_request(f"/t/{topic_id}.json").respond_with_json(
            topic_json(topic_id, [post(topic_id * 10, 1, "2026-09-01T00:00:00Z")])
        )
    watermark = json.dumps(
        {
            "newest": "2026-11-18T00:00:00+00:00",
            "topics": {"2": [2, "2026-10-01T10:00:00Z"], "3": [4, "2026-10-01T09:00:00Z"]},
        }
    )
    result = collect(context(httpserver, watermark=watermark))
    asked = [(r.path, r.args.get("page")) for r, _ in httpserver.log]
    # The first page reaches back past the window: page 1 is not asked for.
    assert asked == [("/latest.json", None), ("/t/1.json", None), ("/t/3.json", None)]
    assert {i.external_id for i in result.items} == {"10", "30"}
    remembered = json.loads(result.watermark or "{}")["topics"]
    assert remembered["3"] == [5, "2026-10-01T09:00:00Z"] and remembered["2"] == [2, "2026-10-01T10:00:00Z"]


def test_paging_follows_more_topics_url_back_to_the_window(httpserver: HTTPServer) -> None:
    pages = {
        None: listing([topic_entry(1, "2026-11-19T10:00:00Z")], more=1),
        "1": listing([topic_entry(2, "2026-11-18T10:00:00Z")], more=2),
        "2": listing([topic_entry(3, "2026-09-01T10:00:00Z")], more=3),
    }

    def answer(request: Request) -> Response:
        return Response(json.dumps(pages[request.args.get("page")]), content_type="application/json")

    httpserver.expect_request("/c/product/12/l/latest.json").respond_with_handler(answer)
    for topic_id in (1, 2, 3):
        httpserver.expect_request(f"/t/{topic_id}.json").respond_with_json(
            topic_json(topic_id, [post(topic_id * 10, 1, "2026-11-18T00:00:00Z")])
        )
    result = collect(context(httpserver, category="product/12", backfill_days=7))
    asked = [r.args.get("page") for r, _ in httpserver.log if r.path.endswith("latest.json")]
    assert asked == [None, "1", "2"]  # page 2 reaches back past the window; page 3 never asked
    # Topic 3 was listed but is older than the window and unknown to the watermark... and the backfill.
    assert {i.external_id for i in result.items} == {"10", "20"}


def test_the_rest_of_the_post_stream_is_fetched_in_chunks_and_bounded(httpserver: HTTPServer) -> None:
    stream = list(range(2001, 2046))  # 45 posts, the topic answer holds the first 20
    first = [post(pid, pid - 2000, "2026-11-19T08:00:00Z") for pid in stream[:20]]
    by_id = {pid: post(pid, pid - 2000, "2026-11-19T09:00:00Z", reply_to=1) for pid in stream}

    def posts(request: Request) -> Response:
        ids = [int(i) for i in request.args.getlist("post_ids[]")]
        return Response(
            json.dumps({"post_stream": {"posts": [by_id[i] for i in ids]}}), content_type="application/json"
        )

    httpserver.expect_request("/latest.json").respond_with_json(
        listing([topic_entry(900, "2026-11-19T10:00:00Z")])
    )
    httpserver.expect_request("/t/900.json").respond_with_json(topic_json(900, first, stream))
    httpserver.expect_request("/t/900/posts.json").respond_with_handler(posts)

    result = collect(context(httpserver))
    assert len(result.items) == 45
    chunks = [len(r.args.getlist("post_ids[]")) for r, _ in httpserver.log if r.path.endswith("posts.json")]
    assert chunks == [20, 5]
    assert {i.parent_external_id for i in result.items if i.kind == "reply"} == {"2001"}

    httpserver.clear_log()
    bounded = collect(context(httpserver, max_posts=30))
    assert len(bounded.items) == 30
    assert any("25 more posts, read the newest max_posts=30" in w for w in bounded.warnings)
    assert "2045" in {i.external_id for i in bounded.items}  # the newest are kept


def test_a_topic_gone_or_private_since_the_listing_is_skipped_with_a_warning(httpserver: HTTPServer) -> None:
    topics = [topic_entry(n, "2026-11-19T10:00:00Z") for n in (1, 2, 3)]
    httpserver.expect_request("/latest.json").respond_with_json(listing(topics))
    httpserver.expect_request("/t/1.json").respond_with_json(
        {"errors": ["The requested URL or resource could not be found."]}, status=404
    )
    httpserver.expect_request("/t/2.json").respond_with_json(
        {"errors": ["You are not permitted to view the requested resource."], "error_type": "invalid_access"},
        status=403,
    )
    httpserver.expect_request("/t/3.json").respond_with_json(
        topic_json(3, [post(30, 1, "2026-11-19T10:00:00Z")])
    )
    result = collect(context(httpserver))
    assert [i.external_id for i in result.items] == ["30"]
    assert any("/t/1.json: topic skipped, not found (404)" in w for w in result.warnings)
    assert any("/t/2.json: topic skipped, forbidden (403)" in w for w in result.warnings)


def test_private_or_unknown_category_is_a_clear_error_naming_the_source(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/c/staff/l/latest.json").respond_with_json(
        {"errors": ["You are not permitted to view the requested resource."], "error_type": "invalid_access"},
        status=403,
    )
    with pytest.raises(
        AccountUnavailable, match="source 'forum': category 'staff' is private or does not exist"
    ):
        collect(context(httpserver, category="staff"))


def test_html_served_as_json_and_server_errors_are_clear(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/latest.json").respond_with_data(
        "<!DOCTYPE html><html><body>Maintenance</body></html>", content_type="application/json"
    )
    with pytest.raises(ParseError, match="/latest.json: expected JSON but got an HTML page"):
        collect(context(httpserver))
    httpserver.clear()
    httpserver.expect_request("/latest.json").respond_with_data("oops", status=502)
    with pytest.raises(FetchError, match="server error 502"):
        collect(context(httpserver))
    httpserver.clear()
    httpserver.expect_request("/latest.json").respond_with_json({"topic_list": []})
    with pytest.raises(ParseError, match="expected topic_list"):
        collect(context(httpserver))


def test_bad_category_option_is_a_config_error() -> None:
    assert listing_path(None) == "/latest.json"
    assert listing_path("product/12") == "/c/product/12/l/latest.json"
    with pytest.raises(ConfigError, match="'slug' or 'slug/id'"):
        listing_path("a/b/c")


def test_reruns_never_duplicate_in_the_warehouse(
    httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    httpserver.expect_request("/latest.json").respond_with_json(
        listing([topic_entry(900, "2026-11-19T10:00:00Z")])
    )
    httpserver.expect_request("/t/900.json").respond_with_json(
        topic_json(
            900,
            [post(1001, 1, "2026-11-18T09:00:00Z", likes=2), post(1002, 2, "2026-11-19T09:00:00Z", who=ACME)],
        )
    )
    source = f"{{name: forum, kind: discourse, url: '{httpserver.url_for('/')}'}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme", [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    )
    assert (items, ours) == (2, 1)
    # 1001: likes, reads, replies, views; 1002: reads, replies (no likes action)
    assert per_day == {RUN_DATE: 6, date(2026, 11, 21): 6}


# --- the real-world Discourse answers, served over loopback -----------------


def test_realworld_forum_end_to_end(realworld: Path, httpserver: HTTPServer) -> None:
    folder = realworld / "forums" / "discourse"
    serve = {
        "/latest.json": "latest.json",  # three topics, more_topics_url page=1
        "/t/1.json": "topic.json",  # (topic 57 of try.discourse.org)
    }
    latest = (folder / "latest.json").read_bytes()
    category = (folder / "category_latest_topics.json").read_bytes()

    def latest_pages(request: Request) -> Response:
        return Response(
            category if request.args.get("page") == "1" else latest, content_type="application/json"
        )

    httpserver.expect_request("/latest.json").respond_with_handler(latest_pages)
    httpserver.expect_request("/t/1.json").respond_with_data(
        (folder / serve["/t/1.json"]).read_bytes(), content_type="application/json"
    )
    httpserver.expect_request("/t/5.json").respond_with_json({"errors": ["not found"]}, status=404)
    httpserver.expect_request("/t/4.json").respond_with_json({"errors": ["not permitted"]}, status=403)

    result = collect(context(httpserver, backfill_days=6000))

    items = {i.external_id: i for i in result.items}
    # topic.json: posts 83, 84, 86 and 226 (post number 14, replying to post 1).
    assert set(items) == {"83", "84", "86", "226"}
    assert items["83"].title == "THIS SITE IS A SANDBOX -- it is reset every day"
    assert items["83"].published_at == datetime(2013, 2, 4, 20, 26, 26, 278000, tzinfo=UTC)
    assert items["83"].author_external_id == "15" and items["83"].thread_external_id == "57"
    assert items["226"].parent_external_id == "83" and items["226"].kind == "reply"
    assert items["226"].url == httpserver.url_for("/t/this-site-is-a-sandbox-it-is-reset-every-day/57/14")
    authors = {a.external_id: a for a in result.authors}
    assert authors["15"].display_name == "Sam Saffron" and authors["15"].title is None  # user_title null
    assert authors["3"].handle == "fuzzy"  # from the category listing's users[]
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert (
        observed[("86", "likes")] == 5
        and observed[("83", "views")] == 268
        and observed[("83", "replies")] == 3
    )
    assert sum("topic skipped" in w for w in result.warnings) == 2


def test_realworld_files_parse(realworld: Path, httpserver: HTTPServer) -> None:
    folder = realworld / "forums" / "discourse"
    client = HttpClient(retries=0)
    base = "https://try.discourse.org"
    for name in ("latest.json", "top.json", "category_latest_topics.json"):
        httpserver.expect_request(f"/{name}").respond_with_data(
            (folder / name).read_bytes(), content_type="application/json"
        )
        url = httpserver.url_for(f"/{name}")
        topics, records, next_page = parse_listing(client.get(url).json(), base=base, where=url)
        raw = json.loads((folder / name).read_bytes())
        assert len(topics) == len(raw["topic_list"]["topics"])
        assert next_page == (1 if "more_topics_url" in raw["topic_list"] else None)
        assert len(records.authors) == len(raw.get("users", []))
    # /t/{id}/posts.json: one post (number 2) of topic 57, with one like.
    raw_posts = json.loads((folder / "topic_posts.json").read_bytes())
    records, stream, numbers, _topic = parse_topic(
        {**raw_posts, "post_stream": {**raw_posts["post_stream"], "stream": [123456]}},
        base=base,
        where="topic_posts.json",
    )
    assert [i.external_id for i in records.items] == ["123456"] and stream == ["123456"]
    assert records.items[0].kind == "reply" and records.items[0].author_external_id == "123"
    assert {(o.metric, o.value) for o in records.observations} >= {("likes", 3), ("reads", 2)}
    assert numbers == {2: "123456"}


def test_user_api_key_goes_in_its_header_only(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCOURSE_KEY", "key-secret-42")
    httpserver.expect_request("/latest.json", headers={"User-Api-Key": "key-secret-42"}).respond_with_json(
        listing([])
    )
    result = collect(context(httpserver, token_env="DISCOURSE_KEY"))
    assert result.items == [] and result.requests == 1
    assert (
        "key-secret-42" not in json.dumps(result.to_json())
        and "key-secret-42" not in httpserver.log[0][0].url
    )
