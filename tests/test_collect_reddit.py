"""The Reddit collector against a loopback server that answers like reddit.com's JSON API."""

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
from collectors.common import AccountUnavailable, ApiError
from collectors.http import HttpClient
from collectors.reddit import collect, parse_about, parse_comments, parse_listing, parse_morechildren
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)
ABOUT = {
    "kind": "t5",
    "data": {"name": "t5_2qrevops", "display_name": "revops", "subscribers": 48210, "active_user_count": 212},
}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def t3(
    id36: str,
    created: str,
    *,
    comments: int = 0,
    score: int = 1,
    author: str = "acme_analytics",
    title: str = "How do you forecast pipeline?",
    selftext: str = "We use spreadsheets today.",
) -> dict[str, Any]:
    return {
        "kind": "t3",
        "data": {
            "id": id36,
            "name": f"t3_{id36}",
            "title": title,
            "selftext": selftext,
            "author": author,
            "author_fullname": f"t2_{author[:6]}",
            "created_utc": epoch(created),
            "score": score,
            "num_comments": comments,
            "permalink": f"/r/revops/comments/{id36}/slug/",
            "subreddit": "revops",
        },
    }


def t1(
    id36: str,
    parent: str,
    created: str,
    body: str,
    *,
    author: str = "dana_ops",
    flair: str | None = None,
    replies: list[Any] | None = None,
    score: int = 1,
    link: str = "t3_p1",
) -> dict[str, Any]:
    return {
        "kind": "t1",
        "data": {
            "id": id36,
            "name": f"t1_{id36}",
            "parent_id": parent,
            "link_id": link,
            "body": body,
            "author": author,
            "author_fullname": None if author == "[deleted]" else f"t2_{author[:6]}",
            "author_flair_text": flair,
            "created_utc": epoch(created),
            "score": score,
            "permalink": f"/r/revops/comments/p1/slug/{id36}/",
            "replies": {"kind": "Listing", "data": {"children": replies}} if replies else "",
        },
    }


def more(parent: str, children: list[str]) -> dict[str, Any]:
    return {
        "kind": "more",
        "data": {
            "count": len(children),
            "name": "t1__",
            "id": "_",
            "parent_id": parent,
            "depth": 0,
            "children": children,
        },
    }


def listing(children: list[Any], after: str | None = None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {"after": after, "before": None, "dist": len(children), "children": children},
    }


P1 = t3(
    "p1", "2026-11-19T09:00:00", comments=7, score=56, title="Acme vs Northwind for pipeline forecasting?"
)
P2 = t3("p2", "2026-11-18T09:00:00", author="ravi_k")
P3 = t3("p3", "2026-11-17T09:00:00", author="[deleted]", selftext="[removed]", title="Vendor spam")
P4 = t3("p4", "2026-09-01T09:00:00")
COMMENTS = [
    listing([P1]),
    listing(
        [
            t1(
                "c1",
                "t3_p1",
                "2026-11-19T10:00:00",
                "We moved to Acme last quarter; forecasts are within 5%.",
                flair="CFO at Northwind",
                score=12,
                replies=[
                    t1(
                        "c2",
                        "t1_c1",
                        "2026-11-19T10:30:00",
                        "[deleted]",
                        author="[deleted]",
                        replies=[
                            t1(
                                "c3",
                                "t1_c2",
                                "2026-11-19T11:00:00",
                                "Replying to the deleted comment anyway.",
                            ),
                        ],
                    ),
                ],
            ),
            t1(
                "c4",
                "t3_p1",
                "2026-11-19T12:00:00",
                "What did the security review look like?",
                author="ravi_k",
            ),
            more("t3_p1", ["c5", "c6"]),
        ]
    ),
]
MORE_ONE = {
    "json": {
        "errors": [],
        "data": {
            "things": [
                t1("c5", "t3_p1", "2026-11-19T13:00:00", "Pricing was the deciding factor for us."),
                t1("c6", "t1_c5", "2026-11-19T13:30:00", "Same here."),
                more("t1_c6", ["c7"]),
            ]
        },
    }
}
MORE_TWO = {"json": {"errors": [], "data": {"things": [t1("c7", "t1_c6", "2026-11-19T14:00:00", "+1")]}}}


def context(server: HTTPServer, *, watermark: str | None = None, **options: Any) -> CollectContext:
    src = SourceConfig(
        name="reddit",
        kind="reddit",
        url=server.url_for("/").rstrip("/"),
        options={"subreddit": "r/revops", **options},
    )
    return CollectContext(
        source=src, client=HttpClient(retries=1, backoff_factor=0), run_date=RUN_DATE, watermark=watermark
    )


def serve(server: HTTPServer, pages: dict[str | None, Any]) -> None:
    server.expect_request("/r/revops/about.json", query_string={"raw_json": "1"}).respond_with_json(ABOUT)

    def new(request: Request) -> Response:
        assert request.args["raw_json"] == "1" and request.args["limit"] == "100"
        return Response(
            json.dumps(pages.get(request.args.get("after"), listing([]))), content_type="application/json"
        )

    server.expect_request("/r/revops/new.json").respond_with_handler(new)
    server.expect_request("/comments/p1.json").respond_with_json(COMMENTS)

    def morechildren(request: Request) -> Response:
        assert request.args["link_id"] == "t3_p1" and request.args["api_type"] == "json"
        answer = {"c5,c6": MORE_ONE, "c7": MORE_TWO}[request.args["children"]]
        return Response(json.dumps(answer), content_type="application/json")

    server.expect_request("/api/morechildren.json").respond_with_handler(morechildren)


