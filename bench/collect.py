"""Benchmark: collecting many slow sources end to end, against a plain sequential loop.

    .venv/bin/python -m bench.collect [--sources 1000] [--hosts 250] [--latency 0.2]
                                      [--workers 256] [--processes N] [--baseline-sample N]
                                      [--workdir var/bench] [--sweep]

A child process serves N feeds (RSS 2.0 blogs, Atom, and forum-style RSS
of the kind Discourse and phpBB publish, with authors and comment counts)
from H loopback addresses 127.0.0.2, 127.0.0.3, ..., each answering every
request (robots.txt and 304s included) after ``--latency`` seconds, with
ETag and Last-Modified. The server is uvicorn (one event loop, HTTP/1.1
keep-alive, as production web servers answer; about 0.3 ms of CPU a
request); ``--server threads`` uses http.server's ThreadingHTTPServer
instead (HTTP/1.0, a connection and a thread per request, about three
times the CPU, which the two cores of this machine share with the client).
Then, in this process and on the same inputs:

1. **baseline**: a plain sequential loop -- ``requests.get``, ``feedparser.parse``,
   the entries inserted into a SQLite table, one commit per feed;
2. **engage, first run**: the real ``collect_all`` + ``load_day`` into a
   fresh SQLite warehouse, with raw landing, staging, robots.txt for every
   host and the default per-host limits;
3. **engage, runs 2 to 4**, the next days: every source answers 304, and
   robots.txt comes from the first run's cache (it is minutes old); the
   median of the three is compared with the first run;
4. **engage, run 5**: all 304 again, with the robots.txt cache emptied,
   as a daily run finds it when the copies are more than 24 hours old;
5. **requests alone**: the same conditional GETs with nothing but
   ``requests`` on the same number of threads, in one process and then
   with the hosts split over the same worker processes as engage's (no
   politeness, raw landing, warehouse): what requests itself costs for
   the 304 run on this machine, the floor of engage's all-304 run.

This machine is shared and its speed changes from hour to hour, so every
figure is taken in the same run, and the run starts and ends with a
calibration (seconds for ten million additions in pure Python): figures of
two runs compare only at similar calibrations.

It prints the times, the ratio baseline / first run (target: at least 15)
and the median all-304 run / first run (target: under 0.1), and checks that both loaded
the same number of items. ``--baseline-sample N`` times the baseline on N
sources and scales it to all of them (it is sequential, so its time is
linear in the sources); ``--sweep`` also times the first run for several
worker counts, per-host limits and worker processes.

The data directory is under ``--workdir`` (default ``var/bench``, on the
disk of the default ``ENGAGE_HOME``). How fast this machine's disks create
files changes too: on 2026-12-02 ``/tmp`` took 0.23 ms a file and the
project disk 0.02 ms; on 2026-12-07 ``/tmp`` 0.07 ms and the project disk
0.85 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LAST_MODIFIED = formatdate(1_763_600_000, usegmt=True)
ROBOTS = b"User-agent: *\nDisallow: /admin/\n"
WORDS = (
    "pipeline forecast renewal pricing onboarding integration migration security audit dashboard "
    "workflow budget vendor shortlist trial contract quota churn adoption rollout webhook export "
    "sso permissions analytics roadmap support latency benchmark compliance procurement"
).split()


def feed_body(index: int, items: int) -> tuple[str, bytes]:
    """The path and body of source ``index``: RSS, Atom or forum RSS, deterministic."""
    style = index % 3
    rng = hashlib.sha256(str(index).encode()).digest()

    def words(n: int, salt: int) -> str:
        return " ".join(WORDS[(rng[(salt + k) % 32] + k * 7 + salt) % len(WORDS)] for k in range(n))

    entries = []
    for k in range(items):
        day = 1 + (index + k) % 28
        text = (
            f"<p>{words(60, k)}</p><p><a href='https://example.com/{index}/{k}'>{words(8, k + 3)}</a></p>" * 3
        )
        title = f"{words(6, k).capitalize()} #{index}-{k}"
        author = f"user{(index * 7 + k) % 500}"
        if style == 1:
            entries.append(
                f"<entry><id>urn:engage-bench:{index}:{k}</id><title>{title}</title>"
                f"<link href='https://blog{index}.example.com/{k}'/><updated>2026-11-{day:02d}T10:00:00Z</updated>"
                f"<author><name>{author}</name></author><content type='html'><![CDATA[{text}]]></content>"
                f"<link rel='replies' href='https://blog{index}.example.com/{k}#c' thr:count='{k % 9}'/></entry>"
            )
        else:
            extra = f"<category>{words(1, k)}</category>" if style == 2 else ""
            entries.append(
                f"<item><guid isPermaLink='false'>bench-{index}-{k}</guid><title>{title}</title>"
                f"<link>https://site{index}.example.com/t/{k}</link><dc:creator>{author}</dc:creator>"
                f"<pubDate>{day:02d} Nov 2026 10:00:00 GMT</pubDate>{extra}"
                f"<description><![CDATA[{text}]]></description><slash:comments>{k % 11}</slash:comments></item>"
            )
    if style == 1:
        body = (
            "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
            "xmlns:thr='http://purl.org/syndication/thread/1.0'>"
            f"<title>Blog {index}</title><id>urn:engage-bench:{index}</id><updated>2026-11-20T00:00:00Z</updated>"
            + "".join(entries)
            + "</feed>"
        )
        return f"/blog/{index}/atom.xml", body.encode()
    ns = "xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:slash='http://purl.org/rss/1.0/modules/slash/'"
    title = f"Forum {index} latest topics" if style == 2 else f"Blog {index}"
    body = (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0' {ns}><channel><title>{title}</title>"
        + "".join(entries)
        + "</channel></rss>"
    )
    return (f"/forum/{index}/latest.rss" if style == 2 else f"/blog/{index}/feed.xml"), body.encode()


def kind_of(index: int) -> str:
    return "atom" if index % 3 == 1 else "rss"


# --- the loopback servers (in a child process, so they do not share our GIL) --------


def _answers(sources: int, items: int) -> Callable[[str, str | None], tuple[int, bytes, str | None]]:
    """What both loopback servers answer: path and If-None-Match -> (status, body, ETag)."""
    feeds: dict[str, tuple[bytes, str]] = {}
    for index in range(sources):
        path, body = feed_body(index, items)
        feeds[path] = (body, etag_of(body))

    def answer(path: str, if_none_match: str | None) -> tuple[int, bytes, str | None]:
        if path == "/robots.txt":
            return 200, ROBOTS, None
        found = feeds.get(path)
        if found is None:
            return 404, b"not found", None
        body, etag = found
        return (304, b"", etag) if if_none_match == etag else (200, body, etag)

    return answer


def _serve(addresses: list[str], sources: int, items: int, latency: float, conn: Any) -> None:
    answer = _answers(sources, items)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            time.sleep(latency)
            status, body, etag = answer(self.path, self.headers.get("If-None-Match"))
            self.send_response(status)
            self.send_header("Content-Type", "application/xml" if etag else "text/plain")
            if etag:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    class Server(ThreadingHTTPServer):
        request_queue_size = 128
        daemon_threads = True

    servers = [Server((address, 0), Handler) for address in addresses]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send([f"http://{s.server_address[0]}:{s.server_address[1]}" for s in servers])
    conn.recv()  # until the parent says stop


def _serve_uvicorn(addresses: list[str], sources: int, items: int, latency: float, conn: Any) -> None:
    """The same answers from uvicorn (uvloop + httptools, HTTP/1.1 keep-alive), one
    event loop listening on every address: the way a production web server answers,
    and it leaves the client most of the CPU the two share on this machine."""
    import asyncio
    import socket

    import uvicorn

    answer = _answers(sources, items)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(latency)
        if_none_match = dict(scope["headers"]).get(b"if-none-match")
        status, body, etag = answer(scope["path"], if_none_match.decode() if if_none_match else None)
        headers = [(b"content-type", b"application/xml" if etag else b"text/plain")]
        if etag:
            headers += [(b"etag", etag.encode()), (b"last-modified", LAST_MODIFIED.encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    sockets = []
    for address in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 0))
        sock.listen(1024)  # connections wait in the backlog until uvicorn accepts
        sockets.append(sock)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=60,
        backlog=1024,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: (conn.recv(), setattr(server, "should_exit", True)), daemon=True).start()
    conn.send([f"http://{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets])
    server.run(sockets=sockets)


@contextmanager
def loopback_sites(
    hosts: int, sources: int, items: int, latency: float, server: str = "uvicorn"
) -> Iterator[list[str]]:
    if hosts > 253:
        raise SystemExit("at most 253 hosts: 127.0.0.2 .. 127.0.0.254")
    addresses = [f"127.0.0.{2 + i}" for i in range(hosts)]
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    target = _serve_uvicorn if server == "uvicorn" else _serve
    process = ctx.Process(target=target, args=(addresses, sources, items, latency, child), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()


def source_urls(bases: list[str], sources: int, items: int) -> list[str]:
    return [bases[i % len(bases)] + feed_body(i, 0)[0] for i in range(sources)]


# --- the plain baseline -------------------------------------------------------------


def baseline(urls: list[str], db_path: Path) -> tuple[float, int]:
    """requests + feedparser, one feed after the other, entries into SQLite: (seconds, items)."""
    import feedparser
    import requests

    db = sqlite3.connect(db_path)
    db.execute(
        "create table if not exists entry (feed text, guid text, title text, link text, published text, summary text, primary key (feed, guid))"
    )
    started = time.perf_counter()
    count = 0
    with requests.Session() as session:
        for url in urls:
            resp = session.get(url, timeout=10)
            parsed = feedparser.parse(io.BytesIO(resp.content), response_headers=dict(resp.headers))
            rows = [
                (
                    url,
                    e.get("id") or e.get("link"),
                    e.get("title"),
                    e.get("link"),
                    e.get("published") or e.get("updated"),
                    e.get("summary"),
                )
                for e in parsed.entries
            ]
            db.executemany("insert or replace into entry values (?, ?, ?, ?, ?, ?)", rows)
            db.commit()
            count += len(rows)
    seconds = time.perf_counter() - started
    db.close()
    return seconds, count


# --- engage -------------------------------------------------------------------------


def write_sources(path: Path, urls: list[str], max_concurrency: int | None) -> None:
    star = ", ".join(["robots: true"] + ([f"max_concurrency: {max_concurrency}"] if max_concurrency else []))
    lines = [f'hosts: {{"*": {{{star}}}}}', "sources:"]
    lines += [f'  - {{name: bench-{i}, kind: {kind_of(i)}, url: "{url}"}}' for i, url in enumerate(urls)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def engage_run(
    home: Path,
    urls: list[str],
    *,
    workers: int,
    max_concurrency: int | None = None,
    days: int = 5,
    processes: int = 1,
) -> list[dict[str, Any]]:
    """Daily runs (collect_all + load_day) on a fresh warehouse; one dict of figures per run.
    Before the last of three or more runs the robots.txt cache is emptied."""
    import shutil

    from sqlalchemy import func, select

    from engage import pipeline
    from engage.config import load_sources
    from engage.settings import Settings
    from engage.warehouse.db import make_engine, migrate
    from engage.warehouse.schema import content_item

    home.mkdir(parents=True, exist_ok=True)
    sources_file = home / "sources.yml"
    write_sources(sources_file, urls, max_concurrency)
    settings = Settings(
        home=home, warehouse_url=f"sqlite:///{home / 'warehouse.db'}", sources_path=sources_file
    )
    config = load_sources(sources_file)
    engine = make_engine(settings.warehouse_url)
    migrate(engine)
    figures = []
    for day in range(days):
        if day == days - 1 and days > 2:
            shutil.rmtree(settings.robots_cache_dir, ignore_errors=True)
        run_date = date(2026, 11, 20 + day)
        started = time.perf_counter()
        outcomes = pipeline.collect_all(
            settings, config, run_date, engine=engine, max_workers=workers, processes=processes
        )
        collected = time.perf_counter()
        pipeline.load_day(settings, config, run_date, engine=engine)
        loaded = time.perf_counter()
        with engine.connect() as conn:
            items = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
        statuses: dict[str, int] = {}
        for outcome in outcomes:
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        failed = [o for o in outcomes if o.status == "failed"][:3]
        figures.append(
            {
                "seconds": loaded - started,
                "collect": collected - started,
                "load": loaded - collected,
                "items": items,
                "statuses": statuses,
                "failed": [(o.source, o.error) for o in failed],
            }
        )
    engine.dispose()
    return figures


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def requests_floor(urls: list[str], items: int, workers: int, processes: int = 1) -> float:
    """Seconds for one conditional GET per URL (each answers 304) with plain requests on
    ``workers`` threads, shared out over ``processes`` forked processes with the hosts
    split among them as ``collect_all`` splits them, one session per process: no
    politeness, landing or warehouse."""
    from collectors.politeness import host_of
    from engage.pipeline import host_groups

    etags = {url: etag_of(feed_body(i, items)[1]) for i, url in enumerate(urls)}
    groups = host_groups(urls, processes, host=host_of)
    threads = max(1, -(-workers // len(groups)))
    if len(groups) == 1:
        started = time.perf_counter()
        _conditional_gets(groups[0], etags, threads)
        return time.perf_counter() - started
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    children = [context.Process(target=_conditional_gets, args=(g, etags, threads)) for g in groups]
    for child in children:
        child.start()
    for child in children:
        child.join()
    seconds = time.perf_counter() - started
    if any(child.exitcode for child in children):
        raise SystemExit("requests alone: a process failed (see above)")
    return seconds


def _conditional_gets(urls: list[str], etags: dict[str, str], threads: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import requests

    with requests.Session() as session:
        session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=len(urls), pool_maxsize=4))
        with ThreadPoolExecutor(threads) as pool:
            statuses = set(
                pool.map(
                    lambda url: (
                        session.get(url, headers={"If-None-Match": etags[url]}, timeout=30).status_code
                    ),
                    urls,
                )
            )
    if statuses != {304}:
        raise SystemExit(f"requests alone: expected only 304 answers, got {sorted(statuses)}")


def calibration() -> float:
    """Seconds for ten million additions in pure Python: how fast this machine is right now."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def _line(label: str, run: dict[str, Any]) -> str:
    return (
        f"{label}: {run['seconds']:6.2f} s (collect {run['collect']:.2f} s, load {run['load']:.2f} s), "
        f"{run['items']:,} items in the warehouse, {run['statuses']}"
    )


