"""The Hacker News collector against loopback servers answering like HN's Algolia and Firebase APIs."""

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
from collectors.common import ApiError
from collectors.hackernews import collect, parse_item_tree, parse_search
from collectors.http import HttpClient
from engage.config import SourceConfig
from engage.errors import ConfigError, FetchError, ParseError
from tests.social_support import run_days

RUN_DATE = date(2026, 11, 20)


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def story_hit(
    item_id: int, created: str, title: str, *, points: int = 10, comments: int = 0, author: str = "dana"
) -> dict[str, Any]:
    return {
        "objectID": str(item_id),
        "title": title,
        "url": "https://acme.example/blog/benchmark",
        "author": author,
        "points": points,
        "num_comments": comments,
        "story_text": None,
        "comment_text": None,
        "created_at": created + ".000Z",
        "created_at_i": epoch(created),
        "_tags": ["story", f"author_{author}", f"story_{item_id}"],
    }


def node(
    item_id: int,
    created: str,
    text: str | None,
    *,
    author: str | None = "ravi",
    kind: str = "comment",
    parent: int | None = None,
    story: int = 41000001,
    children: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "created_at_i": epoch(created),
        "type": kind,
        "author": author,
        "text": text,
        "points": None,
        "parent_id": parent,
        "story_id": story,
        "children": children or [],
        **extra,
    }


S1 = story_hit(
    41000001, "2026-11-19T09:00:00", "Acme's Q4 win-rate benchmark", points=212, comments=4, author="acme_hn"
)
S2 = story_hit(41000002, "2026-11-18T09:00:00", "Show HN: open-source pipeline forecasting", points=35)
S3 = story_hit(40000003, "2026-10-30T09:00:00", "Ask HN: RevOps tooling in 2026?", points=80, comments=55)
TREE = node(
    41000001,
    "2026-11-19T09:00:00",
    None,
    author="acme_hn",
    kind="story",
    parent=None,
    title=S1["title"],
    points=212,
    children=[
        node(
            41000010,
            "2026-11-19T10:00:00",
            "<p>Methodology?<p>Which <i>segments</i>?",
            parent=41000001,
            children=[
                node(
                    41000011,
                    "2026-11-19T10:30:00",
                    None,
                    author=None,
                    parent=41000010,
                    children=[
                        node(
                            41000012, "2026-11-19T11:00:00", "Reply below a deleted comment.", parent=41000011
                        ),
                    ],
                ),
            ],
        ),
        node(
            41000013,
            "2026-11-19T12:00:00",
            "We switched from Northwind; happy so far.",
            author="priya",
            parent=41000001,
        ),
    ],
)


def context(server: HTTPServer, *, watermark: str | None = None, **options: Any) -> CollectContext:
    src = SourceConfig(name="hn", kind="hackernews", url=server.url_for("/api/v1"), options=options)
    return CollectContext(
        source=src, client=HttpClient(retries=1, backoff_factor=0), run_date=RUN_DATE, watermark=watermark
    )


def serve_search(server: HTTPServer, pages: list[list[dict[str, Any]]], seen: list[dict[str, str]]) -> None:
    def search(request: Request) -> Response:
        seen.append(dict(request.args))
        page = int(request.args.get("page", 0))
        body = {
            "hits": pages[page] if page < len(pages) else [],
            "page": page,
            "nbPages": len(pages),
            "hitsPerPage": 100,
        }
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request("/api/v1/search_by_date").respond_with_handler(search)
    server.expect_request("/api/v1/items/41000001").respond_with_json(TREE)