def test_subreddit_posts_comment_trees_and_more_stubs(httpserver: HTTPServer) -> None:
    serve(httpserver, {None: listing([P1, P2, P3], after="t3_p3"), "t3_p3": listing([P4], after="t3_p4")})

    result = collect(context(httpserver))

    items = {i.external_id: i for i in result.items}
    assert set(items) == {
        "t3_p1",
        "t3_p2",
        "t3_p3",
        "t3_p4",
        "t1_c1",
        "t1_c3",
        "t1_c4",
        "t1_c5",
        "t1_c6",
        "t1_c7",
    }
    assert "t1_c2" not in items  # deleted comment: not collected, its reply is
    assert (items["t1_c3"].thread_external_id, items["t1_c3"].parent_external_id) == ("t3_p1", "t1_c2")
    assert (items["t1_c7"].kind, items["t1_c7"].parent_external_id) == ("comment", "t1_c6")
    assert items["t3_p1"].title == "Acme vs Northwind for pipeline forecasting?"
    assert items["t3_p1"].url == "https://www.reddit.com/r/revops/comments/p1/slug/"
    assert (items["t3_p3"].text, items["t3_p3"].author_external_id) == (None, None)
    authors = {a.handle: a for a in result.authors}
    assert authors["dana_ops"].title == "CFO at Northwind"
    assert "[deleted]" not in authors
    observed = {(o.subject_type, o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("account", "t5_2qrevops", "subscribers")] == 48210
    assert observed[("item", "t3_p1", "comments")] == 7 and observed[("item", "t3_p1", "score")] == 56
    assert observed[("item", "t1_c1", "score")] == 12
    assert [r.args.get("after") for r, _ in httpserver.log if r.path.endswith("new.json")] == [None, "t3_p3"]
    # Only p1 had comments: one comment tree, two morechildren batches.
    assert sum(r.path == "/comments/p1.json" for r, _ in httpserver.log) == 1
    assert sum(r.path == "/api/morechildren.json" for r, _ in httpserver.log) == 2
    assert json.loads(result.watermark or "{}")["newest"].startswith("2026-11-19T14:00")


def test_max_more_leaves_collapsed_comments_with_a_warning(httpserver: HTTPServer) -> None:
    serve(httpserver, {None: listing([P1])})
    result = collect(context(httpserver, max_more=1))
    assert "t1_c7" not in {i.external_id for i in result.items}
    assert any("1 collapsed comments left unread" in w for w in result.warnings)


def test_a_post_removed_since_the_listing_is_skipped_with_a_warning(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/comments/p1.json").respond_with_json(
        {"message": "Not Found", "error": 404}, status=404
    )
    serve(httpserver, {None: listing([P1])})
    result = collect(context(httpserver))
    assert [i.external_id for i in result.items] == ["t3_p1"]
    assert any("/comments/p1.json" in w and "thread skipped, not found (404)" in w for w in result.warnings)


def test_a_later_run_stops_at_the_lookback_window(httpserver: HTTPServer) -> None:
    serve(
        httpserver,
        {None: listing([P1, P2, t3("p0", "2026-11-01T09:00:00")], after="t3_p0"), "t3_p0": listing([P4])},
    )
    result = collect(context(httpserver, watermark=json.dumps({"newest": "2026-11-19T14:00:00+00:00"})))
    assert {"t3_p1", "t3_p2", "t3_p0"} <= {i.external_id for i in result.items}
    assert [r.args.get("after") for r, _ in httpserver.log if r.path.endswith("new.json")] == [None]


def test_an_empty_subreddit(httpserver: HTTPServer) -> None:
    serve(httpserver, {})
    result = collect(context(httpserver))
    assert result.items == [] and {o.metric for o in result.observations} == {"subscribers", "active_users"}


@pytest.mark.parametrize(
    ("status_code", "body", "error", "expected"),
    [
        (
            404,
            {"reason": "banned", "message": "Not Found", "error": 404},
            AccountUnavailable,
            "r/revops is banned",
        ),
        (
            403,
            {"reason": "private", "message": "Forbidden", "error": 403},
            AccountUnavailable,
            "r/revops is private",
        ),
        (404, {"message": "Not Found", "error": 404}, ApiError, "not found \\(404\\)"),
        (401, {"message": "Unauthorized", "error": 401}, ApiError, "unauthorised \\(401\\)"),
        (410, {"message": "Gone", "error": 410}, ApiError, "gone \\(410\\)"),
    ],
)
def test_unavailable_subreddits_and_http_errors(
    httpserver: HTTPServer, status_code: int, body: dict[str, Any], error: type[Exception], expected: str
) -> None:
    httpserver.expect_request("/r/revops/about.json").respond_with_json(body, status=status_code)
    with pytest.raises(error, match=expected):
        collect(context(httpserver))


def test_429_with_and_without_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/r/revops/about.json").respond_with_data(
        "", status=429, headers={"Retry-After": "0"}
    )
    serve(httpserver, {None: listing([P2])})
    assert [i.external_id for i in collect(context(httpserver)).items] == ["t3_p2"]
    httpserver.clear()
    httpserver.expect_request("/r/revops/about.json").respond_with_data("", status=429)
    with pytest.raises(FetchError, match="rate limited \\(429\\)"):
        collect(context(httpserver))


