"""The failure alert's text: what failed, where, and never a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytest_httpserver import HTTPServer

from engage.alerts import failure_message, redact, task_failure_alert


def test_redact_masks_passwords_in_urls_and_key_values() -> None:
    text = "cannot reach postgresql+psycopg://engage:s3cr%40t@db:5432/engage; token=abc123 password=hunter2"
    masked = redact(text)
    assert "s3cr" not in masked and "abc123" not in masked and "hunter2" not in masked
    assert "postgresql+psycopg://engage:***@db:5432/engage" in masked
    assert redact("https://example.com/feed?page=2") == "https://example.com/feed?page=2"


def _context(error: Exception) -> dict:  # type: ignore[type-arg]
    ti = SimpleNamespace(
        dag_id="engagement_daily",
        task_id="collect_reddit",
        map_index=3,
        rendered_map_index="reddit-revops",
        try_number=2,
        log_url="http://airflow:8080/log",
    )
    return {
        "task_instance": ti,
        "exception": error,
        "data_interval_start": datetime(2026, 11, 20, tzinfo=UTC),
    }


def test_failure_message_names_the_task_source_and_day_without_secrets() -> None:
    subject, text = failure_message(
        _context(RuntimeError("login failed for postgres://u:pw123@h/db\nmore lines"))
    )
    assert subject == "[engage] engagement_daily: collect_reddit[reddit-revops] failed for 2026-11-20"
    assert "Try:     2" in text and "RuntimeError: login failed for postgres://u:***@h/db" in text
    assert "pw123" not in text and "more lines" not in text and "Log:     http://airflow:8080/log" in text


def test_the_callback_posts_to_the_alert_webhook_and_never_raises(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    monkeypatch.setenv("ENGAGE_SOURCES", str(tmp_path / "missing.yml"))
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path))
    monkeypatch.setenv("ENGAGE_ALERT_WEBHOOK_URL", httpserver.url_for("/hook"))
    task_failure_alert(_context(ValueError("boom")))
    ((request, _),) = httpserver.log
    assert request.get_json()["subject"].endswith("collect_reddit[reddit-revops] failed for 2026-11-20")
    # An unreachable webhook is logged, not raised: the task's own failure stands.
    monkeypatch.setenv("ENGAGE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
    task_failure_alert(_context(ValueError("boom")))