def test_search_by_domain_pages_and_comment_trees(httpserver: HTTPServer) -> None:
    seen: list[dict[str, str]] = []
    serve_search(httpserver, [[S1, S2], [S3]], seen)

    result = collect(context(httpserver, domain="acme.example"))

    assert seen[0]["query"] == "acme.example" and seen[0]["restrictSearchableAttributes"] == "url"
    assert seen[0]["tags"] == "story"
    # First run: back to the 30-day backfill, as an Algolia numeric filter.
    assert seen[0]["numericFilters"] == f"created_at_i>{epoch('2026-10-22T00:00:00')}"
    assert [s["page"] for s in seen] == ["0", "1"]
    items = {i.external_id: i for i in result.items}
    assert set(items) == {"41000001", "41000002", "40000003", "41000010", "41000012", "41000013"}
    assert "41000011" not in items  # deleted: not collected, its reply is
    assert (items["41000012"].thread_external_id, items["41000012"].parent_external_id) == (
        "41000001",
        "41000011",
    )
    assert items["41000010"].text == "Methodology?\nWhich segments?"
    assert items["41000001"].url == "https://news.ycombinator.com/item?id=41000001"
    assert items["41000001"].title == "Acme's Q4 win-rate benchmark"
    observed = {(o.subject_external_id, o.metric): o.value for o in result.observations}
    assert observed[("41000001", "score")] == 212 and observed[("41000001", "comments")] == 4
    # Only S1 is inside the window with comments: one tree.
    assert [r.path for r, _ in httpserver.log if "/items/" in r.path] == ["/api/v1/items/41000001"]
    assert json.loads(result.watermark or "{}")["newest"].startswith("2026-11-19T12:00")


def test_a_later_run_filters_by_the_window_and_watermark(httpserver: HTTPServer) -> None:
    seen: list[dict[str, str]] = []
    serve_search(httpserver, [[S1]], seen)
    collect(
        context(
            httpserver,
            query="pipeline forecasting",
            tags="comment",
            watermark=json.dumps({"newest": "2026-11-19T12:00:00+00:00"}),
        )
    )
    assert seen[0]["numericFilters"] == f"created_at_i>{epoch('2026-11-14T00:00:00')}"
    assert seen[0]["tags"] == "comment" and "restrictSearchableAttributes" not in seen[0]


def test_a_story_gone_since_the_search_is_skipped_with_a_warning(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/items/41000001").respond_with_json(
        {"status": 404, "error": "Not Found"}, status=404
    )
    serve_search(httpserver, [[S1]], [])
    result = collect(context(httpserver, query="acme"))
    assert [i.external_id for i in result.items] == ["41000001"]
    assert any("items/41000001: thread skipped" in w for w in result.warnings)


def test_an_empty_search(httpserver: HTTPServer) -> None:
    serve_search(httpserver, [], [])
    result = collect(context(httpserver, query="nothing matches"))
    assert result.items == [] and result.observations == [] and result.requests == 1


def test_firebase_story_list(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/beststories.json").respond_with_json([41000001, 41000099, 41000002])
    httpserver.expect_request("/api/v1/item/41000001.json").respond_with_json(
        {
            "by": "acme_hn",
            "descendants": 4,
            "id": 41000001,
            "kids": [41000010],
            "score": 212,
            "time": epoch("2026-11-19T09:00:00"),
            "title": "Acme's Q4 win-rate benchmark",
            "type": "story",
        }
    )
    httpserver.expect_request("/api/v1/item/41000099.json").respond_with_json(None)
    httpserver.expect_request("/api/v1/item/41000002.json").respond_with_json(
        {"id": 41000002, "deleted": True, "type": "story", "time": epoch("2026-11-18T09:00:00")}
    )
    result = collect(context(httpserver, list="best"))
    assert [i.external_id for i in result.items] == ["41000001"]
    assert {(o.metric, o.value) for o in result.observations} == {("score", 212), ("comments", 4)}
    assert any("41000099.json: no such item" in w for w in result.warnings)
    with pytest.raises(ConfigError, match="'list' must be one of"):
        collect(context(httpserver, list="worst"))


def test_options_must_name_one_api(httpserver: HTTPServer) -> None:
    with pytest.raises(ConfigError, match="not both"):
        collect(context(httpserver))
    with pytest.raises(ConfigError, match="not both"):
        collect(context(httpserver, query="x", list="top"))


@pytest.mark.parametrize(
    ("status_code", "expected"),
    [(401, "unauthorised"), (403, "forbidden"), (404, "not found"), (410, "gone")],
)
def test_http_errors_are_clear(httpserver: HTTPServer, status_code: int, expected: str) -> None:
    httpserver.expect_request("/api/v1/search_by_date").respond_with_json(
        {"message": "Index not allowed", "status": status_code}, status=status_code
    )
    with pytest.raises(ApiError, match=f"{expected}.*Index not allowed") as info:
        collect(context(httpserver, query="x"))
    assert info.value.status == status_code


def test_429_with_and_without_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/api/v1/search_by_date").respond_with_data(
        "", status=429, headers={"Retry-After": "0"}
    )
    serve_search(httpserver, [[S2]], [])
    assert [i.external_id for i in collect(context(httpserver, query="x")).items] == ["41000002"]
    httpserver.clear()
    httpserver.expect_request("/api/v1/search_by_date").respond_with_data("", status=429)
    with pytest.raises(FetchError, match="rate limited"):
        collect(context(httpserver, query="x"))


