"""Fault tolerance: a load killed mid-way, two days loaded at once, a source
answering garbage, a warehouse that is briefly unreachable."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from collectors.records import AuthorRecord, CollectResult, ItemRecord, ObservationRecord
from engage import pipeline
from engage.config import load_sources
from engage.errors import WarehouseError
from engage.settings import Settings
from engage.warehouse.schema import collection_run, content_item, engagement_observation, source

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 20)


def _result(n_items: int, version: str) -> CollectResult:
    """A source's day: ``n_items`` threads by 50 authors, each with a likes count."""
    return CollectResult(
        http_status=200,
        authors=[AuthorRecord(f"a{k}", handle=f"user{k}") for k in range(50)],
        items=[
            ItemRecord(
                f"i{k}",
                "post",
                title=f"thread {k}",
                text=f"{version} text of thread {k}",
                author_external_id=f"a{k % 50}",
                thread_external_id=f"i{k}",
            )
            for k in range(n_items)
        ],
        observations=[ObservationRecord("item", f"i{k}", "likes", float(k % 7)) for k in range(n_items)],
    )


def _snapshot(engine: Engine, day: date) -> tuple[int, int, list[str]]:
    with engine.connect() as conn:
        items = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
        obs = conn.execute(
            select(func.count()).where(engagement_observation.c.observed_date == day)
        ).scalar_one()
        texts = sorted(set(conn.execute(select(func.substr(content_item.c.body_text, 1, 2))).scalars()))
    return items, obs, texts


@pytest.fixture
def one_source(tmp_path: Path, warehouse_url: str, engine: Engine) -> tuple[Settings, Path]:
    sources = tmp_path / "sources.yml"
    sources.write_text("sources:\n  - {name: forum, kind: rss, url: 'https://forum.example.com/feed'}\n")
    settings = Settings(home=tmp_path / "home", warehouse_url=warehouse_url, sources_path=sources)
    return settings, sources


