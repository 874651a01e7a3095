"""Benchmark: the daily fact build on 2 years of history and 1,000,000 items.

    .venv/bin/python -m bench.facts [--items 1000000] [--backend sqlite|postgresql|both]
                                    [--full-days 730]

Generates (once; cached under var/bench/) a warehouse with two years of
history: 20 sources, 50,000 authors, 500 accounts with 5,000 prospects,
1,000,000 content items in threads with stage predictions, one comment
observation per item and a daily follower snapshot per source. Then times:

- the build of one new day (the last day), with its peak Python memory
  (tracemalloc), and
- the full rebuild of every day of the history (the plain baseline: what a
  "rebuild everything" job costs), or of ``--full-days`` of it, scaled.

Prints both and their ratio. PostgreSQL: 127.0.0.1:5432, database
``engage_bench`` (created when missing), or ENGAGE_BENCH_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, insert, select, text

from engage.warehouse.db import make_engine, migrate
from engage.warehouse.schema import (
    account,
    author,
    author_match,
    content_item,
    engagement_observation,
    prospect,
    source,
    stage_prediction,
)
from transforms.facts import build_facts_for_date

FIRST = date(2024, 11, 21)
DAYS = 730
LAST = FIRST + timedelta(days=DAYS - 1)
STAGES = ("awareness", "consideration", "evaluation", "decision", "adoption", "off_topic")
CHUNK = 20_000


def _insert(engine: Engine, table, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[i : i + CHUNK])


def generate(engine: Engine, n_items: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    _insert(
        engine,
        source,
        [
            {
                "name": f"src-{s}",
                "kind": "discourse",
                "url": f"https://forum{s}.example/",
                "is_own": False,
                "created_at": now,
                "updated_at": now,
                "consecutive_failures": 0,
            }
            for s in range(20)
        ],
    )
    _insert(
        engine,
        account,
        [
            {
                "crm_id": f"a{a}",
                "name": f"Account {a}",
                "domain": f"acct{a}.example",
                "owner": f"owner{a % 12}",
                "is_target": True,
                "updated_at": now,
            }
            for a in range(500)
        ],
    )
    with engine.connect() as conn:
        source_ids = [r[0] for r in conn.execute(select(source.c.source_id).order_by(source.c.source_id))]
        account_ids = [
            r[0] for r in conn.execute(select(account.c.account_id).order_by(account.c.account_id))
        ]
    _insert(
        engine,
        prospect,
        [
            {
                "crm_id": f"p{p}",
                "account_id": account_ids[p % 500],
                "full_name": f"Person {p}",
                "email": f"p{p}@acct{p % 500}.example",
                "title": "VP Sales" if p % 7 == 0 else "Analyst",
                "is_decision_maker": p % 7 == 0,
                "updated_at": now,
            }
            for p in range(5000)
        ],
    )
    authors = []
    for a in range(50_000):
        authors.append(
            {
                "source_id": source_ids[a % 20],
                "external_id": f"u{a}",
                "display_name": f"User {a}",
                "is_ours": a % 50 == 0,
                "is_decision_maker": False,
                "first_seen_at": now,
                "last_seen_at": now,
            }
        )
    _insert(engine, author, authors)
    with engine.connect() as conn:
        author_ids = [r[0] for r in conn.execute(select(author.c.author_id).order_by(author.c.author_id))]
        prospect_ids = [
            r[0] for r in conn.execute(select(prospect.c.prospect_id).order_by(prospect.c.prospect_id))
        ]
    _insert(
        engine,
        author_match,
        [
            {
                "author_id": author_ids[i * 10 + 1],
                "prospect_id": prospect_ids[i],
                "account_id": account_ids[i % 500],
                "method": "email",
                "confidence": 0.99,
                "matched_at": now,
            }
            for i in range(5000)
        ],
    )
    per_day = n_items // DAYS + 1
    item_no = 0
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        items, observations = [], []
        threads: list[tuple[int, str]] = []
        for _ in range(per_day):
            if item_no >= n_items:
                break
            sid = source_ids[rng.randrange(20)]
            is_post = not threads or rng.random() < 0.3
            ext = f"i{item_no}"
            thread = ext if is_post else rng.choice(threads)[1]
            author_index = rng.randrange(50_000)
            when = base + timedelta(seconds=rng.randrange(86_400))
            items.append(
                {
                    "source_id": sid,
                    "external_id": ext,
                    "kind": "post" if is_post else "reply",
                    "thread_external_id": thread,
                    "parent_external_id": None if is_post else thread,
                    "author_id": author_ids[author_index],
                    "body_text": "x",
                    "published_at": when,
                    "first_collected_at": when,
                    "last_collected_at": when,
                    "collected_date": day,
                    "content_hash": "h",
                    "is_ours": author_index % 50 == 0,
                }
            )
            if is_post:
                threads.append((sid, thread))
            observations.append(
                {
                    "source_id": sid,
                    "subject_type": "item",
                    "subject_external_id": ext,
                    "metric": "comments",
                    "value": rng.randrange(20),
                    "observed_at": when + timedelta(hours=20),
                    "observed_date": day + timedelta(days=1),
                }
            )
            item_no += 1
        for s in source_ids:
            observations.append(
                {
                    "source_id": s,
                    "subject_type": "account",
                    "subject_external_id": "us",
                    "metric": "followers",
                    "value": 1000 + d + rng.randrange(5),
                    "observed_at": base,
                    "observed_date": day,
                }
            )
        _insert(engine, content_item, items)
        _insert(engine, engagement_observation, observations)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into stage_prediction (item_id, label, model_label, confidence, model_version, content_hash, predicted_at) "
                "select item_id, case item_id % 6 when 0 then 'awareness' when 1 then 'consideration' when 2 then 'evaluation' "
                "when 3 then 'decision' when 4 then 'adoption' else 'off_topic' end, 'awareness', 0.9, 'bench', 'h', first_collected_at "
                "from content_item"
            )
        )


def prepare(url: str, n_items: int) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
    if have < n_items:
        started = time.perf_counter()
        print(f"  generating {n_items:,} items (once) ...", flush=True)
        generate(engine, n_items)
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(stage_prediction)).scalar_one()
    print(f"  warehouse: {n:,} classified items over {DAYS} days")
    return engine


def run(label: str, engine: Engine, full_days: int) -> dict[str, float]:
    build_facts_for_date(engine, LAST - timedelta(days=1))  # warm caches
    timings = []
    for _ in range(3):  # the new day, built (and rebuilt) three times: the median
        started = time.perf_counter()
        build_facts_for_date(engine, LAST)
        timings.append(time.perf_counter() - started)
    one_day = sorted(timings)[1]
    tracemalloc.start()  # memory in its own run: tracing slows Python down
    build_facts_for_date(engine, LAST)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    for d in range(full_days):
        build_facts_for_date(engine, FIRST + timedelta(days=d))
    measured = time.perf_counter() - started
    full = measured * DAYS / full_days
    print(
        f"{label}: one new day {one_day:.3f} s (peak Python memory {peak / 1e6:.1f} MB); "
        f"full rebuild of {DAYS} days {full:.1f} s{' (extrapolated from ' + str(full_days) + ' days)' if full_days < DAYS else ''}; "
        f"ratio {full / one_day:.0f}x"
    )
    return {"one_day": one_day, "full": full, "peak_mb": peak / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--full-days", type=int, default=DAYS, help="days rebuilt for the baseline (scaled to 730)"
    )
    args = parser.parse_args()
    folder = Path(os.environ.get("ENGAGE_HOME", "var")) / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    if args.backend in ("sqlite", "both"):
        print("SQLite")
        run("sqlite", prepare(f"sqlite:///{folder / f'facts-{args.items}.db'}", args.items), args.full_days)
    if args.backend in ("postgresql", "both"):
        url = os.environ.get(
            "ENGAGE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/engage_bench"
        )
        admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = url.rsplit("/", 1)[1]
        with admin.connect() as conn:
            if not conn.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first():
                conn.execute(text(f'create database "{name}"'))
        print("PostgreSQL")
        run("postgresql", prepare(url, args.items), args.full_days)


if __name__ == "__main__":
    main()
