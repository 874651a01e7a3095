"""Benchmark: the day's reports for 10,000 prospects in 500 accounts.

    .venv/bin/python -m bench.reports [--prospects 10000] [--accounts 500] [--owners 10] [--items 30000]

Generates (once; cached under $ENGAGE_HOME/bench/) a SQLite warehouse with
500 accounts and their 10,000 prospects (one in five a decision maker),
each matched to an author of one of 5 sources, 30,000 items over the last
30 days (replies in threads of ours and of others, with stage predictions
and engagement observations), and builds the facts of those 30 days with
the real fact build. Then times, in the same run:

- the plain baseline: the recent-engagement query written to a plain CSV
  (what "export the rows" costs), and
- ``write_reports``: every page (the report for all owners and one per sales
  owner, 25 accounts in full each, with their charts), the KPI page with its
  charts, alerts, every CSV and the index pages.

Prints both (the median of 3 runs) and their ratio. The target: under 10 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from engage.reports.build import _engagement_rows, day_bounds
from engage.reports.config import ReportConfig, Target
from engage.reports.daily import write_reports
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

DAY = date(2026, 11, 20)
DAYS = 30
STAGES = ("awareness", "consideration", "evaluation", "decision", "adoption", "off_topic")
CHUNK = 10_000


def _insert(engine: Engine, table, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(table), rows[i : i + CHUNK])


def generate(
    engine: Engine, n_prospects: int, n_accounts: int, n_owners: int, n_items: int, seed: int = 7
) -> None:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    first = DAY - timedelta(days=DAYS - 1)
    sources = [
        {
            "name": f"forum-{i}",
            "kind": "discourse",
            "url": f"https://forum{i}.example.com/",
            "is_own": False,
            "created_at": t0,
            "updated_at": t0,
            "consecutive_failures": 0,
        }
        for i in range(5)
    ]
    _insert(engine, source, sources)
    owners = [f"Seller {i:02d}" for i in range(n_owners)]
    _insert(
        engine,
        account,
        [
            {
                "account_id": a + 1,
                "crm_id": f"acc-{a}",
                "name": f'Account {a:03d} <Ltd> & "Co"',
                "domain": f"acc{a}.example",
                "owner": owners[a % n_owners],
                "is_target": a % 3 != 0,
                "updated_at": t0,
            }
            for a in range(n_accounts)
        ],
    )
    _insert(
        engine,
        prospect,
        [
            {
                "prospect_id": p + 1,
                "crm_id": f"p-{p}",
                "account_id": p % n_accounts + 1,
                "full_name": f"Person {p}",
                "email": f"p{p}@acc{p % n_accounts}.example",
                "title": "VP Sales" if p % 5 == 0 else "Engineer",
                "owner": owners[(p % n_accounts) % n_owners],
                "is_decision_maker": p % 5 == 0,
                "updated_at": t0,
            }
            for p in range(n_prospects)
        ],
    )
    # Authors 1..n_prospects are the prospects; the last one is us.
    us = n_prospects + 1
    _insert(
        engine,
        author,
        [
            {
                "author_id": p + 1,
                "source_id": p % 5 + 1,
                "external_id": f"u{p}",
                "display_name": f"Person {p}",
                "is_ours": False,
                "is_decision_maker": p % 5 == 0,
                "first_seen_at": t0,
                "last_seen_at": t0,
            }
            for p in range(n_prospects)
        ]
        + [
            {
                "author_id": us,
                "source_id": 1,
                "external_id": "acme",
                "display_name": "Acme",
                "is_ours": True,
                "is_decision_maker": False,
                "first_seen_at": t0,
                "last_seen_at": t0,
            }
        ],
    )
    _insert(
        engine,
        author_match,
        [
            {
                "author_id": p + 1,
                "prospect_id": p + 1,
                "account_id": p % n_accounts + 1,
                "method": "email",
                "confidence": 0.99,
                "matched_at": t0,
            }
            for p in range(n_prospects)
        ],
    )
    items, predictions, observations = [], [], []
    item_id = 0
    threads = []
    for t in range(300):  # our threads and others', spread over the days
        item_id += 1
        ours = t % 3 == 0
        published = datetime.combine(first, datetime.min.time(), tzinfo=UTC) + timedelta(
            hours=rng.randrange(DAYS * 24)
        )
        src = t % 5 + 1
        items.append(
            {
                "item_id": item_id,
                "source_id": src,
                "external_id": f"t{t}",
                "kind": "post",
                "thread_external_id": f"t{t}",
                "author_id": us if ours else rng.randrange(1, n_prospects + 1),
                "title": f'Thread {t}: <b>pricing</b> & "ROI"',
                "body_text": "x",
                "url": f"https://forum{src - 1}.example.com/t/{t}",
                "published_at": published,
                "first_collected_at": published,
                "last_collected_at": published,
                "collected_date": published.date(),
                "content_hash": f"{item_id:064d}",
                "is_ours": ours,
            }
        )
        threads.append((src, f"t{t}", published))
    for _ in range(n_items):
        item_id += 1
        src, thread, started = rng.choice(threads)
        published = started + timedelta(minutes=rng.randrange(60, 7 * 24 * 60))
        if published.date() > DAY:
            published = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(
                minutes=rng.randrange(1440)
            )
        author_id = rng.randrange(1, n_prospects + 1)
        author_id = author_id - (author_id - 1) % 5 + (src - 1)  # an author of this source
        if author_id > n_prospects:
            author_id -= 5
        ours = rng.random() < 0.05
        items.append(
            {
                "item_id": item_id,
                "source_id": src,
                "external_id": f"i{item_id}",
                "kind": "reply",
                "thread_external_id": thread,
                "parent_external_id": thread,
                "author_id": us if ours else author_id,
                "title": None,
                "body_text": f"Reply {item_id}: how does <script>it</script> compare?",
                "url": f"https://forum{src - 1}.example.com/p/{item_id}",
                "published_at": published,
                "first_collected_at": published,
                "last_collected_at": published,
                "collected_date": published.date(),
                "content_hash": f"{item_id:064d}",
                "is_ours": ours,
            }
        )
        predictions.append(
            {
                "item_id": item_id,
                "label": rng.choice(STAGES),
                "model_label": "x",
                "confidence": 0.9,
                "model_version": "bench",
                "content_hash": f"{item_id:064d}",
                "predicted_at": published,
            }
        )
        if rng.random() < 0.3:
            observations.append(
                {
                    "source_id": src,
                    "subject_type": "item",
                    "subject_external_id": f"i{item_id}",
                    "metric": "likes",
                    "value": rng.randrange(1, 20),
                    "observed_at": published + timedelta(hours=6),
                    "observed_date": min((published + timedelta(hours=6)).date(), DAY),
                }
            )
    _insert(engine, content_item, items)
    _insert(engine, stage_prediction, predictions)
    _insert(engine, engagement_observation, observations)
    for d in range(DAYS):
        build_facts_for_date(engine, first + timedelta(days=d))


def prepare(folder: Path, args: argparse.Namespace) -> Engine:
    path = folder / f"reports-{args.prospects}-{args.accounts}-{args.owners}-{args.items}.db"
    fresh = not path.exists()
    engine = make_engine(f"sqlite:///{path}")
    if fresh:
        migrate(engine)
        started = time.perf_counter()
        generate(engine, args.prospects, args.accounts, args.owners, args.items)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    return engine


def baseline(engine: Engine, out: Path) -> None:
    """The plain export: the window's engagement rows written to one CSV."""
    start, _ = day_bounds(DAY - timedelta(days=6))
    _, end = day_bounds(DAY)
    with engine.connect() as conn:
        rows = _engagement_rows(conn, start, end)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(rows[0]._fields if rows else [])
        writer.writerows(rows)


