"""The Bluesky collector against a loopback server that answers like the public AppView."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from werkzeug import Request, Response

from collectors.base import CollectContext
from collectors.bluesky import collect, parse_feed, parse_posts, parse_profile, parse_thread
from collectors.common import AccountUnavailable, ApiError
from collectors.http import HttpClient
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)
XRPC = "/xrpc/app.bsky."
ACME_DID = "did:plc:acmeanalytics0000000000"
PRIYA_DID = "did:plc:priyacfo00000000000000"
ACME = {"did": ACME_DID, "handle": "acme.example", "displayName": "Acme Analytics"}
PRIYA = {"did": PRIYA_DID, "handle": "priya.bsky.social", "displayName": "Priya Raman"}
PROFILE = {
    **ACME,
    "description": "Revenue analytics for B2B teams.",
    "followersCount": 2310,
    "followsCount": 120,
    "postsCount": 412,
}


def uri(did: str, rkey: str) -> str:
    return f"at://{did}/app.bsky.feed.post/{rkey}"


def post(
    did_author: dict[str, str],
    rkey: str,
    created: str,
    text: str = "Pipeline coverage is not a forecast.",
    *,
    root: str | None = None,
    parent: str | None = None,
    replies: int = 0,
    likes: int = 0,
    reposts: int = 0,
) -> dict[str, Any]:
    record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text, "createdAt": created}
    if parent:
        record["reply"] = {"root": {"uri": root or parent, "cid": "c"}, "parent": {"uri": parent, "cid": "c"}}
    return {
        "uri": uri(did_author["did"], rkey),
        "cid": "bafy" + rkey,
        "author": did_author,
        "record": record,
        "replyCount": replies,
        "repostCount": reposts,
        "likeCount": likes,
        "quoteCount": 0,
        "indexedAt": created,
    }


def view(
    p: dict[str, Any], parent: dict[str, Any] | None = None, replies: list[Any] | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": p, "replies": replies or []}
    if parent:
        node["parent"] = parent
    return node


A = post(
    ACME,
    "3kaaa",
    "2026-11-19T09:00:00.000Z",
    "Our Q4 win-rate benchmark is out.",
    replies=2,
    likes=40,
    reposts=6,
)
B = post(
    ACME,
    "3kbbb",
    "2026-11-18T15:00:00Z",
    "We export to Snowflake natively.",
    root=uri(PRIYA_DID, "3kxxx"),
    parent=uri(PRIYA_DID, "3kyyy"),
    likes=3,
)
C = post(
    PRIYA, "3kccc", "2026-11-10T08:00:00Z", "Shortlisting forecasting tools: Acme vs Northwind?", likes=9
)
D = post(ACME, "3kddd", "2026-09-01T08:00:00Z", "Hello Bluesky!", likes=1)
FEED_PAGE_ONE = {
    "feed": [
        {"post": A},
        {"post": B, "reply": {}},
        {
            "post": C,
            "reason": {
                "$type": "app.bsky.feed.defs#reasonRepost",
                "by": ACME,
                "indexedAt": "2026-11-17T10:00:00Z",
            },
        },
    ],
    "cursor": "2026-11-17T10:00:00Z::bafyc",
}
FEED_PAGE_TWO = {"feed": [{"post": D}], "cursor": "2026-09-01T08:00:00Z::bafyd"}


def context(server: HTTPServer, *, watermark: str | None = None, **options: Any) -> CollectContext:
    src = SourceConfig(name="bsky", kind="bluesky", url=server.url_for("/").rstrip("/"), options=options)
    return CollectContext(
        source=src, client=HttpClient(retries=1, backoff_factor=0), run_date=RUN_DATE, watermark=watermark
    )


def serve_feed(server: HTTPServer, pages: dict[str | None, dict[str, Any]]) -> None:
    server.expect_request(
        XRPC + "actor.getProfile", query_string={"actor": "acme.example"}
    ).respond_with_json(PROFILE)

    def feed(request: Request) -> Response:
        assert request.args["actor"] == ACME_DID and request.args["filter"] == "posts_with_replies"
        return Response(
            json.dumps(pages.get(request.args.get("cursor"), {"feed": []})), content_type="application/json"
        )

    server.expect_request(XRPC + "feed.getAuthorFeed").respond_with_handler(feed)


def serve_threads(server: HTTPServer, threads: dict[str, dict[str, Any]]) -> None:
    def thread(request: Request) -> Response:
        found = threads.get(request.args["uri"])
        if found is None:
            return Response(
                json.dumps({"error": "NotFound", "message": "Post not found"}),
                status=400,
                content_type="application/json",
            )
        return Response(json.dumps({"thread": found}), content_type="application/json")

    server.expect_request(XRPC + "feed.getPostThread").respond_with_handler(thread)


def test_profile_feed_and_threads(httpserver: HTTPServer) -> None:
    serve_feed(httpserver, {None: FEED_PAGE_ONE, FEED_PAGE_ONE["cursor"]: FEED_PAGE_TWO})
    r1 = post(
        PRIYA,
        "3kr1",
        "2026-11-19T10:00:00Z",
        "Can you share the methodology?",
        root=A["uri"],
        parent=A["uri"],
        likes=2,
    )
    r2 = post(
        ACME, "3kr2", "2026-11-19T11:00:00Z", "Sure, link in the post.", root=A["uri"], parent=r1["uri"]
    )
    blocked = {"$type": "app.bsky.feed.defs#blockedPost", "uri": uri("did:plc:x", "3kzz"), "blocked": True}
    gone = {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri("did:plc:y", "3kqq"), "notFound": True}
    x = post(PRIYA, "3kxxx", "2026-11-18T12:00:00Z", "Which BI tools export to Snowflake?", replies=1)
    y = post(
        PRIYA, "3kyyy", "2026-11-18T13:00:00Z", "Looking at Acme.", root=x["uri"], parent=x["uri"], replies=1
    )
    serve_threads(
        httpserver,
        {
            A["uri"]: view(A, replies=[view(r1, replies=[view(r2)]), blocked, gone]),
            B["uri"]: view(B, parent=view(y, parent=view(x))),
        },
    )

    result = collect(context(httpserver, actor="acme.example"))

    items = {i.external_id: i for i in result.items}
    assert set(items) == {A["uri"], B["uri"], C["uri"], D["uri"], r1["uri"], r2["uri"], x["uri"], y["uri"]}
    assert (items[A["uri"]].kind, items[A["uri"]].thread_external_id) == ("post", A["uri"])
    assert items[A["uri"]].url == "https://bsky.app/profile/acme.example/post/3kaaa"
    assert (
        items[r2["uri"]].kind,
        items[r2["uri"]].thread_external_id,
        items[r2["uri"]].parent_external_id,
    ) == ("reply", A["uri"], r1["uri"])
    assert (items[B["uri"]].thread_external_id, items[B["uri"]].parent_external_id) == (x["uri"], y["uri"])
    assert items[C["uri"]].author_external_id == PRIYA_DID  # a repost yields the reposted post
    assert any("2 blocked or deleted" in w for w in result.warnings)
    observed = {(o.subject_type, o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("account", ACME_DID, "followers")] == 2310
    assert observed[("account", ACME_DID, "following")] == 120
    assert observed[("item", A["uri"], "likes")] == 40 and observed[("item", A["uri"], "reposts")] == 6
    authors = {a.external_id: a for a in result.authors}
    assert authors[ACME_DID].bio == "Revenue analytics for B2B teams."
    assert json.loads(result.watermark or "{}")["newest"].startswith("2026-11-19T11:00")
    cursors = [r.args.get("cursor") for r, _ in httpserver.log if r.path.endswith("getAuthorFeed")]
    assert cursors == [None, FEED_PAGE_ONE["cursor"]]


def test_a_later_run_stops_at_the_lookback_window(httpserver: HTTPServer) -> None:
    serve_feed(httpserver, {None: FEED_PAGE_ONE, FEED_PAGE_ONE["cursor"]: FEED_PAGE_TWO})
    serve_threads(httpserver, {A["uri"]: view(A), B["uri"]: view(B)})
    # The repost entered the feed on 2026-11-17 (inside the window) but C itself is older:
    # paging goes by when entries entered the feed. Lookback of 2 days stops after page one.
    result = collect(
        context(
            httpserver,
            actor="acme.example",
            lookback_days=2,
            watermark=json.dumps({"newest": "2026-11-19T09:00:00+00:00"}),
        )
    )
    assert {i.external_id for i in result.items} == {A["uri"], B["uri"], C["uri"]}
    assert [r.args.get("cursor") for r, _ in httpserver.log if r.path.endswith("getAuthorFeed")] == [None]
    # Only threads inside the window (since 2026-11-19) are followed.
    assert [r.args["uri"] for r, _ in httpserver.log if r.path.endswith("getPostThread")] == [A["uri"]]


def test_a_thread_deleted_since_the_listing_is_skipped_with_a_warning(httpserver: HTTPServer) -> None:
    serve_feed(httpserver, {None: {"feed": [{"post": A}]}})
    serve_threads(httpserver, {})  # answers 400 NotFound for every URI
    result = collect(context(httpserver, actor="acme.example"))
    assert [i.external_id for i in result.items] == [A["uri"]]
    assert any("thread skipped" in w and "Post not found" in w for w in result.warnings)


def test_search_with_cursor_and_an_empty_last_page(httpserver: HTTPServer) -> None:
    pages = {None: {"posts": [C], "cursor": "1"}, "1": {"posts": [], "cursor": "2"}}

    def search(request: Request) -> Response:
        return Response(json.dumps(pages[request.args.get("cursor")]), content_type="application/json")

    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_handler(search)
    result = collect(context(httpserver, search="forecasting tools"))
    assert [i.external_id for i in result.items] == [C["uri"]]
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(
    ("error", "message", "expected"),
    [
        ("AccountTakedown", "Account has been suspended", "is suspended \\(taken down\\)"),
        ("AccountDeactivated", "Account is deactivated", "is deactivated"),
        ("InvalidRequest", "Profile not found", "is not found"),
    ],
)
def test_gone_accounts_are_clear_errors(
    httpserver: HTTPServer, error: str, message: str, expected: str
) -> None:
    httpserver.expect_request(XRPC + "actor.getProfile").respond_with_json(
        {"error": error, "message": message}, status=400
    )
    with pytest.raises(AccountUnavailable, match=expected):
        collect(context(httpserver, actor="gone.example"))


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [(401, "unauthorised"), (403, "forbidden"), (404, "not found"), (410, "gone")],
)
def test_http_errors_are_clear_fetch_errors(httpserver: HTTPServer, status_code: int, expected: str) -> None:
    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_json(
        {"error": "AuthMissing", "message": "Authentication Required"}, status=status_code
    )
    with pytest.raises(FetchError, match=f"{expected}.*Authentication Required") as info:
        collect(context(httpserver, search="x"))
    assert info.value.status == status_code and "searchPosts" in str(info.value)


def test_429_with_and_without_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(XRPC + "feed.searchPosts").respond_with_json(
        {"error": "RateLimitExceeded"}, status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_json({"posts": [C]})
    assert [i.external_id for i in collect(context(httpserver, search="x")).items] == [C["uri"]]
    httpserver.clear()
    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_json(
        {"error": "RateLimitExceeded"}, status=429
    )
    with pytest.raises(FetchError, match="rate limited \\(429\\)"):
        collect(context(httpserver, search="x"))


def test_html_rate_limit_page_as_json_and_wrong_shapes_are_parse_errors(httpserver: HTTPServer) -> None:
    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_data(
        "<html><body>Too Many Requests</body></html>", content_type="application/json"
    )
    with pytest.raises(ParseError, match="searchPosts.*HTML page"):
        collect(context(httpserver, search="x"))
    httpserver.clear()
    httpserver.expect_request(XRPC + "feed.searchPosts").respond_with_json({"feed": []})
    with pytest.raises(ParseError, match="expected posts"):
        collect(context(httpserver, search="x"))


def test_needs_an_actor_or_a_search(httpserver: HTTPServer) -> None:
    with pytest.raises(ConfigError, match="needs 'actor' or 'search'"):
        collect(context(httpserver))


def test_reruns_never_duplicate_in_the_warehouse(
    httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    serve_feed(httpserver, {None: FEED_PAGE_ONE, FEED_PAGE_ONE["cursor"]: FEED_PAGE_TWO})
    serve_threads(httpserver, {A["uri"]: view(A), B["uri"]: view(B)})
    source = f"{{name: bsky, kind: bluesky, url: '{httpserver.url_for('/')}', actor: acme.example}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme.example", [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    )
    assert (items, ours) == (4, 3)
    assert per_day == {RUN_DATE: 3 + 4 * 4, date(2026, 11, 21): 3 + 4 * 4}


# --- every real-world Bluesky answer, served over loopback -----------------


def _thread_posts(node: dict[str, Any]) -> int:
    """threadViewPost nodes of a thread, counted independently of the collector."""
    if node.get("$type") != "app.bsky.feed.defs#threadViewPost":
        return 0
    below = sum(_thread_posts(r) for r in node.get("replies") or [])
    return 1 + below + (_thread_posts(node["parent"]) if isinstance(node.get("parent"), dict) else 0)


def test_every_realworld_bluesky_file_over_loopback(realworld: Path, httpserver: HTTPServer) -> None:
    files = sorted((realworld / "social" / "bluesky").glob("*.json"))
    assert files
    client = HttpClient(retries=0)
    for path in files:
        raw = path.read_bytes()
        data = json.loads(raw)
        if path.name.startswith("error_"):
            httpserver.expect_request(XRPC + "actor.getProfile").respond_with_data(
                raw, status=400, content_type="application/json"
            )
            with pytest.raises(ApiError, match=re.escape(data["message"])) as info:
                collect(context(httpserver, actor="someone.example"))
            assert info.value.code == data["error"]
            httpserver.clear()
            continue
        httpserver.expect_request(f"/{path.name}").respond_with_data(raw, content_type="application/json")
        url = httpserver.url_for(f"/{path.name}")
        body = client.get(url).json()
        if "feed" in data:
            records, times, cursor = parse_feed(body, where=url)
            assert (
                len(records.items) == len({e["post"]["uri"] for e in data["feed"]})
                and cursor == data["cursor"]
            )
            assert all(t is not None for t in times)
        elif "thread" in data:
            records = parse_thread(body, where=url)
            assert len(records.items) == _thread_posts(data["thread"]) > 50
            assert any("1 blocked" in w for w in records.warnings)
        elif "posts" in data:
            records, _times, _cursor = parse_posts(body, where=url)
            assert len(records.items) == len(data["posts"])
        elif "profiles" in data:
            for profile in body["profiles"]:
                assert parse_profile(profile, where=url).authors[0].external_id == profile["did"]
        elif "did" in data:
            records = parse_profile(body, where=url)
            assert {o.metric: o.value for o in records.observations}["followers"] == data["followersCount"]
        else:  # getLikes: who liked a post -- no posts in it; the collector does not ask for it
            assert "likes" in data
            with pytest.raises(ParseError, match="expected a feed"):
                parse_feed(body, where=url)
