"""The Mastodon collector against a loopback server that answers like Mastodon."""

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
from collectors.common import AccountUnavailable
from collectors.http import HttpClient
from collectors.mastodon import collect, parse_account, parse_context, parse_status, parse_statuses
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)
ACME = {
    "id": "1",
    "username": "acme",
    "acct": "acme",
    "display_name": "Acme Analytics",
    "url": "https://social.example/@acme",
    "note": "<p>Revenue analytics for B2B teams.</p>",
    "fields": [{"name": "Role", "value": "Product marketing team"}],
    "followers_count": 1240,
    "following_count": 310,
    "statuses_count": 845,
}
DANA = {
    "id": "77",
    "username": "dana",
    "acct": "dana@ops.example",
    "display_name": "Dana Ortiz",
    "url": "https://ops.example/@dana",
    "note": "<p>VP Revenue Operations at Northwind</p>",
    "fields": [{"name": "Title", "value": "VP Revenue Operations"}],
}


def status(
    status_id: str,
    created: str,
    *,
    account: dict[str, Any] = ACME,
    reply_to: str | None = None,
    replies: int = 0,
    reblogs: int = 0,
    favourites: int = 0,
    visibility: str = "public",
    content: str = "<p>How do teams forecast pipeline?</p>",
    reblog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": status_id,
        "created_at": created,
        "in_reply_to_id": reply_to,
        "visibility": visibility,
        "spoiler_text": "",
        "content": content,
        "url": f"https://social.example/@{account['username']}/{status_id}",
        "account": account,
        "replies_count": replies,
        "reblogs_count": reblogs,
        "favourites_count": favourites,
        "reblog": reblog,
    }


def context(server: HTTPServer, *, watermark: str | None = None, **options: Any) -> CollectContext:
    src = SourceConfig(name="masto", kind="mastodon", url=server.url_for("/").rstrip("/"), options=options)
    client = HttpClient(retries=1, backoff_factor=0, backoff_max=0)
    return CollectContext(source=src, client=client, run_date=RUN_DATE, watermark=watermark)


PAGE_ONE = [
    status(
        "105",
        "2026-11-19T09:00:00.000Z",
        replies=2,
        reblogs=3,
        favourites=11,
        content="<p>Our Q4 benchmark: win rates by deal size.<br/>Thread below</p>",
    ),
    status("104", "2026-11-18T15:30:00Z", reply_to="901", content="<p>We export to Snowflake, yes.</p>"),
    status(
        "103",
        "2026-11-17T08:00:00Z",
        reblog=status("500", "2026-11-16T08:00:00Z", account=DANA, favourites=4),
    ),
    status("102", "2026-11-16T08:00:00Z", visibility="private"),
]
PAGE_TWO = [status("101", "2026-09-01T08:00:00Z", favourites=1)]


def serve_account(server: HTTPServer, pages: dict[str | None, list[dict[str, Any]]]) -> None:
    server.expect_request("/api/v1/accounts/lookup", query_string={"acct": "acme"}).respond_with_json(ACME)

    def statuses(request: Request) -> Response:
        page = pages.get(request.args.get("max_id"), [])
        return Response(json.dumps(page), content_type="application/json")

    server.expect_request("/api/v1/accounts/1/statuses").respond_with_handler(statuses)