def median(fn, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return sorted(timings)[len(timings) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prospects", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--items", type=int, default=30_000)
    args = parser.parse_args()
    folder = Path(os.environ.get("ENGAGE_HOME", "var")) / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    engine = prepare(folder, args)
    config = ReportConfig(targets={"our_replies": Target(50), "median_response_minutes": Target(120, "max")})
    out = folder / "reports-out"
    shutil.rmtree(out, ignore_errors=True)
    write_reports(engine, DAY - timedelta(days=1), out, config)  # warm: imports, matplotlib, templates
    plain = median(lambda: baseline(engine, folder / "reports-baseline.csv"))
    results = []
    full = median(lambda: results.append(write_reports(engine, DAY, out, config)))
    result = results[-1]
    size = sum(p.stat().st_size for p in result.folder.iterdir())
    print(
        f"{args.prospects} prospects, {args.accounts} accounts ({result.accounts} engaged in the 7 days), "
        f"{args.owners} owners, {args.items} items in 30 days"
    )
    print(f"plain CSV export of the window's rows: {plain:.2f} s")
    print(
        f"write_reports (all + {args.owners} owner pages, KPIs, alerts, CSV, index): {full:.2f} s "
        f"({len(result.files)} files, {size / 1e6:.1f} MB); ratio {full / plain:.1f}x"
    )


if __name__ == "__main__":
    main()
