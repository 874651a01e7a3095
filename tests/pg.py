"""Find or start a PostgreSQL server for the tests.

In order:
1. ``ENGAGE_TEST_POSTGRES_URL`` (a server URL; each test gets a database on it);
2. a local server on 127.0.0.1:5432 (trust auth, user postgres or the current user);
3. a throwaway cluster started with the machine's PostgreSQL binaries (as
   the ``postgres`` user through ``runuser`` when running as root, since
   PostgreSQL refuses to run as root);
4. otherwise the PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url


@dataclass
class PgServer:
    admin_url: URL  # connects to a maintenance database
    stop: object = None  # callable or None
    how: str = ""

    def create_database(self) -> str:
        name = "engage_test_" + uuid.uuid4().hex[:12]
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _can_connect(url: URL) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not this one"
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster() -> PgServer | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or (
        [shutil.which("pg_ctl")] if shutil.which("pg_ctl") else []
    )
    if not candidates:
        return None
    bindir = Path(candidates[-1]).parent
    datadir = Path(tempfile.mkdtemp(prefix="engage-pg-"))
    port = _free_port()
    prefix: list[str] = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return None
        shutil.chown(datadir, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
        user = "postgres"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(datadir), "-U", user, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-l",
            str(datadir / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(datadir, ignore_errors=True)

    url = URL.create("postgresql+psycopg", username=user, host="127.0.0.1", port=port, database="postgres")
    for _ in range(50):
        if _can_connect(url):
            return PgServer(url, stop, f"throwaway cluster in {datadir}")
        time.sleep(0.1)
    stop()
    return None


def find_server() -> tuple[PgServer | None, str]:
    env = os.environ.get("ENGAGE_TEST_POSTGRES_URL")
    if env:
        url = make_url(
            env.replace("postgresql://", "postgresql+psycopg://", 1)
            if env.startswith("postgresql://")
            else env
        )
        if _can_connect(url):
            return PgServer(url, None, "ENGAGE_TEST_POSTGRES_URL"), ""
        return None, f"ENGAGE_TEST_POSTGRES_URL is set but {url.render_as_string()} does not answer"
    for user in ("postgres", os.environ.get("USER") or "root"):
        url = URL.create(
            "postgresql+psycopg", username=user, host="127.0.0.1", port=5432, database="postgres"
        )
        if _can_connect(url):
            return PgServer(url, None, f"local server as {user}"), ""
    try:
        server = _start_cluster()
    except (subprocess.CalledProcessError, OSError) as exc:
        return None, f"no PostgreSQL server and starting a throwaway cluster failed: {exc}"
    if server is None:
        return (
            None,
            "no PostgreSQL server on 127.0.0.1:5432, no ENGAGE_TEST_POSTGRES_URL, and no pg_ctl binaries",
        )
    return server, ""
