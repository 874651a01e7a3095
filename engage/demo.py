"""``make demo``: a full daily run on bundled sample sources, on loopback.

A small threaded HTTP server serves ``engage/demo_data/site`` on
127.0.0.1 with ETag and Last-Modified (so a second run gets 304s, as a real
server would). The demo writes a sources file pointing at it, creates the
warehouse, and runs the real DAG with ``airflow dags test`` on SQLite
metadata under ``$ENGAGE_HOME/airflow``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date, timedelta
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from engage.errors import EngageError

DEMO_DATA = Path(__file__).parent / "demo_data"
SITE = DEMO_DATA / "site"
DEMO_CRM = DEMO_DATA / "crm.demo.csv"
SOURCES_TEMPLATE = DEMO_DATA / "sources.demo.yml"
# A fixed modification time: the sample files never change.
LAST_MODIFIED = formatdate(1_763_600_000, usegmt=True)
CONTENT_TYPES = {
    ".xml": "application/rss+xml",
    ".rdf": "application/rdf+xml",
    ".atom": "application/atom+xml",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def _resolve(path: str) -> Path | None:
    """Map a URL path (and query, for API-like sources) to a file in SITE."""
    parts = urlsplit(path)
    name = unquote(parts.path).lstrip("/")
    candidates = []
    if parts.query:
        candidates.append(f"{name}?{unquote(parts.query)}")
    candidates.append(name)
    for candidate in candidates:
        file = (SITE / candidate.replace("?", "__q__")).resolve()
        if file.is_file() and SITE.resolve() in file.parents:
            return file
    if parts.path == "/robots.txt":
        return None
    return None


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "engage-demo/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if urlsplit(self.path).path == "/robots.txt":
            body = b"User-agent: *\nAllow: /\n"
            self._send(200, body, "text/plain; charset=utf-8")
            return
        file = _resolve(self.path)
        if file is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", None, etag=etag)
            return
        since = self.headers.get("If-Modified-Since")
        if since and not self.headers.get("If-None-Match"):
            try:
                if parsedate_to_datetime(since) >= parsedate_to_datetime(LAST_MODIFIED):
                    self._send(304, b"", None, etag=etag)
                    return
            except (TypeError, ValueError):
                pass
        self._send(200, body, CONTENT_TYPES.get(file.suffix, "application/octet-stream"), etag=etag)

    def _send(self, status: int, body: bytes, ctype: str | None, etag: str | None = None) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def start_server(port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), DemoHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="demo-server").start()
    return server


def serve_forever(port: int, echo: Callable[[str], None] = print) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), DemoHandler)
    echo(f"serving {SITE} on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def write_demo_sources(target: Path, base_url: str) -> Path:
    text = SOURCES_TEMPLATE.read_text(encoding="utf-8").replace("{base}", base_url.rstrip("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def project_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "dags" / "engagement_daily.py").exists():
        raise EngageError(
            f"the DAGs folder was not found next to {Path(__file__).parent}: "
            "run the demo from a source checkout (pip install -e .)"
        )
    return root


def airflow_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment for a local Airflow on SQLite metadata under ``home``."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project_root() / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def run_airflow_dag_test(dag_id: str, run_date: date, env: dict[str, str], log_file: Path) -> int:
    airflow = str(Path(sys.executable).with_name("airflow"))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    (Path(env["AIRFLOW_HOME"])).mkdir(parents=True, exist_ok=True)
    with log_file.open("w", encoding="utf-8") as log:
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT)
        if migrate.returncode != 0:
            return migrate.returncode
        return subprocess.run(
            # A run at D+1 00:00 covers the data interval [D, D+1).
            [airflow, "dags", "test", dag_id, (run_date + timedelta(days=1)).isoformat()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode


def run_demo(run_date: date, *, use_airflow: bool = True, echo: Callable[[str], None] = print) -> int:
    from tabulate import tabulate

    from engage import pipeline
    from engage.config import load_sources
    from engage.settings import load_settings
    from engage.warehouse.db import make_engine, migrate
    from transforms.people import import_crm

    base = load_settings()
    home = base.home
    server = start_server()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        sources_file = write_demo_sources(home / "demo" / "sources.yml", url)
        extra = {
            "ENGAGE_HOME": str(home),
            "ENGAGE_SOURCES": str(sources_file),
            "ENGAGE_WAREHOUSE_URL": base.warehouse_url,
            "ENGAGE_TASK_RETRIES": "1",
            "ENGAGE_RETRY_DELAY_SECONDS": "2",
        }
        os.environ.update(extra)
        settings = load_settings()
        config = load_sources(sources_file)
        echo(f"warehouse: {settings.warehouse_url}")
        engine = make_engine(settings.warehouse_url)
        migrate(engine)
        crm = import_crm(engine, DEMO_CRM)  # so the prospect reports have accounts and owners
        engine.dispose()
        echo(f"sample sources served at {url}/ ({len(config.sources)} sources in {sources_file})")
        echo(
            f"sample CRM export imported: {crm.prospects} prospects in {crm.accounts} accounts ({DEMO_CRM.name})"
        )
        if use_airflow:
            log_file = home / "demo" / "airflow-dags-test.log"
            echo(
                f"running `airflow dags test engagement_daily {run_date + timedelta(days=1)}` "
                f"(data interval {run_date}) - log: {log_file} ..."
            )
            code = run_airflow_dag_test("engagement_daily", run_date, airflow_env(home, extra), log_file)
            if code != 0:
                tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
                echo("\n".join(tail))
                echo(f"the Airflow run failed (exit {code}); full log: {log_file}")
        else:
            pipeline.run_day(settings, config, run_date)
            code = 0
        if code == 0:
            backfill_history(settings, config, run_date, echo)
        summary = pipeline.summarize_day(settings, config, run_date)
    finally:
        server.shutdown()
    rows = [
        (s.source, s.kind, s.status, s.items_collected, s.items_total, s.observations_today) for s in summary
    ]
    echo("")
    echo(
        tabulate(rows, headers=["source", "kind", "status", "fetched", "items in warehouse", "observations"])
    )
    echo("")
    echo(f"warehouse: {settings.warehouse_url}")
    for line in demo_footer(settings):
        echo(line)
    failed = pipeline.failed_sources(summary)
    return 1 if code != 0 or failed else 0


HISTORY_DAYS = 13


def backfill_history(settings: Any, config: Any, run_date: date, echo: Callable[[str], None]) -> None:
    """Build the facts of the days before the run's, oldest first, then the run's day
    again and its reports (as `engage facts build` and `engage report` would): the
    sample sources hold two weeks of posts, so accounts get a journey with a history."""
    from engage import pipeline
    from engage.reports.daily import report_step
    from transforms.facts import build_facts_for_date

    engine = pipeline.open_warehouse(settings)
    try:
        for back in range(HISTORY_DAYS, -1, -1):
            build_facts_for_date(engine, run_date - timedelta(days=back))
        report_step(settings, config, run_date, engine=engine, send=False)
    finally:
        engine.dispose()
    echo(
        f"facts built for the {HISTORY_DAYS} days before {run_date} as well (engage facts build), "
        "and the day's reports written again with that history"
    )


def demo_footer(settings: object) -> list[str]:
    """Where things are and one query to paste (later steps add their outputs)."""
    db = str(getattr(settings, "warehouse_url", ""))
    lines = []
    if db.startswith("sqlite:///"):
        lines.append("try it:")
        lines.append(
            f'  sqlite3 {db[len("sqlite:///") :]} "select s.name, i.kind, i.published_at, i.title '
            'from content_item i join source s using (source_id) order by i.published_at desc limit 10;"'
        )
    reports = getattr(settings, "reports_dir", None)
    if reports is not None and (reports / "index.html").exists():
        days = sorted(p.name for p in reports.iterdir() if p.is_dir() and (p / "index.html").exists())
        if days:
            lines.append(f"reports for sales and marketing: {reports / days[-1] / 'index.html'}")
            lines.append(
                f"  every date: {reports / 'index.html'}  (engage report --date {days[-1]} writes them again)"
            )
    return lines
