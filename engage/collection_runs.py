"""The ``collection_run`` rows of one collect step, and the source state they change.

``CollectionRuns.open`` reads the cursor state (ETag, Last-Modified,
watermark, failures so far) of every source it is given and inserts their
``running`` rows, in one transaction. Each source then ends as one of:

- ``finished`` with records to load: the row gets its status and counts; the
  cursor state waits for ``load_day``, which writes it in the same
  transaction as the records (so the state never runs ahead of the data);
- ``finished`` with nothing to load (a ``304``, an empty page): the cursor
  state is written here and the row is marked loaded at once, so nothing is
  staged and ``load_day`` has nothing to do for that source;
- ``failed``: the row gets the error and the HTTP status, the source its
  failure count, last error and next-attempt hint.

``load_day`` then marks the latest row of each source it loaded
(``mark_loaded``, in the load's transaction) or says why it could not
(``record_load_error``).

With ``flush_every=0`` (one source, as each Airflow task) every end is
written at once. ``collect_all`` passes a flush interval: the ends of many
sources are then written together, at most that many seconds late, as one
``executemany`` per statement -- a thousand sources ending within a second
are a few transactions instead of two thousand, which SQLite would
otherwise run one at a time with every other writer waiting for its lock.
A row whose process dies before its end is written stays ``running``, which
the run summary reports as not finished.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from engage.warehouse.schema import collection_run, source

log = logging.getLogger(__name__)

MAX_ERROR = 4000


@dataclass(frozen=True)
class SourceState:
    """A source's cursor when its collection started, and its run row."""

    source_id: int
    run_id: int
    etag: str | None
    last_modified: str | None
    watermark: str | None
    consecutive_failures: int


def retry_wait(failures_before: int) -> timedelta:
    """The next-attempt hint after a failure: the daily run retries anyway; the
    hint grows with repeated failures (1 h, 2 h, 4 h ... 24 h)."""
    return timedelta(hours=min(24, 2 ** min(failures_before, 5)))


_FINISH_RUN = (
    update(collection_run)
    .where(collection_run.c.run_id == bindparam("b_run_id"))
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_finished_at"),
        loaded_at=bindparam("b_loaded_at"),
        http_status=bindparam("b_http_status"),
        items=bindparam("b_items"),
        observations=bindparam("b_observations"),
        requests=bindparam("b_requests"),
        error=bindparam("b_error"),
    )
)
# A source's new cursor and health after a success, for executemany with
# ``source_succeeded`` rows: here for a source with nothing to load, in
# ``transforms.load`` in the load's transaction. A watermark of None keeps the stored one.
SOURCE_SUCCEEDED = (
    update(source)
    .where(source.c.source_id == bindparam("b_source_id"))
    .values(
        etag=bindparam("b_etag"),
        last_modified=bindparam("b_last_modified"),
        watermark=func.coalesce(bindparam("b_watermark", type_=source.c.watermark.type), source.c.watermark),
        last_success_at=bindparam("b_at", type_=source.c.last_success_at.type),
        last_error=None,
        consecutive_failures=0,
        next_attempt_at=None,
    )
)


def source_succeeded(
    source_id: int, etag: str | None, last_modified: str | None, watermark: str | None, at: datetime
) -> dict[str, Any]:
    """The parameters of ``SOURCE_SUCCEEDED`` for one source."""
    return {
        "b_source_id": source_id,
        "b_etag": etag,
        "b_last_modified": last_modified,
        "b_watermark": watermark,
        "b_at": at,
    }


_SOURCE_FAILED = (
    update(source)
    .where(source.c.source_id == bindparam("b_source_id"))
    .values(
        consecutive_failures=bindparam("b_failures"),
        last_error=bindparam("b_error"),
        next_attempt_at=bindparam("b_next_attempt_at"),
    )
)


