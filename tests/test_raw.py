"""Raw landing, re-parse without HTTP, and retention."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, delete, select

from collectors.http import HttpClient
from engage import pipeline
from engage.cli import main
from engage.config import load_sources
from engage.errors import FetchError
from engage.raw import (
    NotLanded,
    RawError,
    RawLanding,
    ReplayClient,
    prune_raw,
    read_context,
    reparse_day,
    source_dir,
)
from engage.warehouse.schema import author, content_item, engagement_observation, source

DAY = date(2026, 11, 20)
FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:slash="http://purl.org/rss/1.0/modules/slash/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Vendor</title>
<item><guid>p1</guid><title>How to choose a CRM</title><link>http://v/1</link><dc:creator>Ann</dc:creator>
<pubDate>Thu, 19 Nov 2026 10:00:00 GMT</pubDate><description>A checklist</description><slash:comments>5</slash:comments></item>
<item><guid>p2</guid><title>Pricing of the pro plan?</title><link>http://v/2</link><dc:creator>Bob</dc:creator>
<pubDate>Fri, 20 Nov 2026 10:00:00 GMT</pubDate><description>Quote</description><slash:comments>3</slash:comments></item>
</channel></rss>"""


def test_every_response_is_landed_with_its_metadata(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/topics", query_string="page=2").respond_with_json(
        {"topics": [1, 2]}, headers={"ETag": '"t2"'}
    )
    httpserver.expect_request("/gone").respond_with_data("gone", status=410)
    landing = RawLanding(tmp_path / "raw", DAY, "forum")
    client = HttpClient(retries=0, on_response=landing)
    client.get(httpserver.url_for("/api/topics"), params={"page": 2})
    with pytest.raises(FetchError):
        client.get(httpserver.url_for("/gone"))

    folder = tmp_path / "raw" / "2026-11-20" / "forum"
    metas = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    assert [m["status"] for m in metas] == [200, 410]  # error answers are kept too
    first = metas[0]
    assert first["request_url"] == httpserver.url_for("/api/topics") + "?page=2"
    assert first["params"] == {"page": 2}
    assert first["headers"]["ETag"] == '"t2"'
    assert first["fetched_at"].startswith("20") and first["fetched_at"].endswith("+00:00")
    body = gzip.decompress((folder / first["body"]).read_bytes())
    assert json.loads(body) == {"topics": [1, 2]}
    assert first["sha256"] == hashlib.sha256(body).hexdigest() and first["body_bytes"] == len(body)

    # The replay client answers the same requests from those files, statuses included.
    replay = ReplayClient(folder)
    assert replay.get(httpserver.url_for("/api/topics"), params={"page": 2}).json() == {"topics": [1, 2]}
    with pytest.raises(FetchError, match="gone"):
        replay.get(httpserver.url_for("/gone"))
    with pytest.raises(NotLanded, match="no response to this URL was landed"):
        replay.get(httpserver.url_for("/api/topics"), params={"page": 3})
    assert len(httpserver.log) == 2


def _rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """What a re-parse must reproduce: every loaded value but the load's own timestamps."""
    with engine.connect() as conn:
        return {
            "items": sorted(
                conn.execute(
                    select(
                        content_item.c.external_id,
                        content_item.c.kind,
                        content_item.c.title,
                        content_item.c.body_text,
                        content_item.c.url,
                        content_item.c.published_at,
                        content_item.c.thread_external_id,
                        content_item.c.collected_date,
                        content_item.c.content_hash,
                        content_item.c.is_ours,
                        author.c.external_id,
                    ).join(author, author.c.author_id == content_item.c.author_id, isouter=True)
                ).all()
            ),
            "observations": sorted(
                conn.execute(
                    select(
                        engagement_observation.c.subject_external_id,
                        engagement_observation.c.metric,
                        engagement_observation.c.value,
                        engagement_observation.c.observed_date,
                    )
                ).all()
            ),
            "authors": sorted(conn.execute(select(author.c.external_id, author.c.display_name)).all()),
        }


