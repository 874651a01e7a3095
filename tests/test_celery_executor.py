"""The compose deployment's Airflow, run for real without Docker.

There is no Docker engine on the build machine, so this test starts what
``docker-compose.yml`` starts, as local processes with the same settings:
metadata in PostgreSQL, ``CeleryExecutor`` with a Redis broker and a
``db+postgresql`` result backend, the API server (which also serves the
Execution API the workers report to), the scheduler, the DAG processor and
one Celery worker. It runs the ``airflow-init`` steps (``airflow db
migrate``, ``airflow pools import config/airflow_pools.json``, ``engage
init`` on a PostgreSQL warehouse given as ``AIRFLOW_CONN_ENGAGE_WAREHOUSE``),
triggers ``engagement_daily`` on the demo's loopback sources and checks that
the run succeeded, that its tasks went through the Celery worker, and that
the warehouse got the rows.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engage.config import load_sources
from engage.demo import start_server, write_demo_sources
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ENGAGE = str(Path(sys.executable).with_name("engage"))
DEMO_DAY = "2026-11-20"  # the day the demo's sample sources cover
RUN_TIMEOUT = 150.0
# The long-running Airflow services of docker-compose.yml (flower is optional).
SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.postgres]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_db() -> Iterator[str]:
    """An empty Redis database on 127.0.0.1:6379 (skips when Redis is unreachable)."""
    import redis

    try:
        probe = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
        probe.ping()
        count = int(probe.config_get("databases").get("databases", 16))
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis not reachable on 127.0.0.1:6379: {exc}")
    candidates = list(range(1, count))
    random.shuffle(candidates)
    for number in candidates:
        client = redis.Redis(host="127.0.0.1", port=6379, db=number)
        if client.dbsize() == 0:
            yield f"redis://127.0.0.1:6379/{number}"
            client.flushdb()
            return
    pytest.skip("no empty Redis database for the Celery broker")


@pytest.fixture
def databases(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: Airflow's metadata and the warehouse."""
    metadata = pg_server.create_database()
    warehouse = pg_server.create_database()
    yield metadata, warehouse
    pg_server.drop_database(metadata)
    pg_server.drop_database(warehouse)


def _service(name: str) -> dict[str, object]:
    """A service of docker-compose.yml, its ${...} left as they are except the worker's concurrency."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    service = dict(services[name])
    service["command"] = re.sub(r"\$\{[^}]*:-([^}]*)\}", r"\1", service["command"])
    return service


def _replace_all(text_: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text_ = text_.replace(old, new)
    return text_


def _compose_environment(secrets_: dict[str, str]) -> dict[str, str]:
    """x-airflow-common's environment, interpolated from .env.example (plus the given secrets)."""
    values = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()} | secrets_
    common = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["x-airflow-common"]

    def interpolate(match: re.Match[str]) -> str:
        name, default = match[1], match[3] if match[2] == ":-" else ""
        return values.get(name) or default

    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}")
    return {k: pattern.sub(interpolate, str(v)) for k, v in common["environment"].items()}


