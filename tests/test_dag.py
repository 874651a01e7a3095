"""The daily DAG: integrity checks and a real Airflow run end to end."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from engage.demo import airflow_env
from engage.warehouse.db import make_engine
from engage.warehouse.schema import collection_run, content_item, source

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_dag_files_import_without_touching_network_or_database(tmp_path: Path) -> None:
    """Parse every DAG file with sockets and database engines forbidden."""
    code = textwrap.dedent(
        f"""
        import socket, sqlalchemy, importlib.util, pathlib, sys, time
        import airflow.sdk  # Airflow's own start-up may open its metadata engine; ours may not
        def forbidden(*a, **k):
            raise RuntimeError("I/O at parse time")
        socket.socket.connect = forbidden
        socket.create_connection = forbidden
        sqlalchemy.create_engine = forbidden
        started = time.monotonic()
        for path in sorted(pathlib.Path({str(DAGS)!r}).glob("*.py")):
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        heavy = [m for m in ("sklearn", "feedparser", "requests", "engage.pipeline", "bs4") if m in sys.modules]
        print("HEAVY", heavy)
        print("SECONDS", round(time.monotonic() - started, 2))
        """
    )
    env = {
        **os.environ,
        "ENGAGE_SOURCES": str(tmp_path / "missing.yml"),
        "ENGAGE_WAREHOUSE_URL": "postgresql://nobody@192.0.2.1/none",
        "AIRFLOW_HOME": str(tmp_path / "af"),
    }
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout


def test_dagbag_has_no_import_errors_and_the_intended_graph(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r}, )
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags["engagement_daily"]
        print("TASKS", sorted(dag.task_ids))
        for t in sorted(dag.tasks, key=lambda t: t.task_id):
            print("EDGE", t.task_id, sorted(t.downstream_task_ids))
        print("MAXRUNS", dag.max_active_runs, "CATCHUP", dag.catchup)
        print("RETRIES", dag.get_task("collect_feeds").retries)
        for t in dag.tasks:
            print("POOL", t.task_id, t.pool)
            print("TIMEOUT", t.task_id, t.execution_timeout)
            print("CALLBACK", t.task_id, bool(t.on_failure_callback))
        print("TRIGGER", str(dag.get_task("load").trigger_rule.value), str(dag.get_task("summary").trigger_rule.value))
        """
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "af"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    from engage.pools import POOLS, read_pools_file, task_suffix

    # One mapped collect task per platform pool, each in its pool; the pools
    # file that `airflow pools import` reads defines every one of them.
    assert set(POOLS) == set(read_pools_file())
    for pool in POOLS:
        name = task_suffix(pool)
        assert f"EDGE list_{name} ['collect_{name}']" in out
        assert f"EDGE collect_{name} ['load']" in out
        assert f"POOL collect_{name} {pool}" in out
    assert "TIMEOUT collect_feeds 0:30:00" in out
    assert "TIMEOUT load 1:00:00" in out
    assert "CALLBACK load True" in out and "CALLBACK collect_reddit True" in out
    # The steps after the load, in the order `engage run` runs them.
    from engage.pipeline import AFTER_LOAD

    steps = ["load", *(name for name, _ in AFTER_LOAD), "summary"]
    for before, after in zip(steps, steps[1:], strict=False):
        assert f"EDGE {before} ['{after}']" in out, (before, after)
    assert "MAXRUNS 1 CATCHUP False" in out
    assert "TRIGGER all_done all_done" in out


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated Airflow metadata database, copied for each test."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = airflow_env(home, {})
    (home / "airflow").mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return home


@pytest.mark.airflow
def test_airflow_dags_test_runs_the_day_and_isolates_a_failing_source(
    airflow_home: Path, tmp_path: Path, httpserver: HTTPServer
) -> None:
    feed = (ROOT / "engage/demo_data/site/acme-blog.xml").read_bytes()
    httpserver.expect_request("/good.xml").respond_with_data(feed, content_type="application/rss+xml")
    httpserver.expect_request("/bad.xml").respond_with_data("<html>gone</html>", status=410)
    httpserver.expect_request("/alert", method="POST").respond_with_data("ok")
    sources = tmp_path / "sources.yml"
    sources.write_text(
        f"""sources:
  - {{name: good, kind: rss, url: "{httpserver.url_for("/good.xml")}", own: true}}
  - {{name: bad, kind: rss, url: "{httpserver.url_for("/bad.xml")}"}}
"""
    )
    home = tmp_path / "home"
    shutil.copytree(airflow_home, home)
    warehouse = f"sqlite:///{home / 'warehouse.db'}"
    from engage.warehouse.db import migrate

    migrate(make_engine(warehouse))
    extra = {
        "ENGAGE_HOME": str(home),
        "ENGAGE_SOURCES": str(sources),
        "ENGAGE_WAREHOUSE_URL": warehouse,
        "ENGAGE_TASK_RETRIES": "0",
        "ENGAGE_ALERT_WEBHOOK_URL": httpserver.url_for("/alert"),
    }
    env = airflow_env(home, extra)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "dags", "test", "engagement_daily", "2026-11-21"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert "sources failed: bad" in log, log[-4000:]

    engine = make_engine(warehouse)
    with engine.connect() as conn:
        runs = dict(
            conn.execute(
                select(source.c.name, collection_run.c.status)
                .join(collection_run)
                .where(collection_run.c.run_date == date(2026, 11, 20))
            ).all()
        )
        items = conn.execute(select(content_item.c.external_id)).scalars().all()
    assert runs == {"good": "success", "bad": "failed"}
    assert len(items) == 5

    # In Airflow's own records: only the failing source's task instance failed.
    meta = sqlite3.connect(home / "airflow" / "airflow.db")
    states = dict(
        meta.execute(
            "select coalesce(rendered_map_index, task_id), state from task_instance where dag_id='engagement_daily'"
        ).fetchall()
    )
    meta.close()
    assert states.get("good") == "success", states
    assert states.get("bad") == "failed", states
    assert states.get("load") == "success", states
    assert states.get("summary") == "failed", states

    # Each failed task sent an alert to the webhook (the failure callback).
    alerts = [req.get_json() for req, _ in httpserver.log if req.path == "/alert"]
    subjects = sorted(a["subject"] for a in alerts)
    assert any("collect_feeds[bad] failed for 2026-11-20" in s for s in subjects), subjects
    assert any("summary failed for 2026-11-20" in s for s in subjects), subjects
    assert all("good" not in s for s in subjects)
