"""`engage demo` end to end: the real DAG through `airflow dags test`, every
source kind in one run, and a second run that leaves the same rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from collectors import KINDS
from engage.warehouse.db import make_engine
from engage.warehouse.schema import (
    author,
    collection_run,
    content_item,
    engagement_observation,
    fct_source_daily,
    source,
    stage_prediction,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO_SOURCES = ROOT / "engage" / "demo_data" / "sources.demo.yml"


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (
                source,
                author,
                content_item,
                engagement_observation,
                stage_prediction,
                fct_source_daily,
            )
        }
    engine.dispose()
    return counts


def _demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGAGE_", "AIRFLOW"))}
    env["ENGAGE_HOME"] = str(home)
    return subprocess.run(
        [str(Path(sys.executable).with_name("engage")), "demo", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_demo_sources_cover_every_kind() -> None:
    kinds = {s["kind"] for s in yaml.safe_load(DEMO_SOURCES.read_text())["sources"]}
    assert kinds == set(KINDS)


@pytest.mark.airflow
@pytest.mark.slow
def test_make_demo_collects_every_kind_through_airflow_and_a_rerun_keeps_the_same_rows(
    tmp_path: Path,
) -> None:
    home = tmp_path / "var"
    first = _demo(home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    url = f"sqlite:///{home / 'warehouse.db'}"
    counts = _counts(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        runs = dict(
            conn.execute(
                select(source.c.kind, func.count())
                .join(collection_run)
                .where(collection_run.c.status == "success")
                .group_by(source.c.kind)
            ).all()
        )
        items_per_kind = dict(
            conn.execute(select(source.c.kind, func.count()).join(content_item).group_by(source.c.kind)).all()
        )
    engine.dispose()
    assert set(runs) == set(KINDS)  # every kind collected successfully in the one Airflow run
    assert all(items_per_kind.get(kind, 0) > 0 for kind in KINDS if kind != "csv"), items_per_kind
    assert counts["stage_prediction"] == counts["content_item"] > 40
    # Facts for the run's day and the 13 days before it (the demo builds their history).
    assert counts["fct_source_daily"] == 14 * len(yaml.safe_load(DEMO_SOURCES.read_text())["sources"])
    prospects_csv = (home / "reports" / "2026-11-20" / "prospects.csv").read_text().splitlines()
    assert len(prospects_csv) == 1 + 5  # the sample CRM's five accounts, all engaged
    assert "Northwind Traders" in prospects_csv[1] and ",new," in prospects_csv[1]
    assert "warehouse: sqlite:///" in first.stdout and "try it:" in first.stdout
    assert (home / "reports" / "index.html").exists()

    # `make demo` again: the sample server answers 304 where it can, the day is replaced, same rows.
    second = _demo(home)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = _counts(url)
    assert again == counts
