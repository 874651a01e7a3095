"""The daily pipeline end to end over loopback HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from datetime import date

from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, func, select

from collectors.records import AuthorRecord, CollectResult, ItemRecord, ObservationRecord
from engage import pipeline
from engage.collection_runs import CollectionRuns
from engage.config import load_sources
from engage.warehouse.schema import author, collection_run, content_item, engagement_observation, source

DAY = date(2026, 11, 20)

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:slash="http://purl.org/rss/1.0/modules/slash/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Vendor</title>
<item><guid>p1</guid><title>How to choose a CRM</title><link>http://v/1</link><dc:creator>Ann</dc:creator>
<pubDate>Thu, 19 Nov 2026 10:00:00 GMT</pubDate><description>A checklist</description><slash:comments>{c1}</slash:comments></item>
<item><guid>p2</guid><title>Pipeline keeps slipping?</title><link>http://v/2</link><dc:creator>Bob</dc:creator>
<pubDate>Fri, 20 Nov 2026 10:00:00 GMT</pubDate><description>Signs</description><slash:comments>3</slash:comments></item>
</channel></rss>"""


def _setup(httpserver: HTTPServer, write_sources, settings_for, warehouse_url: str, extra: str = ""):  # type: ignore[no-untyped-def]
    path = write_sources(
        f"""
team: {{domains: [vendor.example]}}
sources:
  - {{name: vendor, kind: rss, url: "{httpserver.url_for("/vendor.xml")}", own: true}}
  - {{name: broken, kind: rss, url: "{httpserver.url_for("/missing.xml")}"}}
{extra}"""
    )
    return settings_for(warehouse_url, sources=path), load_sources(path)


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(content_item)).scalar_one(),
            conn.execute(select(func.count()).select_from(engagement_observation)).scalar_one(),
            conn.execute(select(func.count()).select_from(author)).scalar_one(),
        )


