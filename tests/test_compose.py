"""The production deployment files: docker-compose.yml, Dockerfile, .env.example.

There is no Docker engine on the build machine. What can be checked without
one is checked here: the compose file against the Compose Specification's
JSON schema and with Debian's ``docker-compose config`` (which interpolates
``.env`` and validates without an engine), what the schema cannot see (the
dependency graph, healthchecks, one image for every Airflow service, every
variable documented), the image's pins against ``pyproject.toml``, and the
PostgreSQL init script, run on the test server. ``test_celery_executor.py``
runs the services themselves.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
CODE_DIRS = ("engage", "collectors", "transforms", "models", "dags", "sql")
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
}
# ${NAME}, ${NAME:-default}, ${NAME:?error}; "$$" escapes a dollar for the container.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    # PyYAML resolves the x-airflow-common anchor and its "<<" merge keys, as Compose does.
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str | None]:
    return dotenv_values(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _filled_env(env_example: dict[str, str | None], target: Path) -> Path:
    """.env.example with a dummy value in every empty (secret) setting."""
    lines = [f"{k}={v if v else 'dummy-' + k.lower().strip('_')}" for k, v in env_example.items()]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


# ----------------------------------------------------------------- the schema


def _validator() -> jsonschema.Draft201909Validator:
    # The schema declares draft 2019-09 (with an "http://.../schema#" URI jsonschema does not know).
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = _validator()
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["services"]["airflow-worker"]["depends_on"]["airflow-init"].update(
            condition="service_ready"
        ),
        lambda c: c["services"]["postgres"]["healthcheck"].update(retries="many"),
        lambda c: c["services"]["redis"].update(restart_policy="always"),
    ],
    ids=["unknown-condition", "retries-not-a-number", "unknown-key"],
)
def test_the_schema_rejects_a_broken_compose_file(compose: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(broken)


# ----------------------------------------------------------- docker-compose config


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Debian's docker-compose; installed with apt-get when running as root."""
    found = shutil.which("docker-compose")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "docker-compose is not installed (apt-get install docker-compose) and this is not root with apt"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker-compose"]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=300).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            subprocess.run(install, env=env, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        pass
    found = shutil.which("docker-compose")
    if not found:
        pytest.skip("apt-get install docker-compose failed")
    return found


