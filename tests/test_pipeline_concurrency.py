"""Sources run concurrently: a slow host does not stall the others; a failed source is retried next run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select
from werkzeug import Request, Response

from collectors.politeness import run_by_host
from engage import pipeline
from engage.config import load_sources
from engage.raw import source_dir
from engage.warehouse.schema import collection_run, content_item, source

DAY = date(2026, 11, 20)
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>{name}-1</guid><title>Item of {name}</title></item></channel></rss>"""


def test_run_by_host_keeps_free_workers_for_other_hosts() -> None:
    """Two workers; the slow host's first job blocks until every fast job is done.

    If the scheduler handed the slow host's queued jobs to the second worker,
    the fast jobs would never run and the wait would time out.
    """
    fast_done = threading.Event()
    finished: list[str] = []
    lock = threading.Lock()
    running = {"slow": 0, "fast": 0}
    most = {"slow": 0, "fast": 0}

    def work(job: tuple[str, int]) -> str:
        host, number = job
        with lock:
            running[host] += 1
            most[host] = max(most[host], running[host])
        if host == "slow" and number == 0:
            assert fast_done.wait(10), "the fast host's jobs were stalled behind the slow host"
        with lock:
            running[host] -= 1
            finished.append(f"{host}{number}")
            if sum(1 for f in finished if f.startswith("fast")) == 3:
                fast_done.set()
        return f"{host}{number}"

    jobs = [("slow", i) for i in range(4)] + [("fast", i) for i in range(3)]
    results = run_by_host(
        jobs, work, host=lambda j: j[0], slots={"slow": 1, "fast": 2}.__getitem__, max_workers=2
    )
    assert results == [f"{h}{n}" for h, n in jobs]  # in the order of the jobs
    assert most == {"slow": 1, "fast": 1}  # one worker stays with the slow host's single slot
    assert finished.index("fast2") < finished.index("slow0")


@pytest.fixture
def loopback_server() -> Iterator[Callable[[str], HTTPServer]]:
    """Threaded servers on given loopback addresses (127.0.0.x are distinct hosts)."""
    servers: list[HTTPServer] = []

    def start(address: str) -> HTTPServer:
        server = HTTPServer(host=address, port=0, threaded=True)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.clear()
        if server.is_running():
            server.stop()


def _feed_handler(delay: float) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        time.sleep(delay)
        return Response(FEED.format(name=request.path.strip("/")), content_type="application/rss+xml")

    return handler


