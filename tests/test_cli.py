"""The engage command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from engage.cli import main
from engage.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENGAGE_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ENGAGE_WAREHOUSE", raising=False)
    return tmp_path


def test_warehouse_url_from_an_airflow_connection(monkeypatch: pytest.MonkeyPatch, env: Path) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENGAGE_WAREHOUSE", "postgres://analyst:s3cret@db.internal:5432/warehouse"
    )
    assert load_settings().warehouse_url == "postgresql+psycopg://analyst:s3cret@db.internal:5432/warehouse"


def test_init_creates_the_warehouse_and_never_prints_the_password(
    monkeypatch: pytest.MonkeyPatch, env: Path, postgres_url: str
) -> None:
    monkeypatch.setenv("ENGAGE_WAREHOUSE_URL", postgres_url.replace("postgres@", "postgres:topsecret@"))
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert "schema revision" in result.output
    assert "topsecret" not in result.output


def test_sources_check_reports_a_bad_file_with_exit_2(env: Path) -> None:
    bad = env / "s.yml"
    bad.write_text("sources:\n  - {name: blog, kind: rss, url: 'not a url'}\n")
    result = CliRunner().invoke(main, ["sources", "check", "--file", str(bad)])
    assert result.exit_code == 2
    assert "source 'blog', field 'url'" in result.output


def test_run_loads_the_good_sources_and_exits_1_naming_the_failed_one(
    env: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = (ROOT / "engage/demo_data/site/northwind-news.atom").read_bytes()
    httpserver.expect_request("/ok.atom").respond_with_data(feed, content_type="application/atom+xml")
    httpserver.expect_request("/down.xml").respond_with_data("down", status=500)
    sources = env / "s.yml"
    sources.write_text(
        f"sources:\n  - {{name: ok, kind: atom, url: '{httpserver.url_for('/ok.atom')}'}}\n"
        f"  - {{name: down, kind: rss, url: '{httpserver.url_for('/down.xml')}'}}\n"
    )
    monkeypatch.setenv("ENGAGE_SOURCES", str(sources))
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    result = runner.invoke(main, ["collect", "--date", "2026-11-20"])
    assert result.exit_code == 1
    assert "down: server error 500" in result.output
    assert "ok" in result.output and "success" in result.output
    summary = runner.invoke(main, ["summary", "--date", "2026-11-20"])
    assert summary.exit_code == 0 and "3" in summary.output


def test_bad_date_is_a_usage_error(env: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--date", "20-11-2026"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ENGAGE_ROBOTS_CACHE_HOURS", "a day", "expected a number"),
        ("ENGAGE_RAW_RETENTION_DAYS", "-1", "expected a whole number"),
        ("ENGAGE_FRESHNESS_DAYS", "2.5", "expected a whole number"),
        ("ENGAGE_HTTP_TIMEOUT", "nan", "expected a number"),
    ],
)
def test_a_bad_numeric_setting_is_a_one_line_error_naming_it(
    env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    for command in (["run"], ["summary"], ["raw", "prune"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"error: {name}={value!r}: {expected}" in result.output
        assert "Traceback" not in result.output
    monkeypatch.setenv(name, "3")
    assert load_settings()  # a good value loads