class CollectionRuns:
    """Opens and ends the collection runs of one collect step (thread-safe)."""

    def __init__(self, engine: Engine, run_date: date, *, flush_every: float = 0.0) -> None:
        self.engine = engine
        self.run_date = run_date
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last_flush = time.monotonic()
        self._runs: list[dict[str, Any]] = []
        self._succeeded: list[dict[str, Any]] = []
        self._failed: list[dict[str, Any]] = []

    def open(self, source_ids: dict[str, int]) -> dict[str, SourceState]:
        """``running`` rows for these sources (name -> source id), with their state."""
        if not source_ids:
            return {}
        started = datetime.now(UTC)
        ids = list(source_ids.values())
        with self.engine.begin() as conn:
            states = {
                r.source_id: r
                for r in conn.execute(
                    select(
                        source.c.source_id,
                        source.c.etag,
                        source.c.last_modified,
                        source.c.watermark,
                        source.c.consecutive_failures,
                    ).where(source.c.source_id.in_(ids))
                )
            }
            rows = [
                {"source_id": i, "run_date": self.run_date, "started_at": started, "status": "running"}
                for i in ids
            ]
            run_ids = (
                conn.execute(
                    insert(collection_run).returning(collection_run.c.run_id, sort_by_parameter_order=True),
                    rows,
                )
                .scalars()
                .all()
            )
        opened = {}
        for (name, source_id), run_id in zip(source_ids.items(), run_ids, strict=True):
            state = states[source_id]
            opened[name] = SourceState(
                source_id=source_id,
                run_id=run_id,
                etag=state.etag,
                last_modified=state.last_modified,
                watermark=state.watermark,
                consecutive_failures=state.consecutive_failures or 0,
            )
        return opened

    def finished(
        self,
        state: SourceState,
        *,
        status: str,
        http_status: int | None,
        items: int,
        observations: int,
        requests: int,
        warnings: list[str],
        cursor: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        """The source ended without an error. ``cursor`` (ETag, Last-Modified,
        watermark) is given when there was nothing to load: it is stored now."""
        stamp = datetime.now(UTC)
        run = _run_end(
            state, stamp, status, http_status, items, observations, requests, "; ".join(warnings) or None,
            loaded=cursor is not None,
        )  # fmt: skip
        succeeded = None
        if cursor is not None:
            succeeded = source_succeeded(state.source_id, *cursor, stamp)
        self._add(run, succeeded=succeeded)

    def failed(self, state: SourceState, reason: str, http_status: int | None) -> None:
        stamp = datetime.now(UTC)
        run = _run_end(state, stamp, "failed", http_status, 0, 0, 0, reason, loaded=False)
        failed = {
            "b_source_id": state.source_id,
            "b_failures": state.consecutive_failures + 1,
            "b_error": reason[:MAX_ERROR],
            "b_next_attempt_at": stamp + retry_wait(state.consecutive_failures),
        }
        self._add(run, failed=failed)

    def _add(
        self,
        run: dict[str, Any],
        *,
        succeeded: dict[str, Any] | None = None,
        failed: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            self._runs.append(run)
            if succeeded is not None:
                self._succeeded.append(succeeded)
            if failed is not None:
                self._failed.append(failed)
            due = time.monotonic() - self._last_flush >= self.flush_every
        if self.flush_every <= 0:
            self.flush()
        # One thread writes at a time; the others go on and their ends wait for the next write.
        elif due and self._flushing.acquire(blocking=False):
            try:
                self._write()
            except Exception as exc:  # noqa: BLE001 - kept for the next write; flush() raises
                log.warning(
                    "collection runs not written yet (%s: %s); retried on the next write",
                    type(exc).__name__,
                    exc,
                )
            finally:
                self._flushing.release()

    def fail_unfinished(self, states: list[SourceState], reason: str) -> dict[int, dict[str, Any]]:
        """End as ``failed`` the rows of ``states`` still ``running``: the process
        collecting them died before their ends were written. The sources'
        cursors and failure counts stay as they were. Returns every row of
        ``states`` as it is now (run id -> status, http_status, items,
        observations, error): the ends written before it died stay."""
        if not states:
            return {}
        run_ids = [s.run_id for s in states]
        ended = ["status", "http_status", "items", "observations", "error"]
        with self.engine.begin() as conn:
            conn.execute(
                update(collection_run)
                .where(collection_run.c.run_id.in_(run_ids), collection_run.c.status == "running")
                .values(status="failed", finished_at=datetime.now(UTC), error=reason[:MAX_ERROR])
            )
            rows = conn.execute(
                select(collection_run.c.run_id, *(collection_run.c[name] for name in ended)).where(
                    collection_run.c.run_id.in_(run_ids)
                )
            )
            return {row[0]: dict(zip(ended, row[1:], strict=True)) for row in rows}

    def flush(self) -> None:
        """Write every end not written yet."""
        with self._flushing:
            self._write()

    def _write(self) -> None:
        with self._lock:
            runs, succeeded, failed = self._runs, self._succeeded, self._failed
            self._runs, self._succeeded, self._failed = [], [], []
            self._last_flush = time.monotonic()
        if not runs:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(_FINISH_RUN, runs)
                if succeeded:
                    conn.execute(SOURCE_SUCCEEDED, succeeded)
                if failed:
                    conn.execute(_SOURCE_FAILED, failed)
        except Exception:
            with self._lock:  # kept for the next write; flush() raises if it still fails
                self._runs[:0], self._succeeded[:0], self._failed[:0] = runs, succeeded, failed
            raise


def _run_end(
    state: SourceState,
    stamp: datetime,
    status: str,
    http_status: int | None,
    items: int,
    observations: int,
    requests: int,
    error: str | None,
    *,
    loaded: bool,
) -> dict[str, Any]:
    """The parameters of ``_FINISH_RUN`` for one source."""
    return {
        "b_run_id": state.run_id,
        "b_status": status,
        "b_finished_at": stamp,
        "b_loaded_at": stamp if loaded else None,
        "b_http_status": http_status,
        "b_items": items,
        "b_observations": observations,
        "b_requests": requests,
        "b_error": error[:MAX_ERROR] if error else None,
    }


def latest_runs(source_ids: list[int], run_date: date) -> Any:
    """The run id of each source's latest attempt of ``run_date`` (a subquery)."""
    return (
        select(func.max(collection_run.c.run_id))
        .where(collection_run.c.source_id.in_(source_ids), collection_run.c.run_date == run_date)
        .group_by(collection_run.c.source_id)
    )


def mark_loaded(conn: Connection, source_ids: list[int], run_date: date, at: datetime) -> None:
    """The sources' latest rows of the day are loaded (in the load's transaction)."""
    conn.execute(
        update(collection_run)
        .where(collection_run.c.run_id.in_(latest_runs(source_ids, run_date)))
        .values(loaded_at=at, load_error=None)
    )


def record_load_error(engine: Engine, source_id: int, run_date: date, reason: str) -> None:
    """The source's latest row of the day says why its records could not be loaded."""
    with engine.begin() as conn:
        conn.execute(
            update(collection_run)
            .where(collection_run.c.run_id.in_(latest_runs([source_id], run_date)))
            .values(load_error=reason[:MAX_ERROR])
        )
