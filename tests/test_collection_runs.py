"""Run rows written in batches."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, insert, select

from engage.collection_runs import CollectionRuns
from engage.warehouse.schema import collection_run, source

DAY = date(2026, 11, 20)


def _sources(engine: Engine, names: list[str]) -> dict[str, int]:
    stamp = datetime.now(UTC)
    with engine.begin() as conn:
        for name in names:
            conn.execute(
                insert(source).values(
                    name=name,
                    kind="rss",
                    url=f"http://e.com/{name}",
                    is_own=False,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        return dict(conn.execute(select(source.c.name, source.c.source_id)).all())


def _rows(engine: Engine) -> dict[int, tuple[str, int | None]]:
    with engine.connect() as conn:
        return {r.source_id: (r.status, r.http_status) for r in conn.execute(select(collection_run))}


def test_batched_ends_are_written_together_and_a_failure_counts(engine: Engine) -> None:
    ids = _sources(engine, ["a", "b", "c"])
    runs = CollectionRuns(engine, DAY, flush_every=3600)
    states = runs.open(ids)
    assert set(_rows(engine).values()) == {("running", None)}
    runs.finished(
        states["a"], status="success", http_status=200, items=3, observations=1, requests=1, warnings=[]
    )
    runs.finished(
        states["b"],
        status="not_modified",
        http_status=304,
        items=0,
        observations=0,
        requests=1,
        warnings=[],
        cursor=('"e2"', None, None),
    )
    runs.failed(states["c"], "not found (404)", 404)
    # Not written yet: a process killed now leaves them "running" (reported as not finished).
    assert set(_rows(engine).values()) == {("running", None)}
    runs.flush()
    assert _rows(engine) == {
        ids["a"]: ("success", 200),
        ids["b"]: ("not_modified", 304),
        ids["c"]: ("failed", 404),
    }
    with engine.connect() as conn:
        state = {r.name: r for r in conn.execute(select(source))}
    assert state["b"].etag == '"e2"' and state["a"].etag is None  # a's cursor waits for its load
    assert state["c"].consecutive_failures == 1 and state["c"].last_error == "not found (404)"
    assert state["c"].next_attempt_at is not None