def test_html_page_as_json_and_an_item_that_is_no_item(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/search_by_date").respond_with_data(
        "<html><body>Sorry, we're not able to serve your requests this quickly.</body></html>",
        content_type="application/json",
    )
    with pytest.raises(ParseError, match="search_by_date.*HTML page"):
        collect(context(httpserver, query="x"))
    with pytest.raises(ParseError, match="expected a Hacker News item"):
        parse_item_tree({"id": 623037, "username": "pg", "karma": 1}, where="http://x/users/pg")


def test_reruns_never_duplicate_in_the_warehouse(
    httpserver: HTTPServer, engine: Engine, tmp_path: Path
) -> None:
    serve_search(httpserver, [[S1, S2], [S3]], [])
    source = f"{{name: hn, kind: hackernews, url: '{httpserver.url_for('/api/v1')}', query: acme}}"
    items, ours, per_day = run_days(
        engine, tmp_path, source, "acme_hn", [RUN_DATE, RUN_DATE, date(2026, 11, 21)]
    )
    assert (items, ours) == (6, 1)
    assert per_day == {RUN_DATE: 3 * 2, date(2026, 11, 21): 3 * 2}


# --- every real-world HN answer, served over loopback ------------------------


def _tree_nodes(item: dict[str, Any]) -> int:
    """Live items of an Algolia tree or a Firebase item, counted independently."""
    alive = bool(item.get("author") or item.get("by") or item.get("text")) and not item.get("deleted")
    return int(alive) + sum(_tree_nodes(c) for c in item.get("children") or [])


def test_every_realworld_hackernews_file_over_loopback(realworld: Path, httpserver: HTTPServer) -> None:
    folder = realworld / "social" / "hackernews"
    client = HttpClient(retries=0)
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_bytes())
        if path.name == "algolia_responses_bundle.json":  # [{"url": ..., "reply": ...}] as recorded
            for number, answer in enumerate(data):
                httpserver.expect_request(f"/bundle/{number}").respond_with_json(answer["reply"])
                url = httpserver.url_for(f"/bundle/{number}")
                body = client.get(url).json()
                if "hits" in answer["reply"]:
                    records, times, next_page = parse_search(body, where=url)
                    assert len(records.items) == len(answer["reply"]["hits"]) and None not in times
                    assert next_page == answer["reply"]["page"] + 1
                elif "username" in answer["reply"]:
                    with pytest.raises(ParseError, match="expected a Hacker News item"):
                        parse_item_tree(body, where=url)
                else:
                    assert len(parse_item_tree(body, where=url).items) == _tree_nodes(answer["reply"]) == 3
        elif path.name == "beststories.json":
            # The Firebase list mode end to end on the real list and the real items it names.
            httpserver.expect_request("/api/v1/beststories.json").respond_with_data(path.read_bytes())
            for item_id in data:
                httpserver.expect_request(f"/api/v1/item/{item_id}.json").respond_with_data(
                    next(folder.glob(f"item_{item_id}_*.json")).read_bytes()
                )
            result = collect(context(httpserver, list="best"))
            assert [i.external_id for i in result.items] == [str(i) for i in data]
            assert all(i.title for i in result.items)
        else:
            httpserver.expect_request(f"/{path.name}").respond_with_data(path.read_bytes())
            url = httpserver.url_for(f"/{path.name}")
            records = parse_item_tree(client.get(url).json(), where=url)
            assert [i.external_id for i in records.items] == [str(data["id"])]
            assert records.items[0].kind == ("comment" if data["type"] == "comment" else "post")
            if "descendants" in data:
                assert {o.metric: o.value for o in records.observations}["comments"] == data["descendants"]