KILL_MID_LOAD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date
    from sqlalchemy import event
    from engage import pipeline
    from engage.config import load_sources
    from engage.settings import Settings
    from pathlib import Path

    home, url, sources, table = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    settings = Settings(home=Path(home), warehouse_url=url, sources_path=Path(sources))
    engine = pipeline.open_warehouse(settings)
    written = []

    @event.listens_for(engine, "after_cursor_execute")
    def die_mid_load(conn, cursor, statement, *args):
        words = statement.split()
        if words and words[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            written.append(statement)
        if words and words[0].upper() == "INSERT" and f"INTO {table} " in statement:
            # the day's items are written, its observations being written: die here
            print("KILLED after", len(written), "writes, in", table, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no rollback: like an OOM kill

    pipeline.load_day(settings, load_sources(Path(sources)), date(2026, 11, 20), engine=engine)
    print("FINISHED", flush=True)
    """
)


def test_a_load_killed_mid_way_leaves_the_day_as_it_was_and_a_rerun_completes(
    one_source: tuple[Settings, Path], engine: Engine
) -> None:
    settings, sources = one_source
    config = load_sources(sources)
    # The day as it was: a first load of 300 items ("v1").
    pipeline._write_staged(pipeline.staged_path(settings, DAY, "forum"), _result(300, "v1"))
    pipeline.load_day(settings, config, DAY, engine=engine)
    before = _snapshot(engine, DAY)
    assert before == (300, 300, ["v1"])

    # The day is collected again with 2,000 changed items ("v2"); the load is killed mid-way.
    pipeline._write_staged(pipeline.staged_path(settings, DAY, "forum"), _result(2000, "v2"))
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_MID_LOAD,
            str(settings.home),
            url,
            str(sources),
            "engagement_observation",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == -9 and "KILLED after" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert int(proc.stdout.split()[2]) >= 3  # authors and items were already written in that transaction
    assert _snapshot(engine, DAY) == before  # nothing half-written
    assert pipeline.staged_path(settings, DAY, "forum").exists()  # the staged day is still there

    # The rerun (Airflow's retry) loads the whole new day once.
    pipeline.load_day(settings, config, DAY, engine=engine)
    assert _snapshot(engine, DAY) == (2000, 2000, ["v2"])
    assert not pipeline.staged_path(settings, DAY, "forum").exists()


PARALLEL_LOAD = textwrap.dedent(
    """
    import sys, time
    from datetime import date
    from pathlib import Path
    from engage import pipeline
    from engage.config import load_sources
    from engage.settings import Settings

    home, url, sources, day, start_at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    settings = Settings(home=Path(home), warehouse_url=url, sources_path=Path(sources))
    engine = pipeline.open_warehouse(settings)
    from tests.test_faults import _result

    time.sleep(max(0.0, start_at - time.time()))   # both processes start their loads together
    for attempt in range(3):   # a day loaded three times (Airflow retries, manual reruns)
        for name in ("forum", "blog"):
            staged = pipeline.staged_path(settings, date.fromisoformat(day), name)
            pipeline._write_staged(staged, _result(1500, "v" + day[-2:]))
        pipeline.load_day(settings, load_sources(Path(sources)), date.fromisoformat(day), engine=engine)
    print("DONE", day, flush=True)
    """
)


@pytest.mark.postgres
def test_two_days_loaded_in_parallel_on_postgresql_neither_deadlock_nor_duplicate(
    tmp_path: Path, postgres_url: str
) -> None:
    from engage.warehouse.db import make_engine, migrate

    engine = make_engine(postgres_url)
    migrate(engine)
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "sources:\n"
        "  - {name: forum, kind: rss, url: 'https://forum.example.com/feed'}\n"
        "  - {name: blog, kind: rss, url: 'https://blog.example.com/feed'}\n"
    )
    settings = Settings(home=tmp_path / "home", warehouse_url=postgres_url, sources_path=sources)
    days = [DAY, DAY + timedelta(days=1)]
    # The same 1,500 items (same authors, same threads) seen on both days, by both sources.
    script = PARALLEL_LOAD
    start_at = time.time() + 4
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(settings.home),
                postgres_url,
                str(sources),
                day.isoformat(),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for day in days
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "DONE" in out
    with engine.connect() as conn:
        items = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
        distinct = conn.execute(
            select(func.count()).select_from(
                select(content_item.c.source_id, content_item.c.external_id).distinct().subquery()
            )
        ).scalar_one()
        per_day = dict(
            conn.execute(
                select(engagement_observation.c.observed_date, func.count()).group_by(
                    engagement_observation.c.observed_date
                )
            ).all()
        )
        sources_rows = conn.execute(select(func.count()).select_from(source)).scalar_one()
    assert items == distinct == 3000
    assert per_day == {DAY: 3000, DAY + timedelta(days=1): 3000}
    assert sources_rows == 2
    engine.dispose()


def test_a_source_answering_garbage_for_a_day_fails_alone_and_recovers(
    tmp_path: Path, httpserver: HTTPServer, engine: Engine, warehouse_url: str
) -> None:
    feed = (ROOT / "engage/demo_data/site/acme-blog.xml").read_bytes()
    httpserver.expect_request("/good.xml").respond_with_data(feed, content_type="application/rss+xml")
    garbage = bytes(range(256)) * 64
    httpserver.expect_request("/flaky.xml").respond_with_data(garbage, content_type="application/rss+xml")
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: good, kind: rss, url: '{httpserver.url_for('/good.xml')}'}}\n"
        f"  - {{name: flaky, kind: rss, url: '{httpserver.url_for('/flaky.xml')}'}}\n"
    )
    settings = Settings(home=tmp_path / "home", warehouse_url=warehouse_url, sources_path=sources)
    config = load_sources(sources)
    summary = {s.source: s for s in pipeline.run_day(settings, config, DAY)}
    assert summary["good"].status == "success" and summary["good"].items_collected == 5
    assert summary["flaky"].status == "failed" and "flaky.xml" in (summary["flaky"].error or "")

    # The next day the feed is fine again: it is collected, and the good source's day stays.
    httpserver.clear()
    httpserver.expect_request("/good.xml").respond_with_data(feed, content_type="application/rss+xml")
    httpserver.expect_request("/flaky.xml").respond_with_data(
        feed.replace(b"acme", b"flaky"), content_type="application/rss+xml"
    )
    summary = {s.source: s for s in pipeline.run_day(settings, config, DAY + timedelta(days=1))}
    assert summary["flaky"].status == "success" and summary["flaky"].items_collected == 5
    with engine.connect() as conn:
        runs = conn.execute(
            select(source.c.name, collection_run.c.run_date, collection_run.c.status)
            .join(collection_run)
            .order_by(source.c.name, collection_run.c.run_date)
        ).all()
        items = dict(
            conn.execute(select(source.c.name, func.count()).join(content_item).group_by(source.c.name)).all()
        )
    assert [(r.name, r.status) for r in runs] == [
        ("flaky", "failed"),
        ("flaky", "success"),
        ("good", "success"),
        ("good", "success"),
    ]
    assert items == {"good": 5, "flaky": 5}


class LateProxy:
    """A TCP proxy to PostgreSQL on a loopback port that refuses connections
    (nothing listens) until ``opens_after`` seconds have passed."""

    def __init__(self, target: tuple[str, int], opens_after: float | None) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.target = target
        self.opens_after = opens_after
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        if self.opens_after is None or self.stopped.wait(self.opens_after):
            return
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
        server.close()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[tuple[str, Engine]]:
    from engage.warehouse.db import make_engine, migrate

    engine = make_engine(postgres_url)
    migrate(engine)
    yield postgres_url, engine
    engine.dispose()


@pytest.mark.postgres
def test_a_warehouse_briefly_unreachable_is_waited_for(tmp_path: Path, pg_engine: tuple[str, Engine]) -> None:
    url, engine = pg_engine
    parsed = make_url(url)
    proxy = LateProxy((parsed.host or "127.0.0.1", parsed.port or 5432), opens_after=2.0)
    try:
        through_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        sources = tmp_path / "sources.yml"
        sources.write_text("sources:\n  - {name: forum, kind: rss, url: 'https://forum.example.com/feed'}\n")
        settings = Settings(
            home=tmp_path / "home",
            warehouse_url=through_proxy,
            sources_path=sources,
            warehouse_wait_seconds=30,
        )
        pipeline._write_staged(pipeline.staged_path(settings, DAY, "forum"), _result(100, "v1"))
        started = time.monotonic()
        outcomes = pipeline.load_day(
            settings, load_sources(sources), DAY, engine=pipeline.open_warehouse(settings)
        )
        assert time.monotonic() - started >= 1.5  # it did wait for the warehouse
        assert [o.items for o in outcomes] == [100]
        assert _snapshot(engine, DAY)[0] == 100
    finally:
        proxy.close()


def test_a_warehouse_that_stays_unreachable_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    proxy = LateProxy(("127.0.0.1", 5432), opens_after=None)  # never listens
    try:
        url = f"postgresql+psycopg://engage:s3cret-pw@127.0.0.1:{proxy.port}/warehouse"
        settings = Settings(
            home=tmp_path / "home",
            warehouse_url=url,
            sources_path=tmp_path / "s.yml",
            warehouse_wait_seconds=1.5,
        )
        started = time.monotonic()
        with pytest.raises(WarehouseError) as caught:
            pipeline.open_warehouse(settings)
        assert 1.0 <= time.monotonic() - started < 15
        message = str(caught.value)
        assert "cannot reach the warehouse" in message and "waited 1.5 s" in message
        assert "s3cret-pw" not in message and f":{proxy.port}/warehouse" in message
    finally:
        proxy.close()