def sweep(urls: list[str], root: Path, workers: int, processes: int) -> None:
    print("\nsweep (first run only; each on a fresh warehouse):")
    for w in (16, 64, 128, workers, 512):
        run = engage_run(root / f"w{w}", urls, workers=w, days=1, processes=processes)[0]
        print(_line(f"  workers {w:4}, {processes} worker processes, per-host limit default", run))
    for limit in (1, 2, 8):
        run = engage_run(
            root / f"c{limit}", urls, workers=workers, max_concurrency=limit, days=1, processes=processes
        )[0]
        print(_line(f"  workers {workers:4}, {processes} worker processes, max_concurrency {limit}", run))
    for procs in (1, 3, 4):
        run = engage_run(root / f"p{procs}", urls, workers=workers, days=1, processes=procs)[0]
        print(_line(f"  workers {workers:4}, {procs} worker processes", run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument(
        "--hosts", type=int, default=250, help="loopback addresses 127.0.0.2 ... (at most 253)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.2, help="server delay before every answer, seconds"
    )
    parser.add_argument("--items", type=int, default=15, help="entries per feed")
    parser.add_argument(
        "--workers", type=int, default=256, help="collect_all's max_workers (fetching threads)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="collect_all's worker processes, the hosts split among them (default: the CPUs)",
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=0,
        help="time the baseline on this many sources and scale (0: all)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("var/bench"), help="where the data directories go (emptied)"
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "threads"),
        default="uvicorn",
        help="the loopback servers: uvicorn (HTTP/1.1 keep-alive, one event loop) or "
        "http.server's ThreadingHTTPServer (HTTP/1.0, a connection and a thread per request)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also time other worker counts, limits and worker processes"
    )
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"calibration before: {calibration():.2f} s for 10M additions in pure Python")
    with (
        tempfile.TemporaryDirectory(prefix="engage-bench-", dir=args.workdir) as tmp,
        loopback_sites(args.hosts, args.sources, args.items, args.latency, args.server) as bases,
    ):
        root = Path(tmp)
        urls = source_urls(bases, args.sources, args.items)
        print(
            f"{args.sources} sources on {len(bases)} loopback hosts, {args.latency * 1000:.0f} ms per answer, "
            f"{args.items} entries per feed ({len(feed_body(0, args.items)[1]) // 1024} KB), data under {root}"
        )
        first, *quiet, third = engage_run(
            root / "engage", urls, workers=args.workers, processes=args.processes
        )
        second = sorted(quiet, key=lambda r: r["seconds"])[len(quiet) // 2]  # the median
        print(_line(f"engage, first run ({args.workers} threads, {args.processes} worker processes)", first))
        for number, run in enumerate(quiet, 2):
            print(_line(f"engage, run {number} (all 304, robots.txt cached)", run))
        print(_line(f"engage, run {len(quiet) + 2} (all 304, robots.txt refetched)", third))
        print(f"all-304 runs with robots.txt cached, median: {second['seconds']:.2f} s")
        for run in (first, *quiet, third):
            if run["failed"]:
                print("  failures:", run["failed"])
        floor = requests_floor(urls, args.items, args.workers)
        print(
            f"requests alone: the same {len(urls)} conditional GETs, plain requests on {args.workers} threads of one process: {floor:6.2f} s"
        )
        floor_split = floor
        if args.processes > 1:
            floor_split = requests_floor(urls, args.items, args.workers, args.processes)
            print(
                f"requests alone, the hosts split over {args.processes} processes as engage splits them: {floor_split:6.2f} s"
            )
        sample = urls if not args.baseline_sample else urls[: args.baseline_sample]
        base_seconds, base_items = baseline(sample, root / "baseline.db")
        scaled = base_seconds * len(urls) / len(sample)
        note = "" if len(sample) == len(urls) else f" (timed on {len(sample)} sources, scaled)"
        print(
            f"baseline, sequential requests + feedparser + sqlite3: {scaled:6.2f} s{note}, {base_items:,} items"
        )
        if len(sample) == len(urls) and base_items != first["items"]:
            print(f"  WARNING: item counts differ (baseline {base_items}, engage {first['items']})")
        print(f"ratio baseline / engage first run: {scaled / first['seconds']:.1f}x (target >= 15)")
        print(
            f"all-304 run (median) / first run: {second['seconds'] / first['seconds']:.3f} (target < 0.1); "
            f"robots.txt refetched / first run: {third['seconds'] / first['seconds']:.3f}; "
            f"requests alone / first run: {floor / first['seconds']:.3f}"
        )
        print(
            f"all-304 run (median) / requests alone in {args.processes} process(es): {second['seconds'] / floor_split:.2f}; "
            f"both targets at once need the all-304 run under baseline / 150 = {scaled / 150:.2f} s"
        )
        if args.sweep:
            sweep(urls, root, args.workers, args.processes)
    print(f"calibration after: {calibration():.2f} s for 10M additions in pure Python")


if __name__ == "__main__":
    main()
