"""Run rows written in batches, and parsing on worker processes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, insert, select

from collectors.feeds import parse_feed
from collectors.parsing import ParserPool
from engage.collection_runs import CollectionRuns
from engage.errors import ParseError
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


def test_parser_pool_starts_on_first_use_and_parses_in_another_process() -> None:
    body = b"<rss version='2.0'><channel><item><guid>g</guid><title>T</title></item></channel></rss>"
    with ParserPool(2) as pool:
        assert not pool.started
        result = pool(parse_feed, body, {}, url="http://e.com/f")
        assert pool.started
        assert [i.external_id for i in result.items] == ["g"]
        assert pool(os.getpid) != os.getpid()
        with pytest.raises(ParseError, match="http://e.com/broken"):
            pool(parse_feed, b"not xml at all \x00", {}, url="http://e.com/broken")


def test_a_dead_parser_process_is_replaced() -> None:
    with ParserPool(1) as pool:
        first = pool(os.getpid)
        with pytest.raises(Exception, match="terminated abruptly"):
            pool(os._exit, 3)  # dies on the first try and on the retry
        assert pool(os.getpid) not in (first, os.getpid())  # a new worker answers