def test_account_statuses_threads_and_hashtag(httpserver: HTTPServer) -> None:
    serve_account(httpserver, {None: PAGE_ONE, "102": PAGE_TWO, "101": []})
    httpserver.expect_request("/api/v1/statuses/105/context").respond_with_json(
        {
            "ancestors": [],
            "descendants": [
                status(
                    "106",
                    "2026-11-19T10:00:00Z",
                    account=DANA,
                    reply_to="105",
                    favourites=2,
                    content="<p>Do you have this split by region? We are evaluating vendors.</p>",
                ),
                status("107", "2026-11-19T11:00:00Z", reply_to="106", content="<p>Yes, DM us.</p>"),
            ],
        }
    )
    httpserver.expect_request("/api/v1/statuses/104/context").respond_with_json(
        {
            "ancestors": [
                status(
                    "900",
                    "2026-11-18T12:00:00Z",
                    account=DANA,
                    content="<p>Which tools export to Snowflake?</p>",
                ),
                status("901", "2026-11-18T13:00:00Z", account=DANA, reply_to="900"),
            ],
            "descendants": [],
        }
    )
    httpserver.expect_request("/api/v1/timelines/tag/revops").respond_with_json(
        [status("300", "2026-11-19T07:00:00Z", account=DANA, favourites=5)]
    )

    result = collect(context(httpserver, account="@acme", hashtag="#revops"))

    items = {i.external_id: i for i in result.items}
    assert set(items) == {"105", "104", "500", "101", "106", "107", "900", "901", "300"}
    assert "102" not in items  # followers-only statuses are never collected
    assert items["105"].kind == "post" and items["105"].thread_external_id == "105"
    assert items["105"].text == "Our Q4 benchmark: win rates by deal size.\nThread below"
    assert (items["106"].thread_external_id, items["106"].parent_external_id) == ("105", "105")
    assert (items["107"].thread_external_id, items["107"].parent_external_id) == ("105", "106")
    # Our reply learns its thread's root from the context.
    assert (items["104"].kind, items["104"].thread_external_id, items["104"].parent_external_id) == (
        "reply",
        "900",
        "901",
    )
    assert items["500"].author_external_id == "77"  # a boost yields the boosted post
    observed = {(o.subject_type, o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("account", "1", "followers")] == 1240
    assert observed[("account", "1", "posts")] == 845
    assert observed[("item", "105", "likes")] == 11
    assert observed[("item", "105", "reposts")] == 3
    assert observed[("item", "105", "replies")] == 2
    authors = {a.external_id: a for a in result.authors}
    assert authors["77"].title == "VP Revenue Operations"
    assert authors["1"].handle == "acme" and authors["1"].bio == "Revenue analytics for B2B teams."
    assert json.loads(result.watermark or "{}")["newest"].startswith("2026-11-19T11:00")
    # First run pages back to the backfill limit: page two reaches September, so no third page.
    asked = [r.args.get("max_id") for r, _ in httpserver.log if r.path.endswith("/statuses")]
    assert asked == [None, "102"]


def test_a_later_run_stops_at_the_lookback_window(httpserver: HTTPServer) -> None:
    older = [status("98", "2026-11-12T08:00:00Z")]  # before the 7-day window
    serve_account(httpserver, {None: PAGE_ONE[:2] + older, "98": PAGE_TWO})
    httpserver.expect_request("/api/v1/statuses/104/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    httpserver.expect_request("/api/v1/statuses/105/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    watermark = json.dumps({"newest": "2026-11-19T09:00:00+00:00"})

    result = collect(context(httpserver, watermark=watermark, account="acme"))

    assert {i.external_id for i in result.items} == {"105", "104", "98"}
    asked = [r.args.get("max_id") for r, _ in httpserver.log if r.path.endswith("/statuses")]
    assert asked == [None]
    # Only threads of the window are followed: 98 is older.
    assert not any(r.path.endswith("/98/context") for r, _ in httpserver.log)


def test_a_thread_deleted_since_the_listing_is_skipped_with_a_warning(httpserver: HTTPServer) -> None:
    serve_account(httpserver, {None: PAGE_ONE[:1]})
    httpserver.expect_request("/api/v1/statuses/105/context").respond_with_json(
        {"error": "Record not found"}, status=404
    )
    result = collect(context(httpserver, account="acme"))
    assert [i.external_id for i in result.items] == ["105"]
    assert any("context: thread skipped, not found (404): Record not found" in w for w in result.warnings)
    assert result.http_status == 200


def test_a_source_that_did_not_run_for_weeks_catches_up_to_its_watermark(httpserver: HTTPServer) -> None:
    middle = [status("60", "2026-10-20T08:00:00Z")]  # before the window, after the watermark
    serve_account(
        httpserver,
        {None: PAGE_ONE[:2] + [status("98", "2026-11-12T08:00:00Z")], "98": middle, "60": PAGE_TWO},
    )
    httpserver.expect_request("/api/v1/statuses/104/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    httpserver.expect_request("/api/v1/statuses/105/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    result = collect(
        context(httpserver, account="acme", watermark=json.dumps({"newest": "2026-10-15T00:00:00+00:00"}))
    )
    assert {"98", "60", "101"} <= {i.external_id for i in result.items}
    asked = [r.args.get("max_id") for r, _ in httpserver.log if r.path.endswith("/statuses")]
    assert asked == [None, "98", "60"]  # stops at the page reaching back past 2026-10-15


def test_an_unreadable_watermark_starts_afresh_with_a_warning(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/timelines/tag/revops").respond_with_json([])
    result = collect(context(httpserver, hashtag="revops", watermark="not json"))
    assert any("'not json' is not readable" in w for w in result.warnings)
    assert json.loads(result.watermark or "null") == {}


def test_max_pages_bounds_a_run_and_says_so(httpserver: HTTPServer) -> None:
    pages = {None: [status("20", "2026-11-19T08:00:00Z")]}
    pages.update({str(n): [status(str(n - 1), "2026-11-19T08:00:00Z")] for n in range(20, 10, -1)})
    serve_account(httpserver, pages)
    result = collect(context(httpserver, account="acme", max_pages=3, max_threads=0))
    assert len(result.items) == 3
    assert any("max_pages=3" in w for w in result.warnings)


def test_an_empty_account_gives_its_snapshot_and_no_items(httpserver: HTTPServer) -> None:
    serve_account(httpserver, {})
    result = collect(context(httpserver, account="acme"))
    assert result.items == []
    assert {o.metric for o in result.observations} == {"followers", "following", "posts"}


def test_suspended_account_is_a_clear_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/accounts/lookup").respond_with_json(
        {**ACME, "suspended": True, "followers_count": 0, "statuses_count": 0}
    )
    with pytest.raises(AccountUnavailable, match="'acme' is suspended"):
        collect(context(httpserver, account="acme"))


def test_moved_account_is_collected_with_a_warning(httpserver: HTTPServer) -> None:
    moved = {**ACME, "moved": {**DANA, "acct": "acme@new.example"}}
    httpserver.expect_request("/api/v1/accounts/lookup").respond_with_json(moved)
    httpserver.expect_request("/api/v1/accounts/1/statuses").respond_with_json([])
    result = collect(context(httpserver, account="acme"))
    assert any("moved to 'acme@new.example'" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("status_code", "body", "expected"),
    [
        (
            401,
            {"error": "The access token is invalid"},
            "unauthorised \\(401\\): check the token: The access token is invalid",
        ),
        (403, {"error": "This action is not allowed"}, "forbidden \\(403\\)"),
        (404, {"error": "Record not found"}, "not found \\(404\\): Record not found"),
        (410, {"error": "Gone"}, "gone \\(410\\)"),
    ],
)
def test_error_answers_are_clear_fetch_errors(
    httpserver: HTTPServer, status_code: int, body: dict[str, str], expected: str
) -> None:
    httpserver.expect_request("/api/v1/accounts/lookup").respond_with_json(body, status=status_code)
    with pytest.raises(FetchError, match=expected) as info:
        collect(context(httpserver, account="acme"))
    assert info.value.status == status_code
    assert "/api/v1/accounts/lookup" in str(info.value)


def test_429_with_retry_after_is_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/api/v1/timelines/tag/revops").respond_with_json(
        {"error": "Too many requests"}, status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_request("/api/v1/timelines/tag/revops").respond_with_json(
        [status("300", "2026-11-19T07:00:00Z", account=DANA)]
    )
    result = collect(context(httpserver, hashtag="revops"))
    assert [i.external_id for i in result.items] == ["300"]
    assert [resp.status_code for _, resp in httpserver.log][:2] == [429, 200]


def test_429_without_retry_after_fails_after_the_retries(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/timelines/tag/revops").respond_with_json(
        {"error": "Too many requests"}, status=429
    )
    with pytest.raises(FetchError, match="rate limited \\(429\\)") as info:
        collect(context(httpserver, hashtag="revops"))
    assert info.value.status == 429
    assert len(httpserver.log) == 2  # the request and one retry


def test_html_rate_limit_page_served_as_json_is_a_parse_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/timelines/tag/revops").respond_with_data(
        "<!DOCTYPE html><html><body><h1>Slow down</h1></body></html>", content_type="application/json"
    )
    with pytest.raises(ParseError, match="/api/v1/timelines/tag/revops.*HTML page"):
        collect(context(httpserver, hashtag="revops"))


def test_token_goes_in_the_header_and_nowhere_else(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTO_TOKEN", "tok-secret-123")
    httpserver.expect_request(
        "/api/v2/search", headers={"Authorization": "Bearer tok-secret-123"}
    ).respond_with_json(
        {"accounts": [], "statuses": [status("300", "2026-11-19T07:00:00Z", account=DANA)], "hashtags": []}
    )
    result = collect(context(httpserver, search="pipeline forecasting", token_env="MASTO_TOKEN"))
    assert [i.external_id for i in result.items] == ["300"]
    assert "tok-secret-123" not in json.dumps(result.to_json())
    request = httpserver.log[0][0]
    assert "tok-secret-123" not in request.url and request.args["q"] == "pipeline forecasting"

    httpserver.clear()
    httpserver.expect_request("/api/v2/search").respond_with_json(
        {"error": "The access token is invalid"}, status=401
    )
    with pytest.raises(FetchError) as info:
        collect(context(httpserver, search="x", token_env="MASTO_TOKEN"))
    assert "tok-secret-123" not in str(info.value)


def test_missing_token_variable_and_missing_target_are_config_errors(httpserver: HTTPServer) -> None:
    with pytest.raises(ConfigError, match="'NO_SUCH_TOKEN_VAR'"):
        collect(context(httpserver, hashtag="x", token_env="NO_SUCH_TOKEN_VAR"))
    with pytest.raises(ConfigError, match="needs 'account', 'hashtag' or 'search'"):
        collect(context(httpserver))


def test_token_from_an_airflow_connection(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MASTO_TEST", json.dumps({"conn_type": "http", "password": "conn-secret"})
    )
    httpserver.expect_request(
        "/api/v1/timelines/tag/revops", headers={"Authorization": "Bearer conn-secret"}
    ).respond_with_json([])
    result = collect(context(httpserver, hashtag="revops", conn_id="masto_test"))
    assert result.items == [] and result.requests == 1


def test_reruns_never_duplicate_in_the_warehouse(
    httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    serve_account(httpserver, {None: PAGE_ONE, "102": PAGE_TWO})
    httpserver.expect_request("/api/v1/statuses/105/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    httpserver.expect_request("/api/v1/statuses/104/context").respond_with_json(
        {"ancestors": [], "descendants": []}
    )
    source = f"{{name: masto, kind: mastodon, url: '{httpserver.url_for('/')}', account: acme}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme", [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    )
    assert (items, ours) == (4, 3)  # 105, 104, 500 (boosted, not ours), 101
    assert per_day == {RUN_DATE: 3 + 4 * 3, date(2026, 11, 21): 3 + 4 * 3}


# --- every real-world Mastodon answer, served over loopback ----------------


def _expected_statuses(data: Any) -> int:
    """Public statuses a file holds, counted independently of the collector."""
    if isinstance(data, dict) and "ancestors" in data:
        return len(data["ancestors"]) + len(data["descendants"])
    rows = data if isinstance(data, list) else [data]
    return sum(1 for s in rows if s.get("visibility") in ("public", "unlisted", None))


def test_every_realworld_mastodon_file_over_loopback(realworld: Path, httpserver: HTTPServer) -> None:
    files = sorted((realworld / "social" / "mastodon").glob("*.json"))
    assert files
    client = HttpClient(retries=0)
    seen = 0
    for path in files:
        raw = path.read_bytes()
        data = json.loads(raw)
        if path.name.startswith("error_"):
            # Served as the answer of a timeline, with the status its name gives.
            code = 401 if "401" in path.name else 404 if "404" in path.name else 200
            httpserver.expect_request(f"/api/v1/timelines/tag/{path.stem}").respond_with_data(
                raw, status=code, content_type="application/json"
            )
            expected = (
                (FetchError, data["error"]) if code != 200 else (ParseError, "expected a list of statuses")
            )
            with pytest.raises(expected[0], match=re.escape(expected[1])):
                collect(context(httpserver, hashtag=path.stem))
            seen += 1
            continue
        httpserver.expect_request(f"/{path.name}").respond_with_data(raw, content_type="application/json")
        url = httpserver.url_for(f"/{path.name}")
        body = client.get(url).json()
        if path.name.startswith(("account_", "admin_account")):
            if data.get("suspended"):
                with pytest.raises(AccountUnavailable, match="suspended"):
                    parse_account(body, where=url)
            else:
                records = parse_account(body, where=url)
                assert records.authors[0].external_id == str(data["id"])
                assert {o.metric for o in records.observations} == {"followers", "following", "posts"}
                assert bool(records.warnings) == ("moved" in data)
        elif "ancestors" in data:
            _root, records = parse_context(body, status_id="x", where=url)
            assert len(records.items) == _expected_statuses(data)
        elif isinstance(data, list):
            records = parse_statuses(body, where=url)
            assert len(records.items) == _expected_statuses(data) == len(data)
        else:
            records = parse_status(body, where=url)
            assert len(records.items) == _expected_statuses(data) == 1
            assert records.items[0].external_id == str(data["id"])
        seen += 1
    assert seen == len(files)