def test_html_rate_limit_page_and_morechildren_errors(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/r/revops/about.json").respond_with_data(
        "<!doctype html><html><title>whoa there, pardner!</title></html>", content_type="application/json"
    )
    with pytest.raises(ParseError, match="about.json.*HTML page"):
        collect(context(httpserver))
    errors = {"json": {"errors": [["RATELIMIT", "you are doing that too much", "ratelimit"]]}}
    with pytest.raises(ParseError, match="RATELIMIT"):
        parse_morechildren(errors, where="http://x/api/morechildren.json")


def test_subreddit_name_is_validated(httpserver: HTTPServer) -> None:
    with pytest.raises(ConfigError, match="not a subreddit name"):
        collect(context(httpserver, subreddit="../../api/v1/me"))


def test_reruns_never_duplicate_in_the_warehouse(
    httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    serve(httpserver, {None: listing([P1, P2, P3], after="t3_p3"), "t3_p3": listing([P4])})
    source = f"{{name: reddit, kind: reddit, url: '{httpserver.url_for('/')}', subreddit: revops}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme_analytics", [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    )
    assert (items, ours) == (10, 2)  # p1 and p4 are ours
    assert per_day == {RUN_DATE: 2 + 4 * 2 + 6, date(2026, 11, 21): 2 + 4 * 2 + 6}


# --- every real-world Reddit answer, served over loopback ------------------


def _things(children: list[Any]) -> list[dict[str, Any]]:
    """Every t1/t3 in a (nested) list of things, counted independently."""
    found = []
    for child in children:
        if child.get("kind") in ("t1", "t3"):
            found.append(child["data"])
            replies = child["data"].get("replies")
            if isinstance(replies, dict):
                found.extend(_things(replies["data"]["children"]))
    return found


def _kept(things: list[dict[str, Any]]) -> int:
    return sum(1 for t in things if t.get("body") not in ("[deleted]", "[removed]"))


def _check_answer(
    httpserver: HTTPServer, client: HttpClient, name: str, raw: bytes, status_code: int
) -> None:
    data = json.loads(raw)
    if status_code != 200:
        httpserver.expect_request("/r/revops/about.json").respond_with_data(
            raw, status=status_code, content_type="application/json"
        )
        with pytest.raises(ApiError, match=data["message"]) as info:
            collect(context(httpserver))
        assert info.value.status == status_code
        httpserver.clear()
        return
    httpserver.expect_request(f"/{name}").respond_with_data(raw, content_type="application/json")
    url = httpserver.url_for(f"/{name}")
    body = client.get(url).json()
    if isinstance(data, list):
        records, _stubs = parse_comments(body, where=url)
        assert len(records.items) == _kept(_things(data[0]["data"]["children"] + data[1]["data"]["children"]))
    elif "json" in data:
        records, stubs = parse_morechildren(body, where=url)
        assert len(records.items) == _kept(_things(data["json"]["data"]["things"]))
        assert len(stubs) == sum(1 for t in data["json"]["data"]["things"] if t["kind"] == "more")
    elif data.get("kind") == "Listing":
        records, times, after = parse_listing(body, where=url)
        assert (
            len(records.items) == _kept(_things(data["data"]["children"])) and after == data["data"]["after"]
        )
    elif data.get("kind") == "t5":
        observed = {o.metric: o.value for o in parse_about(body, where=url).observations}
        assert observed["subscribers"] == data["data"]["subscribers"]
    else:  # a user's about (t2) or a user map: not a subreddit -- a clear error, not a crash
        with pytest.raises(ParseError, match="expected a subreddit"):
            parse_about(body, where=url)


def test_every_realworld_reddit_file_over_loopback(realworld: Path, httpserver: HTTPServer) -> None:
    client = HttpClient(retries=0)
    answers = 0
    for path in sorted((realworld / "social" / "reddit").glob("*.json")):
        data = json.loads(path.read_bytes())
        if "interactions" in data:  # a Betamax recording: serve each recorded answer
            for number, interaction in enumerate(data["interactions"]):
                if interaction["request"]["uri"].endswith("/access_token"):
                    continue  # the OAuth handshake, not an API answer
                body = interaction["response"]["body"]["string"].encode()
                _check_answer(
                    httpserver,
                    client,
                    f"{path.stem}-{number}",
                    body,
                    interaction["response"]["status"]["code"],
                )
                answers += 1
        else:
            _check_answer(httpserver, client, path.name, path.read_bytes(), 200)
            answers += 1
    assert answers >= 13
