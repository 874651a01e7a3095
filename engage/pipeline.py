"""The daily pipeline's steps, shared by the Airflow DAG and ``engage run``.

Each step is a plain function of the settings, the sources config and the
logical date, so the DAG only wires them and the CLI calls them in the same
order:

1. ``collect_source`` (one per source): fetch, parse, stage the records as
   a gzip JSON file under ``$ENGAGE_HOME/staging/<date>/<source>.json.gz``,
   and record the attempt in ``collection_run`` (``engage.collection_runs``).
   A source with nothing to load (a 304) stages nothing: its new cursor is
   stored with its run row. A failure is recorded (status, HTTP status,
   error, next attempt) and raised as SourceFailed; it never touches the
   other sources. ``collect_all`` does the same for every source at once.
2. ``load_day``: load every staged file of the day, many sources per
   transaction (upserts, so a rerun replaces and never duplicates; a batch
   that fails is loaded again source by source). The source's
   ETag/Last-Modified/watermark are written in that same transaction.
3. ``classify_day``, ``build_facts_day``: see ``transforms``.
4. ``summarize_day``: counts per source for the day, from the warehouse.
"""

from __future__ import annotations

import gzip
import json
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from collectors import collector_for
from collectors.base import CollectContext
from collectors.http import HttpClient, SessionPool
from collectors.politeness import Politeness, RobotsCache, SourcePolicy, run_by_host
from collectors.records import CollectResult
from engage.collection_runs import CollectionRuns, SourceState, mark_loaded, record_load_error
from engage.config import SourceConfig, SourcesConfig
from engage.errors import EngageError
from engage.raw import RawLanding
from engage.settings import Settings
from engage.warehouse.db import is_in_memory, make_engine, require_current, upsert, wait_for_warehouse
from engage.warehouse.schema import collection_run, content_item, engagement_observation, source
from transforms.load import SourceLoad, load_results

log = logging.getLogger(__name__)

Job = TypeVar("Job")


class SourceFailed(EngageError):
    """One source could not be collected; the run goes on with the others."""

    def __init__(self, source_name: str, reason: str) -> None:
        self.source_name = source_name
        self.reason = reason
        super().__init__(f"source {source_name!r} failed: {reason}")


@dataclass
class CollectOutcome:
    source: str
    status: str  # success | not_modified | failed
    http_status: int | None = None
    items: int = 0
    observations: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status,
            "http_status": self.http_status,
            "items": self.items,
            "observations": self.observations,
            "error": self.error,
        }


def now() -> datetime:
    return datetime.now(UTC)


def open_warehouse(settings: Settings) -> Engine:
    """The warehouse engine, once it answers (waiting ``ENGAGE_WAREHOUSE_WAIT_SECONDS``
    while it is briefly unreachable) and is at the code's schema."""
    engine = make_engine(settings.warehouse_url)
    wait_for_warehouse(engine, settings.warehouse_wait_seconds)
    require_current(engine)
    return engine


def staged_path(settings: Settings, run_date: date, source_name: str) -> Path:
    return settings.staging_dir / run_date.isoformat() / f"{source_name}.json.gz"


def sync_sources(engine: Engine, config: SourcesConfig) -> dict[str, int]:
    """Make the source table match the config (name, kind, URL, own); name -> id.

    Only new and changed sources are written: every step of a run calls this,
    and most days nothing changed."""
    stamp = now()
    with engine.begin() as conn:
        known = {
            r.name: r
            for r in conn.execute(
                select(source.c.source_id, source.c.name, source.c.kind, source.c.url, source.c.is_own)
            )
        }
        rows = [
            {
                "name": s.name,
                "kind": s.kind,
                "url": s.url,
                "is_own": s.own,
                "created_at": stamp,
                "updated_at": stamp,
                "consecutive_failures": 0,
            }
            for s in config.sources
            if s.name not in known or tuple(known[s.name][2:]) != (s.kind, s.url, bool(s.own))
        ]
        if not rows:
            return {name: r.source_id for name, r in known.items()}
        upsert(conn, source, rows, key=["name"], update=["kind", "url", "is_own", "updated_at"])
        return {r.name: r.source_id for r in conn.execute(select(source.c.name, source.c.source_id))}