def _celery_env(
    tmp_path: Path,
    metadata_url: str,
    warehouse_url: str,
    broker: str,
    queue: str,
    api_port: int,
    sources: Path,
) -> dict[str, str]:
    """The compose file's Airflow environment, with its hosts and paths pointed at local ones."""
    compose = _compose_environment(
        {"AIRFLOW_DB_PASSWORD": "unused", "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32)}
    )
    meta = make_url(metadata_url)
    # The same drivers as the compose file, on the test server.
    compose_meta = make_url(compose["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert compose_meta.host == "postgres"
    meta_url = meta.set(drivername=compose_meta.drivername).render_as_string(hide_password=False)
    backend_scheme = compose["AIRFLOW__CELERY__RESULT_BACKEND"].split("://", 1)[0]
    assert compose["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    warehouse = make_url(warehouse_url).render_as_string(hide_password=False).split("://", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ENGAGE_"))}
    env.update({k: v for k, v in compose.items() if v != ""})
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta_url,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{backend_scheme}://{meta_url.split('://', 1)[1]}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": compose[
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
            ].replace("http://airflow-apiserver:8080", f"http://127.0.0.1:{api_port}"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(_free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "airflow" / "passwords.json"),
            "AIRFLOW_CONN_ENGAGE_WAREHOUSE": f"postgresql://{warehouse}",
            "ENGAGE_HOME": str(tmp_path / "engage"),
            "ENGAGE_SOURCES": str(sources),
            # Test-only: no scheduled runs besides the one this test starts, the
            # tasks on a queue of their own, fast retries, free ports.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "ENGAGE_TASK_RETRIES": "0",
            "ENGAGE_RETRY_DELAY_SECONDS": "2",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            # What a container's HOSTNAME is: the name Airflow and Celery record.
            "HOSTNAME": socket.gethostname(),
        }
    )
    return env


def _run(args: list[str], env: dict[str, str], log: Path, timeout: float = 180) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
        pytest.fail(f"{' '.join(args[:3])} exited {proc.returncode}:\n{tail}")


def _tails(logs: Path) -> str:
    parts = []
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        parts.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(parts)


def test_engagement_daily_runs_on_celery_workers_against_postgresql(
    tmp_path: Path, databases: tuple[str, str], redis_db: str
) -> None:
    metadata_url, warehouse_url = databases
    queue = "engage_test_" + secrets.token_hex(4)
    api_port = _free_port()
    server = start_server()
    sources = write_demo_sources(tmp_path / "sources.yml", f"http://127.0.0.1:{server.server_address[1]}")
    env = _celery_env(tmp_path, metadata_url, warehouse_url, redis_db, queue, api_port, sources)
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "airflow").mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        # The airflow-init service.
        _run([AIRFLOW, "db", "migrate"], env, logs / "init.log")
        _run(
            [AIRFLOW, "pools", "import", str(ROOT / "config" / "airflow_pools.json")], env, logs / "init.log"
        )
        _run([ENGAGE, "init"], env, logs / "init.log")
        init_seconds = time.monotonic() - started

        # The long-running services, with the compose file's commands.
        # Each service's compose command (the image's entrypoint runs `airflow <command>`),
        # plus what a local process needs: a loopback port, fewer processes, the test queue.
        local_args = {
            "airflow-apiserver": ["--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"],
            "airflow-worker": ["--queues", queue, "--concurrency", "4"],
        }
        commands = {
            name: [AIRFLOW, *_service(name)["command"].split(), *local_args.get(name, [])]
            for name in SERVICES
        }
        for name, args in commands.items():
            out = (logs / f"{name.removeprefix('airflow-')}.log").open("w", encoding="utf-8")
            procs.append(
                subprocess.Popen(
                    args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
                )
            )

        meta = create_engine(make_url(metadata_url).set(drivername="postgresql+psycopg"))
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            with meta.connect() as conn:
                parsed = conn.execute(text("select 1 from dag where dag_id = 'engagement_daily'")).first()
            if parsed:
                break
            if time.monotonic() > deadline:
                pytest.fail("the DAG processor never parsed engagement_daily\n" + _tails(logs))
            time.sleep(1)

        _run([AIRFLOW, "dags", "unpause", "engagement_daily"], env, logs / "cli.log")
        # The backfill command of docs/production.md: one run for the demo's day.
        _run(
            [
                AIRFLOW,
                "backfill",
                "create",
                "--dag-id",
                "engagement_daily",
                "--from-date",
                DEMO_DAY,
                "--to-date",
                DEMO_DAY,
            ],
            env,
            logs / "cli.log",
        )
        state = run_id = None
        while time.monotonic() < deadline:
            with meta.connect() as conn:
                row = conn.execute(
                    text(
                        "select run_id, state, data_interval_start from dag_run "
                        "where dag_id = 'engagement_daily' and run_type = 'backfill'"
                    )
                ).first()
            if row is not None:
                run_id, state = row.run_id, row.state
                assert row.data_interval_start.date().isoformat() == DEMO_DAY
            if state in ("success", "failed"):
                break
            time.sleep(2)
        run_seconds = time.monotonic() - started
        if state != "success":
            pytest.fail(f"the run ended {state!r} after {run_seconds:.0f} s\n" + _tails(logs))

        with meta.connect() as conn:
            tis = conn.execute(
                text(
                    "select task_id, map_index, state, queue, hostname from task_instance "
                    "where dag_id = 'engagement_daily' and run_id = :run_id"
                ),
                {"run_id": run_id},
            ).all()
            pools = dict(conn.execute(text("select pool, slots from slot_pool")).all())
        ran = [t for t in tis if t.state == "success"]
        # The worker stores each Celery task's result after the task has reported its
        # state to the API server, so the last ones may lag the run's end a little.
        settle = time.monotonic() + 30
        while True:
            with meta.connect() as conn:
                celery_done = conn.execute(
                    text("select count(*) from celery_taskmeta where status = 'SUCCESS'")
                ).scalar()
            worker_done = (
                (logs / "worker.log").read_text(encoding="utf-8", errors="replace").count(" succeeded in ")
            )
            if (celery_done >= len(ran) and worker_done >= len(ran)) or time.monotonic() > settle:
                break
            time.sleep(1)
        meta.dispose()

        demo_sources = {s.name for s in load_sources(sources).enabled()}
        collects = [t for t in tis if t.task_id.startswith("collect") and t.state == "success"]
        assert len(collects) == len(demo_sources) >= 7
        assert not {t.state for t in tis} & {"failed", "upstream_failed", None}
        # Every task instance that ran went to the worker's queue, and the worker
        # reported each one to Celery's result backend (skipped ones never run).
        assert {t.queue for t in ran} == {queue}
        assert celery_done >= len(ran)
        assert worker_done == len(ran)
        assert all(t.hostname for t in ran)
        expected_pools = json.loads((ROOT / "config" / "airflow_pools.json").read_text())
        assert {name: pools[name] for name in expected_pools} == {
            n: p["slots"] for n, p in expected_pools.items()
        }

        wh = create_engine(make_url(warehouse_url).set(drivername="postgresql+psycopg"))
        with wh.connect() as conn:
            items = conn.execute(text("select count(*) from content_item")).scalar()
            runs = conn.execute(
                text("select s.name, r.status from collection_run r join source s using (source_id)")
            ).all()
        wh.dispose()
        assert items > 0
        assert {r.name for r in runs} == demo_sources
        # The compose file's healthchecks, run against the live services.
        check_ports = {
            "localhost:8080": f"127.0.0.1:{api_port}",
            "localhost:8974": "127.0.0.1:" + env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"],
        }
        for name in SERVICES:
            kind, *test = _service(name)["healthcheck"]["test"]
            args = ["bash", "-c", test[0].replace("$$", "$")] if kind == "CMD-SHELL" else test
            args = [_replace_all(a, check_ports) for a in args]
            check = subprocess.run(args, env=env, capture_output=True, text=True, timeout=90, cwd=ROOT)
            assert check.returncode == 0, (
                f"{name} healthcheck {args}: {check.stdout[-500:]} {check.stderr[-1500:]}"
            )
        print(
            f"init {init_seconds:.1f} s, run done after {run_seconds:.1f} s; {len(tis)} task instances, {items} items"
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        server.shutdown()
        keep = ROOT / "test-artifacts" / "celery-executor"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(logs, keep, dirs_exist_ok=True)