def test_run_day_loads_records_a_failure_and_reruns_idempotently(
    engine: Engine,
    warehouse_url: str,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    httpserver.expect_request("/vendor.xml").respond_with_data(
        FEED.replace("{c1}", "5"), content_type="application/rss+xml"
    )
    httpserver.expect_request("/missing.xml").respond_with_data("gone", status=404)
    settings, config = _setup(httpserver, write_sources, settings_for, warehouse_url)

    summary = pipeline.run_day(settings, config, DAY)
    by_name = {s.source: s for s in summary}
    assert by_name["vendor"].status == "success" and by_name["vendor"].items_collected == 2
    assert by_name["broken"].status == "failed" and "404" in (by_name["broken"].error or "")
    assert [s.source for s in pipeline.failed_sources(summary)] == ["broken"]
    assert _counts(engine) == (2, 2, 2)
    with engine.connect() as conn:
        assert conn.execute(
            select(func.bool_and(content_item.c.is_ours))
            if engine.dialect.name == "postgresql"
            else select(func.min(content_item.c.is_ours))
        ).scalar_one()
        failures, last_error, next_attempt = conn.execute(
            select(source.c.consecutive_failures, source.c.last_error, source.c.next_attempt_at).where(
                source.c.name == "broken"
            )
        ).one()
    assert failures == 1 and "not found" in last_error and next_attempt is not None

    # The same day again, with a changed comment count: replaced, not appended.
    httpserver.clear()
    httpserver.expect_request("/vendor.xml").respond_with_data(
        FEED.replace("{c1}", "9"), content_type="application/rss+xml"
    )
    httpserver.expect_request("/missing.xml").respond_with_data("gone", status=404)
    pipeline.run_day(settings, config, DAY)
    assert _counts(engine) == (2, 2, 2)
    with engine.connect() as conn:
        value = conn.execute(
            select(engagement_observation.c.value).where(engagement_observation.c.subject_external_id == "p1")
        ).scalar_one()
        runs = conn.execute(select(func.count()).select_from(collection_run)).scalar_one()
    assert value == 9
    assert runs == 4  # every attempt is kept in the log


def test_conditional_get_state_is_stored_and_used(
    engine: Engine,
    warehouse_url: str,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    body = FEED.replace("{c1}", "1")
    httpserver.expect_ordered_request("/vendor.xml").respond_with_data(
        body, headers={"ETag": '"e1"', "Last-Modified": "Fri, 20 Nov 2026 00:00:00 GMT"}
    )
    httpserver.expect_ordered_request("/vendor.xml", headers={"If-None-Match": '"e1"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_ordered_request("/vendor.xml", headers={"If-None-Match": '"e1"'}).respond_with_data(
        body, headers={"ETag": '"e2"'}
    )
    settings, config = _setup(httpserver, write_sources, settings_for, warehouse_url)
    config = config.__class__(path=config.path, sources=config.sources[:1], team=config.team)

    def state() -> tuple[str | None, str | None]:
        with engine.connect() as conn:
            return conn.execute(
                select(source.c.etag, source.c.last_modified).where(source.c.name == "vendor")
            ).one()

    assert pipeline.run_day(settings, config, DAY)[0].status == "success"
    assert state() == ('"e1"', "Fri, 20 Nov 2026 00:00:00 GMT")
    outcome = pipeline.collect_source(settings, config, "vendor", date(2026, 11, 21), engine=engine)
    assert outcome.status == "not_modified"
    # Nothing to load: nothing staged, and the run row is ended and loaded at once.
    assert not pipeline.staged_path(settings, date(2026, 11, 21), "vendor").exists()
    with engine.connect() as conn:
        run = conn.execute(
            select(collection_run).where(collection_run.c.run_date == date(2026, 11, 21))
        ).one()
    assert (run.status, run.http_status) == ("not_modified", 304)
    assert run.finished_at is not None and run.loaded_at is not None
    assert state() == ('"e1"', "Fri, 20 Nov 2026 00:00:00 GMT")  # kept on 304
    assert pipeline.load_day(settings, config, date(2026, 11, 21), engine=engine) == []
    assert _counts(engine)[0] == 2
    pipeline.run_day(settings, config, date(2026, 11, 22))
    assert state() == ('"e2"', None)  # replaced on 200: no Last-Modified any more


def test_failed_load_does_not_store_the_new_etag(
    sqlite_engine: Engine,
    tmp_path,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    """Validators are written with the items: if the load never happens, the next run refetches."""
    httpserver.expect_request("/vendor.xml").respond_with_data(
        FEED.replace("{c1}", "1"), headers={"ETag": '"e1"'}
    )
    settings, config = _setup(httpserver, write_sources, settings_for, str(sqlite_engine.url))
    pipeline.collect_source(settings, config, "vendor", DAY, engine=sqlite_engine)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(source.c.etag).where(source.c.name == "vendor")).scalar_one() is None
    pipeline.load_day(settings, config, DAY, engine=sqlite_engine)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(source.c.etag).where(source.c.name == "vendor")).scalar_one() == '"e1"'


def _staged_day(name: str, etag: str) -> CollectResult:
    return CollectResult(
        http_status=200,
        etag=etag,
        authors=[AuthorRecord(f"{name}-a", handle=f"{name}-user")],
        items=[
            ItemRecord(f"{name}-{k}", "post", title=f"{name} {k}", author_external_id=f"{name}-a")
            for k in range(3)
        ],
        observations=[ObservationRecord("item", f"{name}-{k}", "likes", float(k)) for k in range(3)],
    )


def test_load_day_loads_in_batches_and_a_bad_source_holds_back_no_other(
    engine: Engine,
    warehouse_url: str,
    write_sources,
    settings_for,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(pipeline, "LOAD_BATCH_SOURCES", 2)
    names = [f"s{k}" for k in range(6)]
    path = write_sources(
        "sources:\n"
        + "".join(f"  - {{name: {n}, kind: rss, url: 'https://{n}.example.com/feed'}}\n" for n in names)
    )
    settings, config = settings_for(warehouse_url, sources=path), load_sources(path)
    ids = pipeline.sync_sources(engine, config)
    runs = CollectionRuns(engine, DAY)
    for state in runs.open(ids).values():  # every source collected: the loads are what differ
        runs.finished(
            state, status="success", http_status=200, items=3, observations=3, requests=1, warnings=[]
        )
    runs.flush()
    for n in names:
        pipeline._write_staged(pipeline.staged_path(settings, DAY, n), _staged_day(n, f'"{n}"'))
    broken = _staged_day("s2", '"s2"')
    broken.items.append(ItemRecord(None, "post", title="no id"))  # type: ignore[arg-type]  # NOT NULL in the warehouse
    pipeline._write_staged(pipeline.staged_path(settings, DAY, "s2"), broken)
    pipeline.staged_path(settings, DAY, "s4").write_bytes(b"not gzip at all")
    pipeline.staged_path(settings, DAY, "s5").write_bytes(gzip.compress(b"[1, 2]"))  # JSON, not a result

    outcomes = pipeline.load_day(settings, config, DAY, engine=engine)
    assert [o.source for o in outcomes] == ["s0", "s1", "s3"]
    summary = {s.source: s for s in pipeline.summarize_day(settings, config, DAY, engine=engine)}
    assert sorted(s.source for s in pipeline.failed_sources(list(summary.values()))) == ["s2", "s4", "s5"]
    assert [summary[n].status for n in names] == [
        "success",
        "success",
        "not_loaded",
        "success",
        "not_loaded",
        "not_loaded",
    ]
    assert summary["s2"].error.startswith("collected, not loaded: IntegrityError")  # type: ignore[union-attr]
    assert str(pipeline.staged_path(settings, DAY, "s4")) in summary["s4"].error  # type: ignore[operator]
    assert "unreadable staged file" in summary["s5"].error  # type: ignore[operator]

    def state() -> dict[str, tuple[int, str | None, bool]]:
        with engine.connect() as conn:
            items = dict(
                conn.execute(
                    select(source.c.name, func.count(content_item.c.item_id))
                    .select_from(source.outerjoin(content_item))
                    .group_by(source.c.name)
                ).all()
            )
            etags = dict(conn.execute(select(source.c.name, source.c.etag)).all())
            loaded = dict(
                conn.execute(
                    select(source.c.name, collection_run.c.loaded_at.is_not(None)).join(collection_run)
                ).all()
            )
        return {n: (items[n], etags[n], loaded[n]) for n in names}

    # The others are loaded with their cursors, each in the batch it was in; the two
    # that failed keep their staged files, and nothing of s2 was half-written.
    assert state() == {
        "s0": (3, '"s0"', True),
        "s1": (3, '"s1"', True),
        "s2": (0, None, False),
        "s3": (3, '"s3"', True),
        "s4": (0, None, False),
        "s5": (0, None, False),
    }
    assert [n for n in names if pipeline.staged_path(settings, DAY, n).exists()] == ["s2", "s4", "s5"]

    # Fixed and rerun: only what was left is loaded, once.
    pipeline._write_staged(pipeline.staged_path(settings, DAY, "s2"), _staged_day("s2", '"s2"'))
    pipeline.staged_path(settings, DAY, "s4").unlink()
    pipeline.staged_path(settings, DAY, "s5").unlink()
    outcomes = pipeline.load_day(settings, config, DAY, engine=engine)
    assert [(o.source, o.authors, o.items, o.observations) for o in outcomes] == [("s2", 1, 3, 3)]
    assert state()["s2"] == (3, '"s2"', True)
    loaded = {s.source: s for s in pipeline.summarize_day(settings, config, DAY, engine=engine)}["s2"]
    assert (loaded.status, loaded.error) == ("success", None)  # the load error is cleared
    assert _counts(engine) == (12, 12, 4)