def make_politeness(
    settings: Settings, config: SourcesConfig, *, sessions: SessionPool | None = None
) -> Politeness:
    """robots.txt (cached for ``robots_cache_hours``) and per-host limits, shared by
    every source of one run."""
    hours = settings.robots_cache_hours
    cache = RobotsCache(settings.robots_cache_dir, timedelta(hours=hours)) if hours > 0 else None
    return Politeness.from_config(
        config, user_agent=settings.user_agent, robots_cache=cache, sessions=sessions
    )


def make_client(
    settings: Settings,
    src: SourceConfig,
    *,
    run_date: date | None = None,
    politeness: Politeness | None = None,
    sessions: SessionPool | None = None,
) -> HttpClient:
    """The source's HTTP client; with ``run_date`` every response is landed under
    ``$ENGAGE_HOME/raw/<date>/<source>/``, with ``politeness`` the run's limits
    apply, with ``sessions`` it shares the run's connections."""
    return HttpClient(
        user_agent=settings.user_agent,
        connect_timeout=settings.http_connect_timeout,
        read_timeout=float(src.options.get("timeout", settings.http_timeout)),
        max_bytes=int(src.options.get("max_bytes", settings.http_max_bytes)),
        on_response=RawLanding(settings.raw_dir, run_date, src.name) if run_date else None,
        policy=politeness.for_source(src) if politeness is not None else None,
        sessions=sessions,
    )


