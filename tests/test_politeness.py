"""Politeness over loopback: robots.txt, per-host rate and concurrency limits, measured on the server side."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, select
from werkzeug import Request, Response

from collectors.http import HttpClient
from collectors.politeness import Politeness, RobotsDisallowed
from engage import pipeline
from engage.config import HostConfig, SourceConfig, load_sources
from engage.errors import ConfigError
from engage.warehouse.schema import collection_run, source

DAY = date(2026, 11, 20)
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>{name}-1</guid><title>Item of {name}</title></item></channel></rss>"""
UA = "engage-test/1"


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A loopback server that answers requests concurrently (pytest-httpserver's default does not)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def client_with(policy_source: SourceConfig, politeness: Politeness) -> HttpClient:
    return HttpClient(user_agent=UA, retries=0, read_timeout=5.0, policy=politeness.for_source(policy_source))


def test_robots_disallow_is_honoured_fetched_once_per_host_and_recorded(
    engine: Engine,
    warehouse_url: str,
    httpserver: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    for name in ("public", "private"):
        httpserver.expect_request(f"/{name}/feed.xml").respond_with_data(
            FEED.format(name=name), content_type="application/rss+xml"
        )
    path = write_sources(
        f"""
hosts:
  "{httpserver.host}": {{robots: true}}
sources:
  - {{name: public, kind: rss, url: "{httpserver.url_for("/public/feed.xml")}"}}
  - {{name: private, kind: rss, url: "{httpserver.url_for("/private/feed.xml")}"}}
"""
    )
    settings = settings_for(warehouse_url, sources=path)
    summary = {s.source: s for s in pipeline.run_day(settings, load_sources(path), DAY)}

    assert summary["public"].status == "success" and summary["public"].items_total == 1
    assert summary["private"].status == "failed"
    assert "disallowed by robots.txt" in (summary["private"].error or "")
    paths = [request.path for request, _ in httpserver.log]
    assert paths.count("/robots.txt") == 1  # cached for the run, shared by both sources
    assert "/private/feed.xml" not in paths
    with engine.connect() as conn:
        error, last_error = conn.execute(
            select(collection_run.c.error, source.c.last_error)
            .join(source, source.c.source_id == collection_run.c.source_id)
            .where(source.c.name == "private")
        ).one()
    assert "robots.txt" in error and "/private/feed.xml" in error and "robots.txt" in last_error


def test_robots_applies_to_page_crawling_kinds_by_default_and_per_host_config() -> None:
    politeness = Politeness(
        {"api.example.com": HostConfig(robots=False), "feeds.example.com": HostConfig(robots=True)}
    )
    forum = SourceConfig(name="f", kind="html_forum", url="https://forum.example.com/")
    feed = SourceConfig(name="r", kind="rss", url="https://blog.example.com/feed")
    assert politeness.for_source(forum).robots_by_kind is True
    assert politeness.for_source(feed).robots_by_kind is False
    assert politeness.robots_applies("forum.example.com", by_kind=True)
    assert not politeness.robots_applies("api.example.com", by_kind=True)
    assert politeness.robots_applies("feeds.example.com", by_kind=False)
    assert Politeness({"*": HostConfig(robots=True)}).robots_applies("any.example.com", by_kind=False)


def test_robots_unavailable_disallows_and_missing_robots_allows(httpserver: HTTPServer) -> None:
    """RFC 9309: 4xx means no rules; 5xx or no answer means assume everything is disallowed."""
    src = SourceConfig(name="f", kind="html_forum", url=httpserver.url_for("/"))
    httpserver.expect_request("/robots.txt").respond_with_data("down", status=503)
    httpserver.expect_request("/page").respond_with_data("<html></html>")
    with pytest.raises(RobotsDisallowed, match=r"HTTP 503.*RFC 9309"):
        client_with(src, Politeness(user_agent=UA)).get(httpserver.url_for("/page"))

    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data("no", status=404)
    httpserver.expect_request("/page").respond_with_data("<html></html>")
    assert client_with(src, Politeness(user_agent=UA)).get(httpserver.url_for("/page")).status == 200


def test_robots_rules_for_our_user_agent_and_query_strings(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        f"User-agent: {UA.split('/')[0]}\nDisallow: /search?q=\n\nUser-agent: *\nDisallow: /\n"
    )
    httpserver.expect_request("/search").respond_with_data("ok")
    src = SourceConfig(name="f", kind="html_forum", url=httpserver.url_for("/"))
    policy = Politeness(user_agent=UA)
    client = client_with(src, policy)
    assert client.get(httpserver.url_for("/search"), params={"page": "2"}).status == 200
    with pytest.raises(RobotsDisallowed):
        client.get(httpserver.url_for("/search"), params={"q": "crm"})
    assert client.policy.blocked == [httpserver.url_for("/search") + "?q=crm"]  # type: ignore[union-attr]
    assert policy.blocked == [("f", httpserver.url_for("/search") + "?q=crm")]


def _sources(server: HTTPServer, count: int, extra: str = "") -> str:
    lines = "\n".join(
        f'  - {{name: s{i}, kind: rss, url: "{server.url_for(f"/s{i}.xml")}"{extra}}}' for i in range(count)
    )
    return f"sources:\n{lines}\n"


def test_per_host_rate_limit_counted_per_window_on_the_server(
    sqlite_engine: Engine,
    threaded_server: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    arrivals: list[float] = []

    def handler(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return Response(FEED.format(name=request.path.strip("/")), content_type="application/rss+xml")

    threaded_server.expect_request("/robots.txt").respond_with_data("", status=404)
    for i in range(8):
        threaded_server.expect_request(f"/s{i}.xml").respond_with_handler(handler)
    # The limit comes from the hosts mapping and from a source option: the lowest wins.
    path = write_sources(
        'hosts: {"127.0.0.1": {requests_per_second: 10, max_concurrency: 8}}\n'
        + _sources(threaded_server, 8).replace('s0.xml"}', 's0.xml", requests_per_second: 4}')
    )
    config = load_sources(path)
    settings = settings_for(str(sqlite_engine.url), sources=path)
    outcomes = pipeline.collect_all(settings, config, DAY, engine=sqlite_engine, max_workers=8)

    assert [o.status for o in outcomes] == ["success"] * 8
    assert len(arrivals) == 8
    arrivals.sort()
    # 4 requests per second: at most 4 (+1 for scheduling jitter) in any one-second window...
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 5
    # ...so eight requests from eight concurrent sources take well over a second.
    assert arrivals[-1] - arrivals[0] >= 7 * 0.25 * 0.8


class ConcurrencyCounter:
    """A slow handler that counts the requests it is serving at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        return Response(FEED.format(name=request.path.strip("/")), content_type="application/rss+xml")


def test_per_host_concurrency_limit_seen_by_the_server(
    sqlite_engine: Engine,
    threaded_server: HTTPServer,
    write_sources,
    settings_for,  # type: ignore[no-untyped-def]
) -> None:
    handler = ConcurrencyCounter(0.2)
    for i in range(6):
        threaded_server.expect_request(f"/s{i}.xml").respond_with_handler(handler)
    path = write_sources(_sources(threaded_server, 6, extra=", max_concurrency: 2"))
    settings = settings_for(str(sqlite_engine.url), sources=path)
    outcomes = pipeline.collect_all(settings, load_sources(path), DAY, engine=sqlite_engine, max_workers=6)
    assert [o.status for o in outcomes] == ["success"] * 6
    assert handler.most == 2  # used, and never exceeded


def test_shared_limit_holds_for_requests_of_one_client_across_threads(threaded_server: HTTPServer) -> None:
    """The gate is per host, not per source: clients of two sources share it."""
    handler = ConcurrencyCounter(0.1)
    threaded_server.expect_request("/x").respond_with_handler(handler)
    politeness = Politeness({"127.0.0.1": HostConfig(max_concurrency=1)}, user_agent=UA)
    clients = [
        client_with(SourceConfig(name=f"s{i}", kind="rss", url=threaded_server.url_for("/")), politeness)
        for i in range(2)
    ]
    threads = [threading.Thread(target=c.get, args=(threaded_server.url_for("/x"),)) for c in clients * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(threaded_server.log) == 4 and handler.most == 1


def test_crawl_delay_from_robots_spaces_requests(threaded_server: HTTPServer) -> None:
    arrivals: list[float] = []

    def handler(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return Response("ok")

    threaded_server.expect_request("/robots.txt").respond_with_data("User-agent: *\nCrawl-delay: 0.5\n")
    threaded_server.expect_request("/p").respond_with_handler(handler)
    src = SourceConfig(name="f", kind="html_forum", url=threaded_server.url_for("/"))
    client = client_with(src, Politeness(user_agent=UA))
    for _ in range(3):
        client.get(threaded_server.url_for("/p"))
    assert arrivals[-1] - arrivals[0] >= 2 * 0.5 * 0.8


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            'hosts: {"a.example": {requests_per_second: 0}}',
            "hosts.a.example, field 'requests_per_second': 0 is not a positive",
        ),
        (
            'hosts: {"a.example": {max_concurrency: 2, speed: 1}}',
            "field 'speed': unknown; the fields are requests_per_second",
        ),
        ('hosts: {"a.example": {robots: "yes"}}', "field 'robots': must be true or false"),
        ("hosts: [a]", "hosts: must be a mapping"),
    ],
)
def test_bad_host_limits_name_the_file_and_host(write_sources, text: str, words: str) -> None:  # type: ignore[no-untyped-def]
    path = write_sources(text + '\nsources:\n  - {name: a, kind: rss, url: "http://a.example/f"}\n')
    with pytest.raises(ConfigError, match=words) as info:
        load_sources(path)
    assert str(path) in str(info.value)


def test_bad_source_limit_names_the_source(write_sources) -> None:  # type: ignore[no-untyped-def]
    path = write_sources(
        'sources:\n  - {name: a, kind: rss, url: "http://a.example/f", max_concurrency: -1}\n'
    )
    with pytest.raises(
        ConfigError, match=r"source 'a', field 'max_concurrency': -1 is not a positive number"
    ):
        load_sources(path)


def test_robots_cache_spares_a_fetch_revalidates_when_old_and_covers_an_outage(
    httpserver: HTTPServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from collectors.politeness import RobotsCache

    src = SourceConfig(name="f", kind="html_forum", url=httpserver.url_for("/"))
    cache = RobotsCache(tmp_path / "robots", max_age=timedelta(hours=24))
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", headers={"ETag": '"r1"'}
    )
    httpserver.expect_request("/page").respond_with_data("<html></html>")

    def run() -> Politeness:
        """One run: a new Politeness, an allowed and a disallowed URL."""
        politeness = Politeness(user_agent=UA, robots_cache=cache)
        client = client_with(src, politeness)
        assert client.get(httpserver.url_for("/page")).status == 200
        with pytest.raises(RobotsDisallowed):
            client.get(httpserver.url_for("/private/x"))
        return politeness

    def robots_requests() -> list[Request]:
        return [r for r, _ in httpserver.log if r.path == "/robots.txt"]

    assert run().robots_fetched == 1
    assert run().robots_fetched == 0  # the next run within 24 h: the kept copy, no request
    assert len(robots_requests()) == 1

    # A day later: asked again, with the validator; a 304 keeps the rules.
    origin = httpserver.url_for("/").rstrip("/")
    entry = cache.get(origin)
    assert entry is not None and entry.etag == '"r1"'
    cache.put(type(entry)(**{**entry.__dict__, "fetched_at": datetime.now(UTC) - timedelta(hours=25)}))
    httpserver.clear()
    httpserver.expect_request("/robots.txt", headers={"If-None-Match": '"r1"'}).respond_with_data(
        "", status=304
    )
    httpserver.expect_request("/page").respond_with_data("<html></html>")
    assert run().robots_fetched == 1
    assert robots_requests()[0].headers["If-None-Match"] == '"r1"'
    assert cache.fresh(cache.get(origin))  # type: ignore[arg-type]

    # Old copy, host answering 503: the copy's rules, not "everything disallowed".
    entry = cache.get(origin)
    cache.put(type(entry)(**{**entry.__dict__, "fetched_at": datetime.now(UTC) - timedelta(days=3)}))  # type: ignore[arg-type]
    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data("down", status=503)
    httpserver.expect_request("/page").respond_with_data("<html></html>")
    assert run().robots_fetched == 1
    # Without a copy the same outage disallows everything (RFC 9309).
    with pytest.raises(RobotsDisallowed, match="HTTP 503"):
        client_with(src, Politeness(user_agent=UA)).get(httpserver.url_for("/page"))


def test_a_corrupt_robots_cache_file_is_a_miss(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from collectors.politeness import RobotsCache

    cache = RobotsCache(tmp_path, max_age=timedelta(hours=24))
    cache._path("http://a.example").write_text("{not json")
    assert cache.get("http://a.example") is None


def test_robots_copies_of_hosts_no_longer_collected_are_pruned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    from datetime import UTC, datetime, timedelta

    from collectors.politeness import CachedRobots, RobotsCache

    cache = RobotsCache(tmp_path, max_age=timedelta(hours=24))
    for origin in ("http://old.example", "http://new.example"):
        cache.put(CachedRobots(origin=origin, status=200, body="", fetched_at=datetime.now(UTC)))
    old = cache._path("http://old.example")
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    assert cache.prune(timedelta(days=30)) == [old]
    assert cache.get("http://old.example") is None and cache.get("http://new.example") is not None
