"""Politeness: robots.txt, and per-host request-rate and concurrency limits.

One ``Politeness`` is made per run and shared by the HTTP clients of every
source of that run (``HttpClient.policy``), so two sources on the same
forum share that forum's limits. Per host (the URL's host name, without
port):

- **concurrency**: at most ``max_concurrency`` requests in flight (a
  semaphore held from the request until its body is read);
- **rate**: requests start at least ``1 / requests_per_second`` apart;
- **robots.txt** (parsed with protego, at most 512 KB): a disallowed URL
  raises ``RobotsDisallowed`` and is recorded on the source's policy. As
  RFC 9309 says, a robots.txt that answers 4xx allows everything, one that
  cannot be fetched (5xx, network) disallows everything for this run. Its
  ``Crawl-delay`` / ``Request-rate`` slow the host down when the config
  gives no rate. It is asked for once per host and run, and with a
  ``RobotsCache`` (``$ENGAGE_HOME/cache/robots``) at most once per
  ``ENGAGE_ROBOTS_CACHE_HOURS`` (24, the most RFC 9309 allows) across runs
  and Airflow tasks; an older copy is revalidated with its ETag /
  Last-Modified, and used when the host cannot be reached (RFC 9309 2.4)
  instead of disallowing everything.

Where the limits come from, for host H:

1. the ``hosts:`` entry for H in the sources file, and the options
   ``requests_per_second`` / ``max_concurrency`` of every source whose URL is
   on H -- the lowest value wins;
2. else the ``hosts: {"*": ...}`` entry;
3. else no rate limit (unless robots.txt asks for one) and
   ``DEFAULT_MAX_CONCURRENCY`` requests at once.

robots.txt is checked for the kinds that crawl web pages (``ROBOTS_KINDS``)
and for any host whose entry (or ``*``) says ``robots: true``; ``robots:
false`` turns it off for a host. Feeds and documented APIs are fetched the
way their publishers intend machines to fetch them (as feed readers do, e.g.
Google's Feedfetcher), under their own rate limits.

Retries, ``Retry-After`` and backoff with jitter stay in ``collectors.http``
(urllib3's ``Retry``); retries of one request hold its host slot but are not
counted against the rate.

``run_by_host`` runs one job per source on a thread pool without letting
the sources of one slow host take every worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from protego import Protego

from engage.errors import FetchError
from engage.files import write_atomic

if TYPE_CHECKING:
    from collectors.http import SessionPool
    from engage.config import HostConfig, SourceConfig, SourcesConfig

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 4
ROBOTS_KINDS = frozenset({"html_forum"})
ROBOTS_MAX_BYTES = 512_000
# A robots.txt copy not refreshed for this long belongs to a host no longer collected.
ROBOTS_UNUSED_DAYS = 30
# A robots.txt may ask for a long crawl delay; a source still has to finish.
MAX_ROBOTS_DELAY = 30.0

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")


class RobotsDisallowed(FetchError):
    """robots.txt of the host does not allow this URL for our user agent."""


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass(frozen=True)
class Limits:
    """The limits in force for one host."""

    requests_per_second: float | None
    max_concurrency: int
    robots: bool | None  # None: by the kind of the source


class HostGate:
    """The concurrency slots and request spacing of one host."""

    def __init__(self, host: str, limits: Limits) -> None:
        self.host = host
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_concurrency)
        self._lock = threading.Lock()
        rps = limits.requests_per_second
        self._interval = 1.0 / rps if rps else 0.0
        self._next_start = 0.0

    def slow_down(self, interval: float) -> None:
        """Space requests at least ``interval`` seconds apart from now on."""
        with self._lock:
            self._interval = max(self._interval, interval)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start)
                self._next_start = start + self._interval
            if start > now:
                time.sleep(start - now)
            yield


@dataclass
class _Robots:
    rules: Protego | None  # None: everything allowed
    error: str | None = None  # set: robots.txt unreachable, everything disallowed


@dataclass(frozen=True)
class CachedRobots:
    """A robots.txt answer as kept between runs: 2xx with its body, or 4xx (allow all)."""

    origin: str
    status: int
    body: str
    fetched_at: datetime
    etag: str | None = None
    last_modified: str | None = None


class RobotsCache:
    """robots.txt answers kept in a folder between runs, one small JSON file per origin.

    Shared by every run and Airflow task using the same ``$ENGAGE_HOME``;
    writes are atomic (a reader sees the old file or the new one). A file
    that cannot be read is treated as absent. The daily retention step
    removes copies not refreshed for ``ROBOTS_UNUSED_DAYS``.
    """

    def __init__(self, folder: Path, max_age: timedelta) -> None:
        self.folder = folder
        self.max_age = max_age

    def _path(self, origin: str) -> Path:
        return self.folder / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".json")

    def get(self, origin: str) -> CachedRobots | None:
        try:
            data = json.loads(self._path(origin).read_text(encoding="utf-8"))
            entry = CachedRobots(**{**data, "fetched_at": datetime.fromisoformat(data["fetched_at"])})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        valid = entry.origin == origin and isinstance(entry.status, int) and isinstance(entry.body, str)
        return entry if valid else None

    def fresh(self, cached: CachedRobots) -> bool:
        return datetime.now(UTC) - cached.fetched_at < self.max_age

    def put(self, entry: CachedRobots) -> None:
        data = {**asdict(entry), "fetched_at": entry.fetched_at.isoformat()}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path(entry.origin), json.dumps(data))
        except OSError as exc:  # a cache that cannot be written costs a fetch next time, nothing more
            log.warning("robots.txt cache %s not written: %s", self._path(entry.origin), exc)

    def prune(self, unused_for: timedelta) -> list[Path]:
        """Remove the copies not refreshed for ``unused_for`` (hosts no longer collected)."""
        if not self.folder.is_dir():
            return []
        cutoff = time.time() - unused_for.total_seconds()
        removed = []
        for path in self.folder.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:  # removed by another task meanwhile
                continue
        return removed


class Politeness:
    """robots.txt and the per-host limits of one run, shared by all its sources."""

    def __init__(
        self,
        hosts: Mapping[str, HostConfig] | None = None,
        *,
        source_limits: Mapping[str, Sequence[HostConfig]] | None = None,
        user_agent: str = "engage",
        robots_cache: RobotsCache | None = None,
        sessions: SessionPool | None = None,
    ) -> None:
        self.hosts = {h.lower(): c for h, c in (hosts or {}).items()}
        self.source_limits = {h.lower(): list(c) for h, c in (source_limits or {}).items()}
        self.user_agent = user_agent
        self.robots_cache = robots_cache
        self.sessions = sessions
        self.robots_fetched = 0  # requests for robots.txt made by this run
        self._gates: dict[str, HostGate] = {}
        self._robots: dict[str, _Robots] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.blocked: list[tuple[str, str]] = []  # (source, url)

    @classmethod
    def from_config(
        cls,
        config: SourcesConfig,
        *,
        user_agent: str,
        robots_cache: RobotsCache | None = None,
        sessions: SessionPool | None = None,
    ) -> Politeness:
        from engage.config import HostConfig

        by_host: dict[str, list[HostConfig]] = {}
        for src in config.sources:
            rps = src.options.get("requests_per_second")
            conc = src.options.get("max_concurrency")
            if rps is not None or conc is not None:
                by_host.setdefault(src.host, []).append(HostConfig(rps, conc))
        return cls(
            config.hosts,
            source_limits=by_host,
            user_agent=user_agent,
            robots_cache=robots_cache,
            sessions=sessions,
        )

    # --- limits -----------------------------------------------------------

    def limits(self, host: str) -> Limits:
        host = host.lower()
        given = [c for c in [self.hosts.get(host), *self.source_limits.get(host, [])] if c is not None]
        star = self.hosts.get("*")
        rates = [c.requests_per_second for c in given if c.requests_per_second]
        slots = [c.max_concurrency for c in given if c.max_concurrency]
        entry = self.hosts.get(host)
        robots = entry.robots if entry is not None and entry.robots is not None else None
        if robots is None and star is not None:
            robots = star.robots
        return Limits(
            requests_per_second=min(rates) if rates else (star.requests_per_second if star else None),
            max_concurrency=min(slots)
            if slots
            else (star.max_concurrency if star and star.max_concurrency else DEFAULT_MAX_CONCURRENCY),
            robots=robots,
        )

    def gate(self, host: str) -> HostGate:
        with self._lock:
            gate = self._gates.get(host)
            if gate is None:
                gate = self._gates[host] = HostGate(host, self.limits(host))
            return gate

    def for_source(self, src: SourceConfig) -> SourcePolicy:
        return SourcePolicy(self, src.name, src.kind in ROBOTS_KINDS)

    # --- robots.txt ---------------------------------------------------------

    def robots_applies(self, host: str, by_kind: bool) -> bool:
        robots = self.limits(host).robots
        return by_kind if robots is None else robots

    def robots_for(self, url: str) -> _Robots:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        with self._lock:
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin, however many sources ask at once
            known = self._robots.get(origin)
            if known is None:
                known = self._robots[origin] = self._fetch_robots(origin, host_of(url))
            return known

    def _fetch_robots(self, origin: str, host: str) -> _Robots:
        cached = self.robots_cache.get(origin) if self.robots_cache is not None else None
        if cached is not None and self.robots_cache is not None and self.robots_cache.fresh(cached):
            return self._rules(host, cached.status, cached.body)
        status, body, headers, error = self._ask_robots(origin, host, cached)
        if error is not None or status >= 500:
            if cached is not None:  # unreachable: the last copy we had (RFC 9309 2.4)
                log.warning(
                    "%s/robots.txt: %s; using the copy of %s",
                    origin,
                    error or f"HTTP {status}",
                    cached.fetched_at,
                )
                return self._rules(host, cached.status, cached.body)
            return _Robots(None, error=error or f"robots.txt answered HTTP {status}")
        if status == 304 and cached is not None:
            status, body = cached.status, cached.body
            headers = {"ETag": cached.etag, "Last-Modified": cached.last_modified, **headers}
        if self.robots_cache is not None and (200 <= status < 300 or 400 <= status < 500):
            self.robots_cache.put(
                CachedRobots(
                    origin=origin,
                    status=status,
                    body=body,
                    fetched_at=datetime.now(UTC),
                    etag=headers.get("ETag"),
                    last_modified=headers.get("Last-Modified"),
                )
            )
        return self._rules(host, status, body)

    def _ask_robots(
        self, origin: str, host: str, cached: CachedRobots | None
    ) -> tuple[int, str, dict[str, str], str | None]:
        """(status, body, headers, error) of one request for robots.txt."""
        from collectors.http import HttpClient

        client = HttpClient(
            user_agent=self.user_agent,
            retries=1,
            backoff_factor=0.2,
            read_timeout=10.0,
            max_bytes=ROBOTS_MAX_BYTES,
            max_retry_after=5.0,
            deadline=30.0,
            sessions=self.sessions,
        )
        try:
            with self.gate(host).slot():
                with self._lock:
                    self.robots_fetched += 1
                resp = client.get(
                    origin + "/robots.txt",
                    etag=cached.etag if cached else None,
                    last_modified=cached.last_modified if cached else None,
                    ok_statuses=tuple(range(200, 600)),
                )
        except FetchError as exc:
            return 0, "", {}, f"robots.txt could not be fetched: {exc.reason}"
        finally:
            client.close()
        headers = {k: v for k in ("ETag", "Last-Modified") if (v := resp.headers.get(k))}
        return resp.status, resp.body.decode("utf-8", "replace"), headers, None

    def _rules(self, host: str, status: int, body: str) -> _Robots:
        if status >= 300:  # 4xx (and a 3xx that was not followed): everything allowed
            return _Robots(None)
        rules = Protego.parse(body)
        delay = rules.crawl_delay(self.user_agent)
        rate = rules.request_rate(self.user_agent)
        if rate is not None and rate.requests:
            delay = max(delay or 0.0, rate.seconds / rate.requests)
        if delay and not self.limits(host).requests_per_second:
            self.gate(host).slow_down(min(float(delay), MAX_ROBOTS_DELAY))
        return _Robots(rules)

    def check_robots(self, url: str, source_name: str) -> None:
        robots = self.robots_for(url)
        if robots.error is not None:
            allowed, why = False, f"{robots.error}; treated as disallowing everything for this run (RFC 9309)"
        else:
            allowed = robots.rules is None or robots.rules.can_fetch(url, self.user_agent)
            why = "disallowed by robots.txt"
        if not allowed:
            with self._lock:
                self.blocked.append((source_name, url))
            log.warning("source %s: %s: %s", source_name, why, url)
            raise RobotsDisallowed(url, why)


@dataclass
class SourcePolicy:
    """The run's politeness as one source's HTTP client sees it."""

    politeness: Politeness
    source_name: str
    robots_by_kind: bool
    blocked: list[str] = field(default_factory=list)

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = host_of(url)
        if self.politeness.robots_applies(host, self.robots_by_kind):
            try:
                self.politeness.check_robots(url, self.source_name)
            except RobotsDisallowed:
                self.blocked.append(url)
                raise
        with self.politeness.gate(host).slot():
            yield


def run_by_host(
    jobs: Sequence[Job],
    work: Callable[[Job], Outcome],
    *,
    host: Callable[[Job], str],
    slots: Callable[[str], int],
    max_workers: int,
) -> list[Outcome]:
    """``work(job)`` for every job on a thread pool; results in the order of ``jobs``.

    At most ``slots(host)`` jobs of one host run at once, and a job is only
    handed to the pool when a worker is free, so the jobs of a slow host wait
    in their own queue instead of holding workers the other hosts could use.
    Hosts take turns.
    """
    queues: dict[str, deque[int]] = {}
    for index, job in enumerate(jobs):
        queues.setdefault(host(job), deque()).append(index)
    running: dict[str, int] = dict.fromkeys(queues, 0)
    limit = {h: max(1, slots(h)) for h in queues}
    # Hosts with a job waiting and a free slot, in turn order; a host is in it at most once.
    ready: deque[str] = deque(queues)
    results: list[Outcome | None] = [None] * len(jobs)
    in_flight: dict[Future[Outcome], tuple[int, str]] = {}
    # Finished futures arrive here: waiting on one queue costs the same for 4
    # jobs in flight or 256, where concurrent.futures.wait() visits every one.
    finished: SimpleQueue[Future[Outcome]] = SimpleQueue()
    workers = max(1, max_workers)

    def fill(pool: ThreadPoolExecutor) -> None:
        while ready and len(in_flight) < workers:
            h = ready.popleft()
            index = queues[h].popleft()
            running[h] += 1
            future = pool.submit(work, jobs[index])
            in_flight[future] = (index, h)
            future.add_done_callback(finished.put)
            if queues[h] and running[h] < limit[h]:
                ready.append(h)  # its next job waits for the other hosts' turns

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collect") as pool:
        fill(pool)
        while in_flight:
            future = finished.get()
            index, h = in_flight.pop(future)
            if running[h] == limit[h] and queues[h]:
                ready.append(h)  # it was full: a slot is free again
            running[h] -= 1
            results[index] = future.result()
            fill(pool)
    return results  # type: ignore[return-value]