def _compose_config(docker_compose: str, env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: only the env file feeds the interpolation.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [
            docker_compose,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_file_with_env_example_filled_in(
    docker_compose: str, env_example: dict[str, str | None], tmp_path: Path
) -> None:
    proc = _compose_config(docker_compose, _filled_env(env_example, tmp_path / "env"))
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    services = resolved["services"]
    assert set(services) == {"postgres", "redis"} | AIRFLOW_SERVICES
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == "dummy-airflow__api_auth__jwt_secret"
        assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
            "postgresql+psycopg://airflow:dummy-airflow_db_password@postgres:5432/airflow"
        )
        assert services[name]["image"] == env_example["ENGAGE_IMAGE"]
    assert services["airflow-worker"]["command"] == "celery worker --concurrency 8"
    assert services["airflow-worker"]["environment"]["ENGAGE_USER_AGENT"] == env_example["ENGAGE_USER_AGENT"]


def test_docker_compose_refuses_to_start_while_a_secret_is_empty(docker_compose: str) -> None:
    proc = _compose_config(docker_compose, ENV_EXAMPLE, "-q")
    assert proc.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", proc.stderr), proc.stderr


# ------------------------------------------------- what the schema cannot check


def test_every_dependency_exists_and_its_condition_can_be_met(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, dep in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on an unknown service {target!r}"
            assert target != name
            condition = dep["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy: no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once and exit"
    # Every Airflow service waits for the databases and for airflow-init.
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name != "airflow-init":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    checks = {
        n: json.dumps(s["healthcheck"]["test"]) for n, s in compose["services"].items() if "healthcheck" in s
    }
    assert "/api/v2/version" in checks["airflow-apiserver"]
    assert "DagProcessorJob" in checks["airflow-dag-processor"]
    assert "TriggererJob" in checks["airflow-triggerer"]
    assert "inspect ping" in checks["airflow-worker"]


def test_all_airflow_services_share_one_image_and_one_configuration(compose: dict[str, Any]) -> None:
    common = compose["x-airflow-common"]
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == common["image"], name
        assert service["volumes"] == common["volumes"], name
        assert service["user"] == common["user"], name
        # A service may add variables (the worker, airflow-init) but never change a common one.
        for key, value in common["environment"].items():
            assert service["environment"][key] == value, f"{name}: {key}"
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert env["ENGAGE_SOURCES"].startswith("/opt/engage/config/")
    assert "./config:/opt/engage/config:ro" in common["volumes"]
    assert any(v.startswith("engage-data:/opt/engage/var") for v in common["volumes"])


def test_workers_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker
    # A fixed host port would collide between replicas.
    assert "ports" not in worker
    assert worker["command"].startswith("celery worker")


def test_airflow_init_migrates_both_databases_and_imports_the_pools(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    steps = [line.split()[:3] for line in script.splitlines() if line.strip()]
    assert ["airflow", "db", "migrate"] in steps
    assert ["airflow", "pools", "import"] in steps
    assert ["engage", "init"] in steps  # the warehouse migration (engage/cli.py)
    assert "-e" in init["command"][0]  # a failing step fails the service, and nothing starts
    pools_path = next(
        line.split()[3] for line in script.splitlines() if line.startswith("airflow pools import")
    )
    # The container path maps to ./config through the read-only volume.
    assert pools_path.startswith("/opt/engage/config/")
    pools = json.loads((ROOT / "config" / pools_path.removeprefix("/opt/engage/config/")).read_text())
    assert pools and all(isinstance(p["slots"], int) and p["slots"] >= 1 for p in pools.values())


def test_postgres_creates_both_databases_from_the_init_script(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    script = ROOT / "docker" / "postgres-init" / "01-databases.sh"
    assert os.access(script, os.X_OK)
    url = compose["x-airflow-common"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.endswith("@postgres:5432/airflow")


# ------------------------------------------------------------ the variables


def _code_env_reads() -> set[str]:
    """ENGAGE_* names the code reads (string literals in the project's packages and DAGs)."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"""["'](ENGAGE_[A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")))
    return names


def test_env_example_parses_line_by_line() -> None:
    with ENV_EXAMPLE.open(encoding="utf-8") as stream:
        bindings = list(parse_stream(stream))
    bad = [b.original.line for b in bindings if b.error]
    assert not bad, f"unparsable lines in .env.example: {bad}"
    keys = [b.key for b in bindings if b.key]
    assert len(keys) == len(set(keys)), "a setting appears twice"


def test_every_compose_variable_is_documented_in_env_example(
    compose_text: str, env_example: dict[str, str | None]
) -> None:
    used = set(VARIABLE.findall(compose_text))
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in used and "AIRFLOW_CONN_ENGAGE_WAREHOUSE" in used
    assert sorted(used - set(env_example)) == []
    # And nothing in .env.example is dead: every setting reaches the compose file.
    assert sorted(set(env_example) - used) == []


def test_every_secret_is_empty_in_the_example_and_required_by_compose(
    compose_text: str, env_example: dict[str, str | None]
) -> None:
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", compose_text))
    assert {
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "ENGAGE_DB_PASSWORD",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "AIRFLOW_CONN_ENGAGE_WAREHOUSE",
    } <= required
    for name in required:
        assert env_example[name] == "", f"{name} has a value in .env.example: secrets are never committed"


def test_every_engage_setting_the_code_reads_is_in_env_example_and_compose(
    compose: dict[str, Any], env_example: dict[str, str | None]
) -> None:
    read = _code_env_reads()
    assert {"ENGAGE_HOME", "ENGAGE_SOURCES", "ENGAGE_HTTP_TIMEOUT", "ENGAGE_TASK_RETRIES"} <= read
    documented = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert sorted(n for n in read if not re.search(rf"\b{n}\b", documented)) == []
    # Left unset on purpose: the Airflow connections are used instead.
    passed = set(compose["x-airflow-common"]["environment"])
    assert sorted(read - passed - {"ENGAGE_WAREHOUSE_URL", "ENGAGE_SMTP_URL"}) == []


def test_the_image_tag_follows_the_project_version(
    compose: dict[str, Any], env_example: dict[str, str | None], pyproject: dict[str, Any]
) -> None:
    version = pyproject["project"]["version"]
    assert env_example["ENGAGE_IMAGE"] == f"engage-airflow:{version}"
    assert compose["x-airflow-common"]["image"] == "${ENGAGE_IMAGE:-engage-airflow:" + version + "}"


# ----------------------------------------------------- the image and pyproject


def image_mismatches(dockerfile_text: str, pyproject: dict[str, Any]) -> list[str]:
    """Where the Dockerfile disagrees with pyproject.toml (empty when they agree)."""
    parser = DockerfileParser(fileobj=None)
    parser.content = dockerfile_text
    problems: list[str] = []
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"apache-airflow\s*==", d)]
    if len(pins) != 1:
        return [f"pyproject.toml pins apache-airflow {len(pins)} times"]
    airflow = pins[0].split("==", 1)[1].strip()
    match = re.fullmatch(
        r"apache/airflow:(?P<airflow>[\w.]+)-python(?P<python>\d+\.\d+)", parser.baseimage or ""
    )
    if not match:
        return [f"FROM {parser.baseimage!r} is not a pinned apache/airflow:<version>-python<x.y> image"]
    if match["airflow"] != airflow:
        problems.append(f"FROM has Airflow {match['airflow']}, pyproject.toml pins {airflow}")
    python = match["python"]
    spec = pyproject["project"]["requires-python"]
    lower = re.search(r">=\s*(\d+)\.(\d+)", spec)
    upper = re.search(r"<\s*(\d+)\.(\d+)", spec)
    py = tuple(int(x) for x in python.split("."))
    if (lower and py < (int(lower[1]), int(lower[2]))) or (upper and py >= (int(upper[1]), int(upper[2]))):
        problems.append(f"FROM has Python {python}, outside requires-python {spec!r}")
    args = parser.args
    if args.get("AIRFLOW_VERSION") != airflow:
        problems.append(f"ARG AIRFLOW_VERSION={args.get('AIRFLOW_VERSION')}, pyproject.toml pins {airflow}")
    if args.get("PYTHON_VERSION") != python:
        problems.append(f"ARG PYTHON_VERSION={args.get('PYTHON_VERSION')}, FROM has Python {python}")
    installs = [
        i["value"] for i in parser.structure if i["instruction"] == "RUN" and "pip install" in i["value"]
    ]
    if len(installs) != 1:
        problems.append(f"{len(installs)} pip install steps; the project's own install is the only one")
    else:
        # ${URL:+--constraint "${URL}"}: an option, present when the build arg is set.
        words = re.sub(r'\$\{\w+:\+[^"}]*"[^"]*"\}', " ", installs[0]).split()
        packages = [w for w in words[words.index("install") + 1 :] if not w.startswith(("-", "$"))]
        if sorted(packages) != sorted(['"apache-airflow==${AIRFLOW_VERSION}"', "."]):
            problems.append(f"pip installs {packages}: only the project (.) and the pinned Airflow")
        if "-r" in words or "--requirement" in words:
            problems.append("a requirements file beside pyproject.toml")
    return problems


def test_the_image_installs_the_project_with_the_pins_of_pyproject(pyproject: dict[str, Any]) -> None:
    assert image_mismatches(DOCKERFILE.read_text(encoding="utf-8"), pyproject) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "FROM apache/airflow:3.3.2-python3.11",
            "FROM apache/airflow:3.3.1-python3.11",
            "FROM has Airflow 3.3.1",
        ),
        ("ARG AIRFLOW_VERSION=3.3.2", "ARG AIRFLOW_VERSION=3.2.0", "ARG AIRFLOW_VERSION=3.2.0"),
        (
            "FROM apache/airflow:3.3.2-python3.11",
            "FROM apache/airflow:3.3.2-python3.10",
            "outside requires-python",
        ),
        ("FROM apache/airflow:3.3.2-python3.11", "FROM apache/airflow:latest", "not a pinned"),
        ("        -e .", "        -e . scikit-learn==1.0", "only the project"),
    ],
)
def test_a_pin_changed_in_one_place_only_is_caught(
    pyproject: dict[str, Any], old: str, new: str, expected: str
) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert old in dockerfile
    problems = image_mismatches(dockerfile.replace(old, new), pyproject)
    assert any(expected in p for p in problems), problems
    # And the other way round: pyproject.toml moved on, the Dockerfile did not.
    moved = copy.deepcopy(pyproject)
    moved["project"]["dependencies"] = [
        "apache-airflow==3.4.0" if d.startswith("apache-airflow==") else d
        for d in moved["project"]["dependencies"]
    ]
    assert any("pyproject.toml pins 3.4.0" in p for p in image_mismatches(dockerfile, moved))