def test_reparse_reproduces_the_rows_without_any_request(
    engine: Engine,
    warehouse_url: str,
    httpserver: HTTPServer,
    write_sources,
    settings_for,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    httpserver.expect_request("/vendor.xml").respond_with_data(
        FEED, content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )
    httpserver.expect_request("/missing.xml").respond_with_data("no", status=404)
    path = write_sources(
        f"""team: {{domains: [vendor.example]}}
sources:
  - {{name: vendor, kind: rss, url: "{httpserver.url_for("/vendor.xml")}", own: true}}
  - {{name: broken, kind: rss, url: "{httpserver.url_for("/missing.xml")}"}}
"""
    )
    settings = settings_for(warehouse_url, sources=path)
    config = load_sources(path)
    pipeline.run_day(settings, config, DAY)
    # A rerun of the day gets a 304 (the ETag is stored now); the re-parse must still use the full answer.
    httpserver.clear()
    httpserver.expect_request("/vendor.xml", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_request("/missing.xml").respond_with_data("no", status=404)
    assert {s.source: s.status for s in pipeline.run_day(settings, config, DAY)}["vendor"] == "not_modified"
    before = _rows(engine)
    assert len(before["items"]) == 2 and len(before["observations"]) == 2
    with engine.connect() as conn:
        cursor_before = conn.execute(
            select(source.c.etag, source.c.consecutive_failures).order_by(source.c.name)
        ).all()
    with engine.begin() as conn:
        for table in (engagement_observation, content_item, author):
            conn.execute(delete(table))
    requests_so_far = len(httpserver.log)

    monkeypatch.setenv("ENGAGE_HOME", str(settings.home))
    monkeypatch.setenv("ENGAGE_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("ENGAGE_SOURCES", str(path))
    result = CliRunner().invoke(main, ["reparse", "--date", "2026-11-20", "--source", "vendor"])

    assert result.exit_code == 0, result.output
    assert "vendor" in result.output and "success" in result.output
    assert len(httpserver.log) == requests_so_far  # not one request
    assert _rows(engine) == before
    with engine.connect() as conn:  # the cursors and failure counts are the collection's, untouched
        assert (
            conn.execute(select(source.c.etag, source.c.consecutive_failures).order_by(source.c.name)).all()
            == cursor_before
        )

    # Every source with raw data that day: the landed 404 fails again, clearly, and the exit code says so.
    result = CliRunner().invoke(main, ["reparse", "--date", "2026-11-20"])
    assert result.exit_code == 1
    assert "broken" in result.output and "not found (404)" in result.output
    assert len(httpserver.log) == requests_so_far


def test_reparse_of_a_day_without_raw_data_names_the_folder(
    tmp_path: Path, write_sources, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    path = write_sources('sources:\n  - {name: a, kind: rss, url: "http://a.example/f"}\n')
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENGAGE_SOURCES", str(path))
    result = CliRunner().invoke(main, ["reparse", "--date", "2026-01-02", "--source", "a"])
    assert result.exit_code == 1
    assert "raw/2026-01-02" in result.output and "'a'" in result.output


def _day_folders(raw: Path, names: list[str]) -> None:
    for name in names:
        (raw / name / "src").mkdir(parents=True)
        (raw / name / "src" / "x.json").write_text("{}")


def test_retention_removes_old_day_folders_only(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    raw = tmp_path / "home" / "raw"
    _day_folders(raw, ["2026-02-28", "2026-03-01", "2026-03-02", "2026-04-01", "notes", "2026-13-45"])
    (raw / "2020-01-01").write_text("a file, not a day folder")

    removed = prune_raw(raw, date(2026, 4, 1), keep_days=30)

    assert [p.name for p in removed] == ["2026-02-28", "2026-03-01"]
    left = sorted(p.name for p in raw.iterdir())
    assert left == ["2020-01-01", "2026-03-02", "2026-04-01", "2026-13-45", "notes"]

    # The CLI uses ENGAGE_RAW_RETENTION_DAYS unless told otherwise.
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENGAGE_RAW_RETENTION_DAYS", "0")
    result = CliRunner().invoke(main, ["raw", "prune", "--today", "2026-04-01"])
    assert result.exit_code == 0, result.output
    assert "1 day folder(s) older than 0 days" in result.output
    assert sorted(p.name for p in raw.iterdir()) == ["2020-01-01", "2026-04-01", "2026-13-45", "notes"]


def test_daily_run_lands_raw_and_applies_retention(
    sqlite_engine: Engine,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    httpserver.expect_request("/vendor.xml").respond_with_data(FEED, content_type="application/rss+xml")
    path = write_sources(
        f'sources:\n  - {{name: vendor, kind: rss, url: "{httpserver.url_for("/vendor.xml")}"}}\n'
    )
    settings = settings_for(str(sqlite_engine.url), sources=path, raw_retention_days=10)
    _day_folders(settings.raw_dir, ["2026-11-09", "2026-11-10"])

    pipeline.run_day(settings, load_sources(path), DAY)

    folder = source_dir(settings.raw_dir, DAY, "vendor")
    assert len(list(folder.glob("*.body.gz"))) == 1
    assert read_context(folder) == {"etag": None, "last_modified": None, "watermark": None}
    assert sorted(p.name for p in settings.raw_dir.iterdir()) == ["2026-11-10", "2026-11-20"]


def test_a_304_is_landed_without_a_body_and_the_days_first_cursor_is_kept(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request("/feed.xml").respond_with_data(FEED, headers={"ETag": '"e1"'})
    httpserver.expect_ordered_request("/feed.xml").respond_with_data("", status=304)
    first = RawLanding(tmp_path / "raw", DAY, "vendor")
    first.set_context(None, None, "w0")
    HttpClient(retries=0, on_response=first).get(httpserver.url_for("/feed.xml"))
    rerun = RawLanding(tmp_path / "raw", DAY, "vendor")  # a second attempt the same day
    rerun.set_context('"e1"', None, "w1")
    HttpClient(retries=0, on_response=rerun).get(httpserver.url_for("/feed.xml"), etag='"e1"')

    folder = source_dir(tmp_path / "raw", DAY, "vendor")
    metas = sorted((json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda m: m["fetched_at"])
    assert [(m["status"], m["body"] is None) for m in metas] == [(200, False), (304, True)]
    assert len(list(folder.glob("*.body.gz"))) == 1
    assert read_context(folder) == {"etag": None, "last_modified": None, "watermark": "w0"}
    assert ReplayClient(folder).get(httpserver.url_for("/feed.xml")).body == FEED.encode()


def test_a_source_whose_answers_are_all_304_lands_nothing_but_a_later_answer_brings_its_304(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/feed.xml").respond_with_data("", status=304)
    httpserver.expect_request("/other.xml").respond_with_data(FEED, headers={"ETag": '"o1"'})
    quiet = RawLanding(tmp_path / "raw", DAY, "quiet")
    HttpClient(retries=0, on_response=quiet).get(httpserver.url_for("/feed.xml"), etag='"e1"')
    assert not (tmp_path / "raw").exists() and quiet.written == 0

    mixed = RawLanding(tmp_path / "raw", DAY, "mixed")  # a 304 page, then one that changed
    client = HttpClient(retries=0, on_response=mixed)
    client.get(httpserver.url_for("/feed.xml"), etag='"e1"')
    client.get(httpserver.url_for("/other.xml"))
    folder = source_dir(tmp_path / "raw", DAY, "mixed")
    metas = sorted((json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda m: m["fetched_at"])
    assert [m["status"] for m in metas] == [304, 200]
    assert ReplayClient(folder).get(httpserver.url_for("/feed.xml"), etag='"e1"').status == 304


def test_reparse_of_a_day_without_landed_responses_says_why(
    tmp_path: Path, write_sources, settings_for
) -> None:
    path = write_sources('sources:\n  - {name: quiet, kind: rss, url: "http://127.0.0.1:9/feed.xml"}\n')
    settings = settings_for(f"sqlite:///{tmp_path / 'w.db'}", sources=path)
    with pytest.raises(RawError, match="all 304 Not Modified lands nothing"):
        reparse_day(settings, load_sources(path), DAY)


def test_a_context_json_of_an_older_layout_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "context.json").write_text('{"etag": "\\"e9\\"", "last_modified": null, "watermark": "w9"}')
    assert read_context(tmp_path) == {"etag": '"e9"', "last_modified": None, "watermark": "w9"}