def _write_staged(path: Path, result: CollectResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    # Level 1: a staged file lives until the load, a few minutes; level 9 compressed ~3x slower.
    # json.dumps, not json.dump: only the one-shot form uses the C encoder (5 ms -> 1 ms a feed).
    with gzip.open(tmp, "wb", compresslevel=1) as fh:
        fh.write(json.dumps(result.to_json()).encode("utf-8"))
    tmp.replace(path)


def _read_staged(path: Path) -> CollectResult:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return CollectResult.from_json(json.load(fh))


def collect_source(
    settings: Settings,
    config: SourcesConfig,
    source_name: str,
    run_date: date,
    *,
    engine: Engine | None = None,
    client_factory: Callable[..., HttpClient] = make_client,
    politeness: Politeness | None = None,
    source_ids: dict[str, int] | None = None,
) -> CollectOutcome:
    """Collect one source for ``run_date`` and stage its records (one Airflow task).

    ``politeness`` is the run's shared one (a new one when not given);
    ``source_ids`` spares a sync of the source table when the caller did it.
    ``client_factory(settings, src, run_date=..., politeness=..., sessions=...)`` makes the client.
    A failure is recorded and raised as ``SourceFailed``.
    """
    src = config.get(source_name)
    engine = engine or open_warehouse(settings)
    ids = source_ids if source_ids is not None else sync_sources(engine, config)
    runs = CollectionRuns(engine, run_date)  # every end written at once
    state = runs.open({src.name: ids[src.name]})[src.name]
    with SessionPool() as sessions:
        return _collect_one(
            settings,
            config,
            src,
            run_date,
            state,
            runs,
            client_factory=client_factory,
            politeness=politeness or make_politeness(settings, config, sessions=sessions),
            sessions=sessions,
        )


def _collect_one(
    settings: Settings,
    config: SourcesConfig,
    src: SourceConfig,
    run_date: date,
    state: SourceState,
    runs: CollectionRuns,
    *,
    client_factory: Callable[..., HttpClient] = make_client,
    politeness: Politeness,
    sessions: SessionPool | None = None,
) -> CollectOutcome:
    """Fetch and parse one source; stage what there is to load; end its run row."""
    path = staged_path(settings, run_date, src.name)
    path.unlink(missing_ok=True)
    client = client_factory(settings, src, run_date=run_date, politeness=politeness, sessions=sessions)
    if isinstance(client.on_response, RawLanding):
        client.on_response.set_context(state.etag, state.last_modified, state.watermark)
    try:
        ctx = CollectContext(
            source=src,
            client=client,
            run_date=run_date,
            etag=state.etag,
            last_modified=state.last_modified,
            watermark=state.watermark,
            team=config.team,
        )
        result = collector_for(src.kind)(ctx)
    except Exception as exc:  # noqa: BLE001 - any failure of one source is recorded, not fatal
        reason = str(exc) if isinstance(exc, EngageError) else f"{type(exc).__name__}: {exc}"
        runs.failed(state, reason, getattr(exc, "status", None))
        log.warning("source %s failed: %s", src.name, reason)
        raise SourceFailed(src.name, reason) from exc
    finally:
        client.close()
    if isinstance(client.policy, SourcePolicy):
        result.warnings.extend(f"robots.txt disallows {url}: not fetched" for url in client.policy.blocked)
    status = "not_modified" if result.not_modified else "success"
    cursor = None
    if result.has_records():
        _write_staged(path, result)
    else:  # nothing to load: the new cursor is stored with the run's end
        cursor = (result.etag, result.last_modified, result.watermark)
    runs.finished(
        state,
        status=status,
        http_status=result.http_status,
        items=len(result.items),
        observations=len(result.observations),
        requests=result.requests,
        warnings=result.warnings,
        cursor=cursor,
    )
    for warning in result.warnings:
        log.warning("source %s: %s", src.name, warning)
    return CollectOutcome(
        source=src.name,
        status=status,
        http_status=result.http_status,
        items=len(result.items),
        observations=len(result.observations),
        warnings=result.warnings,
    )


@dataclass
class LoadOutcome:
    source: str
    authors: int
    items: int
    observations: int


# Sources loaded in one transaction, and the records that close a batch early.
LOAD_BATCH_SOURCES = 100
LOAD_BATCH_RECORDS = 20_000


@dataclass
class _Staged:
    src: SourceConfig
    path: Path
    load: SourceLoad

    @property
    def records(self) -> int:
        r = self.load.result
        return len(r.authors) + len(r.items) + len(r.observations) + len(r.referrals)


def load_day(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine | None = None
) -> list[LoadOutcome]:
    """Load every staged result of the day.

    Sources are loaded in batches (up to ``LOAD_BATCH_SOURCES`` sources or
    ``LOAD_BATCH_RECORDS`` records), each in one transaction with one
    statement per table, and a staged file is removed once its batch is
    committed. When a batch fails, its sources are loaded again one per
    transaction, so one bad source never holds back the others: a source
    that still fails keeps its staged file, and the reason is written to
    its run row (``collection_run.load_error``), where ``summarize_day``
    shows it as ``not_loaded``; the next load of the day retries it. A
    warehouse that stops answering (``OperationalError``) is raised at once.
    """
    engine = engine or open_warehouse(settings)
    ids = sync_sources(engine, config)
    outcomes: list[LoadOutcome] = []
    batch: list[_Staged] = []
    records = 0
    for src in config.enabled():
        path = staged_path(settings, run_date, src.name)
        if not path.exists():
            continue
        try:
            result = _read_staged(path)
        except Exception as exc:  # noqa: BLE001 - a bad file is this source's failure, not the load's
            reason = f"unreadable staged file ({type(exc).__name__}: {exc}): {path}"
            _record_load_failure(engine, src.name, ids[src.name], run_date, reason)
            continue
        batch.append(_Staged(src, path, SourceLoad(ids[src.name], result, src.own)))
        records += batch[-1].records
        if len(batch) >= LOAD_BATCH_SOURCES or records >= LOAD_BATCH_RECORDS:
            outcomes += _load_batch(engine, config, run_date, batch)
            batch, records = [], 0
    outcomes += _load_batch(engine, config, run_date, batch)
    return outcomes


def _record_load_failure(engine: Engine, name: str, source_id: int, run_date: date, reason: str) -> None:
    log.error("source %s not loaded: %s", name, reason)
    record_load_error(engine, source_id, run_date, reason)


def _load_batch(
    engine: Engine, config: SourcesConfig, run_date: date, batch: list[_Staged]
) -> list[LoadOutcome]:
    """``batch`` in one transaction; if that fails, one source per transaction."""
    if not batch:
        return []
    try:
        return _load_together(engine, config, run_date, batch)
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - retried source by source below
        if len(batch) == 1:
            staged = batch[0]
            reason = f"{type(exc).__name__}: {exc}"
            _record_load_failure(engine, staged.src.name, staged.load.source_id, run_date, reason)
            return []
    outcomes = []
    for staged in batch:
        outcomes += _load_batch(engine, config, run_date, [staged])
    return outcomes


def _load_together(
    engine: Engine, config: SourcesConfig, run_date: date, batch: list[_Staged]
) -> list[LoadOutcome]:
    stamp = now()
    with engine.begin() as conn:
        counts = load_results(
            conn, [staged.load for staged in batch], run_date=run_date, collected_at=stamp, team=config.team
        )
        mark_loaded(conn, [staged.load.source_id for staged in batch], run_date, stamp)
    for staged in batch:
        staged.path.unlink(missing_ok=True)
    return [
        LoadOutcome(staged.src.name, c.authors, c.items, c.observations)
        for staged, c in zip(batch, counts, strict=True)
    ]


@dataclass
class SourceSummary:
    source: str
    kind: str
    status: str
    http_status: int | None
    items_collected: int
    items_total: int
    observations_today: int
    error: str | None


def summarize_day(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine | None = None
) -> list[SourceSummary]:
    """The latest attempt of each source for the day, with warehouse counts.
    A source collected but not loaded is ``not_loaded``, with the reason."""
    engine = engine or open_warehouse(settings)
    latest = (
        select(collection_run.c.source_id, func.max(collection_run.c.run_id).label("run_id"))
        .where(collection_run.c.run_date == run_date)
        .group_by(collection_run.c.source_id)
        .subquery()
    )
    items_total = (
        select(content_item.c.source_id, func.count().label("n"))
        .group_by(content_item.c.source_id)
        .subquery()
    )
    obs_today = (
        select(engagement_observation.c.source_id, func.count().label("n"))
        .where(engagement_observation.c.observed_date == run_date)
        .group_by(engagement_observation.c.source_id)
        .subquery()
    )
    stmt = (
        select(
            source.c.name,
            source.c.kind,
            collection_run.c.status,
            collection_run.c.http_status,
            collection_run.c["items"],
            func.coalesce(items_total.c.n, 0),
            func.coalesce(obs_today.c.n, 0),
            collection_run.c.error,
            collection_run.c.load_error,
        )
        .select_from(source)
        .join(latest, latest.c.source_id == source.c.source_id, isouter=True)
        .join(collection_run, collection_run.c.run_id == latest.c.run_id, isouter=True)
        .join(items_total, items_total.c.source_id == source.c.source_id, isouter=True)
        .join(obs_today, obs_today.c.source_id == source.c.source_id, isouter=True)
        .where(source.c.name.in_([s.name for s in config.enabled()]))
        .order_by(source.c.name)
    )
    with engine.connect() as conn:
        return [
            SourceSummary(
                source=r[0],
                kind=r[1],
                status="not_loaded" if r[8] else r[2] or "not run",
                http_status=r[3],
                items_collected=r[4] or 0,
                items_total=r[5],
                observations_today=r[6],
                error=f"collected, not loaded: {r[8]}" if r[8] else r[7],
            )
            for r in conn.execute(stmt)
        ]


def failed_sources(summary: list[SourceSummary]) -> list[SourceSummary]:
    return [s for s in summary if s.status in ("failed", "not run", "running", "not_loaded")]


def collect_all(
    settings: Settings,
    config: SourcesConfig,
    run_date: date,
    *,
    engine: Engine | None = None,
    max_workers: int = 8,
    processes: int = 1,
) -> list[CollectOutcome]:
    """Collect every enabled source concurrently; failures are outcomes, not raises.

    The sources run on ``max_workers`` threads and share one ``Politeness``
    (robots.txt, per-host limits): at most a host's ``max_concurrency``
    sources run at once, so the sources of a slow host queue among
    themselves while other hosts go on. Python threads share one core, and
    fetching (requests) and parsing are both CPU work, so with ``processes``
    > 1 the hosts are split into that many groups of about equal size, each
    collected by its own worker process with its share of the threads: a
    host belongs to one process, so its limits and its robots.txt are still
    those of one politeness. The run rows are opened here, in one
    transaction, and ended in batches by the process that collected the
    source (``CollectionRuns``); a worker process that dies leaves its
    unfinished sources ``failed`` (the ends it had written stay). In
    Airflow each source is its own task (``collect_source``), so this is
    for ``engage run`` and ``engage collect``.
    """
    engine = engine or open_warehouse(settings)
    ids = sync_sources(engine, config)
    sources = config.enabled()
    runs = CollectionRuns(engine, run_date, flush_every=RUN_FLUSH_SECONDS)
    states = runs.open({src.name: ids[src.name] for src in sources})
    _load_collectors({src.kind for src in sources})
    groups = host_groups(sources, processes if _can_fork(engine) else 1)
    if len(groups) <= 1:
        return _collect_group(settings, config, sources, run_date, states, runs, max_workers)

    workers = max(1, -(-max_workers // len(groups)))  # the threads, shared out
    context = multiprocessing.get_context("fork")  # starts at once: the modules are loaded
    started = []
    for group in groups:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_collect_group_in_worker,
            args=(sender, engine, settings, config, group, run_date, states, workers),
            name=f"engage-collect-{len(started) + 1}",
            daemon=True,
        )
        process.start()
        sender.close()
        started.append((process, receiver, group))
    outcomes: dict[str, CollectOutcome] = {}
    for process, receiver, group in started:
        try:
            answer: list[CollectOutcome] | str | None = receiver.recv()
        except EOFError:  # it died without a word: killed, out of memory
            answer = None
        process.join()
        if answer is None:
            answer = f"it ended with exit code {process.exitcode}"
        if isinstance(answer, str):  # every other worker goes on: its hosts are its own
            reason = f"the worker process collecting it failed: {answer}"
            log.warning("%s sources: %s", len(group), reason)
            rows = runs.fail_unfinished([states[src.name] for src in group], reason)
            answer = [CollectOutcome(src.name, **rows[states[src.name].run_id]) for src in group]
        outcomes.update((o.source, o) for o in answer)
    return [outcomes[src.name] for src in sources]


def _load_collectors(kinds: set[str]) -> None:
    """Import the collectors of ``kinds`` once, before the threads and worker
    processes start: forked workers then begin with them loaded, instead of
    each importing them (feedparser, bs4: about 0.1 s of CPU) while all its
    threads queue on the import lock. A collector that fails to import fails
    its own sources later, where the error is recorded."""
    for kind in sorted(kinds):
        try:
            collector_for(kind)
        except Exception:  # noqa: BLE001, S110 - reported by each source of the kind
            pass


def host_groups(
    sources: list[Job], processes: int, host: Callable[[Job], str] = attrgetter("host")
) -> list[list[Job]]:
    """``sources`` in at most ``processes`` groups of whole hosts, about equal in
    sources (the biggest hosts placed first, each in the smallest group)."""
    by_host: dict[str, list[Job]] = {}
    for src in sources:
        by_host.setdefault(host(src), []).append(src)
    groups: list[list[Job]] = [[] for _ in range(max(1, min(processes, len(by_host))))]
    for host_sources in sorted(by_host.values(), key=len, reverse=True):
        min(groups, key=len).extend(host_sources)
    return [group for group in groups if group]


def _can_fork(engine: Engine) -> bool:
    """Worker processes need fork (they start with the modules loaded) and a
    warehouse they can open themselves (not an in-memory SQLite)."""
    return "fork" in multiprocessing.get_all_start_methods() and not is_in_memory(engine.url)


def _collect_group_in_worker(
    answer: Connection,
    engine: Engine,
    settings: Settings,
    config: SourcesConfig,
    sources: list[SourceConfig],
    run_date: date,
    states: dict[str, SourceState],
    max_workers: int,
) -> None:
    """A forked worker's share of ``collect_all``: its outcomes (or why it failed)
    go back through ``answer``. It opens its own warehouse connections; the
    parent's, inherited by the fork, are left alone (SQLAlchemy's recipe)."""
    engine.dispose(close=False)
    own = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        runs = CollectionRuns(own, run_date, flush_every=RUN_FLUSH_SECONDS)
        answer.send(_collect_group(settings, config, sources, run_date, states, runs, max_workers))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails these sources
        answer.send(f"{type(exc).__name__}: {exc}")
    finally:
        answer.close()
        own.dispose()


def _collect_group(
    settings: Settings,
    config: SourcesConfig,
    sources: list[SourceConfig],
    run_date: date,
    states: dict[str, SourceState],
    runs: CollectionRuns,
    max_workers: int,
) -> list[CollectOutcome]:
    """``sources`` on ``max_workers`` threads of this process, with one politeness."""
    sessions = SessionPool()
    politeness = make_politeness(settings, config, sessions=sessions)

    def one(src: SourceConfig) -> CollectOutcome:
        try:
            return _collect_one(
                settings,
                config,
                src,
                run_date,
                states[src.name],
                runs,
                politeness=politeness,
                sessions=sessions,
            )
        except SourceFailed as exc:
            return CollectOutcome(source=src.name, status="failed", error=exc.reason)

    try:
        return run_by_host(
            sources,
            one,
            host=lambda src: src.host,
            slots=lambda host: politeness.limits(host).max_concurrency,
            max_workers=max_workers,
        )
    finally:
        sessions.close()
        runs.flush()


# How late collect_all may write the end of a source's run row.
RUN_FLUSH_SECONDS = 0.5
PROCESSES_FROM_SOURCES = 100


def default_processes(config: SourcesConfig, asked: int | None = None) -> int:
    """``asked``, or the CPUs (at most 4) for 100 sources or more, else 1 (one process)."""
    if asked is not None:
        return max(1, asked)
    if len(config.enabled()) < PROCESSES_FROM_SOURCES:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


# Fetching threads: at least this many, else one per this many sources, at most the cap.
WORKERS_AT_LEAST = 64
SOURCES_PER_WORKER = 4
WORKERS_AT_MOST = 256


def default_workers(config: SourcesConfig, asked: int | None = None) -> int:
    """``asked``, or 64 fetching threads, or one per four sources when that is
    more (at most 256). A run answers at best one request per thread per
    server round trip: on an all-304 day with 1,000 sources on hosts that take
    200 ms, 64 threads need at least 16 round trips (3.2 s), 250 threads four.
    Each host still gets at most its ``max_concurrency``."""
    if asked is not None:
        return max(1, asked)
    wanted = len(config.enabled()) // SOURCES_PER_WORKER
    return max(WORKERS_AT_LEAST, min(wanted, WORKERS_AT_MOST))


def previous_day(day: date) -> date:
    return day - timedelta(days=1)


# Steps after the load, in the order the DAG runs them. Each is
# ``step(settings, config, run_date, engine=...)``; ``engage run`` calls
# them in this order and the DAG has one task per step.
AFTER_LOAD: list[tuple[str, str]] = [
    ("classify", "transforms.classify:classify_day"),
    ("check_quality", "transforms.quality:quality_step"),
    ("build_facts", "transforms.facts:build_facts_day"),
    ("apply_retention", "engage.privacy:retention_step"),
    ("report", "engage.reports.daily:report_step"),
]


def after_load_steps() -> list[tuple[str, Callable[..., Any]]]:
    from importlib import import_module

    steps = []
    for name, target in AFTER_LOAD:
        module, func_name = target.split(":")
        steps.append((name, getattr(import_module(module), func_name)))
    return steps


def run_day(
    settings: Settings, config: SourcesConfig, run_date: date, *, max_workers: int = 8, processes: int = 1
) -> list[SourceSummary]:
    """The whole daily pipeline in-process: collect, load, later steps, summary."""
    engine = open_warehouse(settings)
    collect_all(settings, config, run_date, engine=engine, max_workers=max_workers, processes=processes)
    load_day(settings, config, run_date, engine=engine)
    for _name, step in after_load_steps():
        step(settings, config, run_date, engine=engine)
    return summarize_day(settings, config, run_date, engine=engine)