def test_the_image_gets_every_package_the_project_installs(pyproject: dict[str, Any]) -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    copied = {i["value"].split()[-2] for i in parser.structure if i["instruction"] == "COPY"}
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"dags", "config"} <= copied
    assert "pyproject.toml" in next(i["value"] for i in parser.structure if i["instruction"] == "COPY")
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & (packages | {"dags", "config", "pyproject.toml", "README.md"})
    assert ".env" in ignored and ".git" in ignored
    env = dict(
        re.findall(r"(\w+)=(\S+)", next(i["value"] for i in parser.structure if i["instruction"] == "ENV"))
    )
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/engage/dags"
    assert env["ENGAGE_HOME"] == "/opt/engage/var"


# ------------------------------------------------- the PostgreSQL init script


@pytest.fixture
def init_script_names(pg_server: PgServer) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    names = {
        "AIRFLOW_DB_NAME": f"engage_t_airflow_{suffix}",
        "AIRFLOW_DB_USER": f"engage_t_airflow_{suffix}",
        "ENGAGE_DB_NAME": f"engage_t_wh_{suffix}",
        "ENGAGE_DB_USER": f"engage_t_wh_{suffix}",
    }
    yield names
    admin = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for key in ("AIRFLOW", "ENGAGE"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{names[key + "_DB_NAME"]}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{names[key + "_DB_USER"]}"'))
    admin.dispose()


@pytest.mark.postgres
def test_the_postgres_init_script_creates_both_databases_each_owned_by_its_user(
    pg_server: PgServer, init_script_names: dict[str, str]
) -> None:
    if not shutil.which("psql"):
        pytest.skip("psql is not installed")
    from engage.warehouse.db import make_engine, migrate

    admin = make_url(pg_server.admin_url)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": admin.database or "postgres",
        # A quote in a password must not break out of the SQL.
        "AIRFLOW_DB_PASSWORD": "a'irflow; DROP ROLE x;--",
        "ENGAGE_DB_PASSWORD": "s3cret\"'$",
        **init_script_names,
    }
    script = ROOT / "docker" / "postgres-init" / "01-databases.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr

    # The warehouse migrates as its own (non-superuser) owner, as `engage init` does in airflow-init.
    warehouse = admin.set(
        username=init_script_names["ENGAGE_DB_USER"], database=init_script_names["ENGAGE_DB_NAME"]
    )
    engine = make_engine(warehouse.render_as_string(hide_password=False))
    assert migrate(engine)
    with engine.connect() as conn:
        owner = conn.execute(
            text("select tableowner from pg_tables where tablename = 'content_item'")
        ).scalar()
        superuser = conn.execute(text("select rolsuper from pg_roles where rolname = current_user")).scalar()
    engine.dispose()
    assert owner == init_script_names["ENGAGE_DB_USER"] and superuser is False

    metadata = create_engine(
        admin.set(
            username=init_script_names["AIRFLOW_DB_USER"], database=init_script_names["AIRFLOW_DB_NAME"]
        )
    )
    with metadata.begin() as conn:
        conn.execute(text("create table probe (id int)"))
        assert conn.execute(text("select count(*) from probe")).scalar() == 0
    metadata.dispose()

    # Running it again (a second server on the same volume never does, but a
    # mistake must not pass silently) fails instead of half-applying.
    again = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already exists" in again.stderr