def test_slow_host_does_not_delay_a_fast_host(
    sqlite_engine: Engine,
    loopback_server,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    slow, fast = loopback_server("127.0.0.1"), loopback_server("127.0.0.2")
    for server, delay in ((slow, 0.8), (fast, 0.0)):
        for i in range(3):
            server.expect_request(f"/{i}.xml").respond_with_handler(_feed_handler(delay))
    # The slow host's sources come first in the file and may use one connection at a time.
    lines = [f'  - {{name: slow{i}, kind: rss, url: "{slow.url_for(f"/{i}.xml")}"}}' for i in range(3)]
    lines += [f'  - {{name: fast{i}, kind: rss, url: "{fast.url_for(f"/{i}.xml")}"}}' for i in range(3)]
    path = write_sources('hosts: {"127.0.0.1": {max_concurrency: 1}}\nsources:\n' + "\n".join(lines) + "\n")
    settings = settings_for(str(sqlite_engine.url), sources=path)

    outcomes = pipeline.collect_all(settings, load_sources(path), DAY, engine=sqlite_engine, max_workers=2)

    assert [o.status for o in outcomes] == ["success"] * 6
    with sqlite_engine.connect() as conn:
        finished = dict(
            conn.execute(
                select(source.c.name, collection_run.c.finished_at).join(
                    source, source.c.source_id == collection_run.c.source_id
                )
            ).all()
        )
    assert max(finished[f"fast{i}"] for i in range(3)) < min(finished[f"slow{i}"] for i in range(3))
    # ...and the slow host never saw two requests at once: its sources ran one after the other.
    slow_times = sorted(finished[f"slow{i}"] for i in range(3))
    assert (slow_times[2] - slow_times[0]).total_seconds() >= 2 * 0.8 * 0.8


def test_a_source_that_failed_yesterday_is_retried_today(
    engine: Engine,
    warehouse_url: str,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    httpserver.expect_request("/ok.xml").respond_with_data(
        FEED.format(name="ok"), content_type="application/rss+xml"
    )
    httpserver.expect_oneshot_request("/flaky.xml").respond_with_data("maintenance", status=404)
    path = write_sources(
        f"""sources:
  - {{name: ok, kind: rss, url: "{httpserver.url_for("/ok.xml")}"}}
  - {{name: flaky, kind: rss, url: "{httpserver.url_for("/flaky.xml")}"}}
"""
    )
    settings = settings_for(warehouse_url, sources=path)
    config = load_sources(path)

    day1 = {s.source: s for s in pipeline.run_day(settings, config, DAY)}
    assert day1["flaky"].status == "failed" and day1["ok"].status == "success"
    with engine.connect() as conn:
        failures, next_attempt = conn.execute(
            select(source.c.consecutive_failures, source.c.next_attempt_at).where(source.c.name == "flaky")
        ).one()
    assert failures == 1 and next_attempt is not None  # recorded, with a hint for the next attempt

    # The next day the server is back: the source is asked again (even though the
    # recorded next attempt may still lie ahead of the wall clock) and loaded.
    httpserver.expect_request("/flaky.xml").respond_with_data(
        FEED.format(name="flaky"), content_type="application/rss+xml"
    )
    day2 = {s.source: s for s in pipeline.run_day(settings, config, date(2026, 11, 21))}
    assert day2["flaky"].status == "success" and day2["flaky"].items_collected == 1
    assert [r.path for r, _ in httpserver.log].count("/flaky.xml") == 2
    with engine.connect() as conn:
        state = conn.execute(
            select(source.c.consecutive_failures, source.c.next_attempt_at, source.c.last_error).where(
                source.c.name == "flaky"
            )
        ).one()
        runs = conn.execute(
            select(collection_run.c.run_date, collection_run.c.status)
            .join(source, source.c.source_id == collection_run.c.source_id)
            .where(source.c.name == "flaky")
            .order_by(collection_run.c.run_id)
        ).all()
        items = (
            conn.execute(
                select(content_item.c.external_id)
                .join(source, source.c.source_id == content_item.c.source_id)
                .where(source.c.name == "flaky")
            )
            .scalars()
            .all()
        )
    assert tuple(state) == (0, None, None)
    assert [(r.run_date, r.status) for r in runs] == [(DAY, "failed"), (date(2026, 11, 21), "success")]
    assert items == ["flaky-1"]


def test_collect_all_on_worker_processes_loads_everything_and_asks_robots_once_per_host(
    engine: Engine,
    loopback_server,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    servers = [loopback_server(f"127.0.0.{n}") for n in (1, 2, 3)]
    lines = []
    for h, server in enumerate(servers):
        server.expect_request("/robots.txt").respond_with_data("User-agent: *\nAllow: /\n")
        for i in range(3):
            server.expect_request(f"/{i}.xml").respond_with_data(
                FEED.format(name=f"h{h}s{i}"), content_type="application/rss+xml"
            )
            lines.append(f'  - {{name: h{h}s{i}, kind: rss, url: "{server.url_for(f"/{i}.xml")}"}}')
    lines.append('  - {name: broken, kind: rss, url: "http://127.0.0.1:9/feed.xml"}')
    path = write_sources('hosts: {"*": {robots: true}}\nsources:\n' + "\n".join(lines) + "\n")
    settings = settings_for(engine.url.render_as_string(hide_password=False), sources=path)
    config = load_sources(path)

    outcomes = pipeline.collect_all(settings, config, DAY, engine=engine, max_workers=4, processes=2)
    # Each host was collected by one worker process (raw file names carry the pid), in two processes.
    pids = {
        h: {
            p.name.split("-")[1]
            for i in range(3)
            for p in source_dir(settings.raw_dir, DAY, f"h{h}s{i}").glob("*.json")
        }
        for h in range(3)
    }
    assert all(len(p) == 1 for p in pids.values()) and str(os.getpid()) not in set().union(*pids.values())
    assert len(set().union(*pids.values())) == 2
    for server in servers:  # one politeness per host: robots.txt once per host
        assert [r.path for r, _ in server.log].count("/robots.txt") == 1
    assert [o.source for o in outcomes] == [s.name for s in config.enabled()]  # the file's order
    assert [o.status for o in outcomes] == ["success"] * 9 + ["failed"]
    pipeline.load_day(settings, config, DAY, engine=engine)
    with engine.connect() as conn:
        items = sorted(conn.execute(select(content_item.c.external_id)).scalars())
    assert items == sorted(f"h{h}s{i}-1" for h in range(3) for i in range(3))
    with engine.connect() as conn:
        runs = dict(conn.execute(select(source.c.name, collection_run.c.status).join(collection_run)).all())
    assert runs == {o.source: o.status for o in outcomes}  # every run row ended
    assert pipeline.default_processes(config) == 1  # few sources: one process
    assert pipeline.default_processes(config, 3) == 3


@pytest.mark.parametrize(
    ("sources", "asked", "threads"), [(10, None, 64), (1000, None, 250), (5000, None, 256), (10, 3, 3)]
)
def test_default_fetching_threads_grow_with_the_sources(
    write_sources,  # type: ignore[no-untyped-def]
    sources: int,
    asked: int | None,
    threads: int,
) -> None:
    """64 threads, or one per four sources up to 256, unless --workers says."""
    lines = [
        f'  - {{name: s{i}, kind: rss, url: "http://127.0.0.{2 + i % 250}/{i}.xml"}}' for i in range(sources)
    ]
    config = load_sources(write_sources("sources:\n" + "\n".join(lines) + "\n"))
    assert pipeline.default_workers(config, asked) == threads


def test_a_worker_process_that_dies_fails_its_own_sources_and_the_other_goes_on(
    engine: Engine,
    loopback_server,
    write_sources,
    settings_for,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    servers = [loopback_server(f"127.0.0.{n}") for n in (1, 2)]
    lines = []
    for h, server in enumerate(servers):
        for i in range(2):
            server.expect_request(f"/{i}.xml").respond_with_data(
                FEED.format(name=f"h{h}s{i}"), content_type="application/rss+xml"
            )
            lines.append(f'  - {{name: h{h}s{i}, kind: rss, url: "{server.url_for(f"/{i}.xml")}"}}')
    path = write_sources("sources:\n" + "\n".join(lines) + "\n")
    settings = settings_for(engine.url.render_as_string(hide_password=False), sources=path)
    config = load_sources(path)
    collect_one = pipeline._collect_one

    def dies_on_host_1(*args, **kwargs):  # type: ignore[no-untyped-def]
        if args[2].name == "h1s1":
            os._exit(3)  # as the kernel's OOM killer would end it: no goodbye
        return collect_one(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_collect_one", dies_on_host_1)  # the forked workers inherit it
    outcomes = pipeline.collect_all(settings, config, DAY, engine=engine, max_workers=4, processes=2)

    status = {o.source: o.status for o in outcomes}
    assert status["h0s0"] == status["h0s1"] == "success" and status["h1s1"] == "failed"
    assert "exit code 3" in (next(o for o in outcomes if o.source == "h1s1").error or "")
    with engine.connect() as conn:
        runs = dict(conn.execute(select(source.c.name, collection_run.c.status).join(collection_run)).all())
    assert runs == status  # none left "running"; h1s0 as its row says (it may have ended before the death)
    assert status["h1s0"] in ("success", "failed")
    assert all(isinstance(o.items, int) and isinstance(o.observations, int) for o in outcomes)


def test_a_collector_that_cannot_be_imported_fails_only_its_own_sources(
    engine: Engine,
    loopback_server,
    write_sources,
    settings_for,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """collect_all imports the collectors before its workers start; one that cannot
    be imported is not fatal there: each of its sources fails with the reason."""
    import collectors

    monkeypatch.setitem(collectors.KINDS, "vanished", collectors.Kind("collectors.no_such_collector:collect"))
    server = loopback_server("127.0.0.1")
    server.expect_request("/ok.xml").respond_with_data(
        FEED.format(name="ok"), content_type="application/rss+xml"
    )
    path = write_sources(
        "sources:\n"
        f'  - {{name: ok, kind: rss, url: "{server.url_for("/ok.xml")}"}}\n'
        f'  - {{name: gone, kind: vanished, url: "{server.url_for("/gone")}"}}\n'
    )
    settings = settings_for(engine.url.render_as_string(hide_password=False), sources=path)
    config = load_sources(path)

    outcomes = {o.source: o for o in pipeline.collect_all(settings, config, DAY, engine=engine, processes=2)}

    assert outcomes["ok"].status == "success" and outcomes["gone"].status == "failed"
    assert "No module named 'collectors.no_such_collector'" in (outcomes["gone"].error or "")
    with engine.connect() as conn:
        runs = dict(conn.execute(select(source.c.name, collection_run.c.status).join(collection_run)).all())
    assert runs == {"ok": "success", "gone": "failed"}
