"""Delivery of reports and alerts: a real SMTP server (aiosmtpd) and a webhook (pytest-httpserver) on loopback."""

from __future__ import annotations

import email
import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine
from werkzeug import Request, Response

from engage.config import load_sources
from engage.delivery import DeliveryError, post_webhook, send_alert, send_email, smtp_from_url
from engage.reports.daily import deliver, load_state, report_config_of, report_step, write_reports
from tests.test_reports import D, build_known_warehouse

SECRET_PATH = "/hooks/T000/B000/s3cr3t-token"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}?from=reports@acme.example", inbox
    finally:
        controller.stop()


def _sources(tmp_path: Path, webhook: str | None = None, alert_webhook: str | None = None) -> Path:
    path = tmp_path / "sources.yml"
    lines = [
        "sources:",
        "  - {name: forum, kind: rss, url: 'https://community.example.com/feed'}",
        "targets: {our_replies: 5}",
        "reports:",
        "  recipients:",
        "    all: [lead@acme.example]",
        "    Sam Seller: [sam@acme.example]",
    ]
    if webhook:
        lines.append(f"  webhook_url: '{webhook}'")
    lines += ["alerts:", "  email: [alerts@acme.example]", "  wait_hours: 24"]
    if alert_webhook:
        lines.append(f"  webhook_url: '{alert_webhook}'")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def known(sqlite_engine: Engine, tmp_path: Path) -> Engine:
    build_known_warehouse(sqlite_engine, tmp_path)
    return sqlite_engine


def test_send_email_over_smtp_with_attachments(smtp_server: tuple[str, Inbox], tmp_path: Path) -> None:
    url, inbox = smtp_server
    page = tmp_path / "prospects.html"
    page.write_text("<p>report</p>", encoding="utf-8")
    send_email(
        smtp_from_url(url), ["sam@acme.example"], "engage report\r\nBcc: victim@example.com", "hello", [page]
    )
    [(rcpt, message)] = inbox.messages
    assert rcpt == ["sam@acme.example"] and message["From"] == "reports@acme.example"
    assert (
        message["Subject"] == "engage report Bcc: victim@example.com" and message["Bcc"] is None
    )  # no header injection
    parts = {p.get_filename(): p.get_payload(decode=True) for p in message.walk() if p.get_filename()}
    assert parts == {"prospects.html": b"<p>report</p>"}


def test_smtp_settings_never_show_the_password() -> None:
    smtp = smtp_from_url("smtps://user:p%40ss@mail.example.com?from=r@acme.example")
    assert (smtp.host, smtp.port, smtp.use_ssl, smtp.username, smtp.password) == (
        "mail.example.com",
        465,
        True,
        "user",
        "p@ss",
    )
    assert "p@ss" not in repr(smtp)


def test_reports_and_alerts_are_delivered_once(
    known: Engine, tmp_path: Path, smtp_server: tuple[str, Inbox], httpserver: HTTPServer
) -> None:
    url, inbox = smtp_server
    posts: list[dict] = []  # type: ignore[type-arg]

    def record(request: Request) -> Response:
        posts.append(json.loads(request.data))
        return Response("ok")

    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_handler(record)
    sources = load_sources(_sources(tmp_path, httpserver.url_for(SECRET_PATH)))
    config = report_config_of(sources)
    root = tmp_path / "reports"
    env = {"ENGAGE_SMTP_URL": url}
    result = write_reports(known, D, root, config)
    attempts = deliver(result, config, root, env)
    assert [(a.what, a.channel, a.status) for a in attempts] == [
        ("prospects.html", "email", "sent"),
        ("prospects-sam-seller.html", "email", "sent"),
        ("reports", "webhook", "sent"),
        ("alerts", "email", "sent"),  # to the alert list, plus Sam for Globex's alerts
        ("alerts", "email", "sent"),
    ]
    by_rcpt = {tuple(r): m for r, m in inbox.messages}
    sam = by_rcpt[("sam@acme.example",)]
    assert sam["Subject"] == "engage: prospect engagement 2026-11-20 (Sam Seller)"
    assert {p.get_filename() for p in sam.walk() if p.get_filename()} == {
        "prospects-sam-seller.html",
        "kpis.html",
    }
    alert_mails = [m for r, m in inbox.messages if "alerts@acme.example" in r]
    assert sum(m.get_payload().count("- [") for m in alert_mails) == 5  # every alert, once
    assert posts[0]["date"] == "2026-11-20" and len(posts[0]["alerts"]) == 5
    record_file = json.loads((result.folder / "delivery.json").read_text())
    assert [a["status"] for a in record_file["attempts"]] == ["sent"] * 5
    assert "s3cr3t" not in (result.folder / "delivery.json").read_text()
    assert all(v["sent"] for v in load_state(root).values())

    # The next day: only what is new is sent.
    inbox.messages.clear()
    following = write_reports(known, D + timedelta(days=1), root, config)
    deliver(following, config, root, env)
    alert_mails = [m for r, m in inbox.messages if "alerts@acme.example" in r]
    assert [m.get_payload().count("- [") for m in alert_mails] == [1]  # Eve's reply has now waited 38 h
    assert "Eve" in alert_mails[0].get_payload()


def test_failed_delivery_is_recorded_and_the_alerts_retried(
    known: Engine,
    tmp_path: Path,
    httpserver: HTTPServer,
    smtp_server: tuple[str, Inbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_data("down", status=500)
    sources = load_sources(_sources(tmp_path, httpserver.url_for(SECRET_PATH)))
    config = report_config_of(sources)
    root = tmp_path / "reports"
    closed = f"smtp://127.0.0.1:{_free_port()}"
    result = write_reports(known, D, root, config)
    with caplog.at_level(logging.WARNING):
        attempts = deliver(result, config, root, {"ENGAGE_SMTP_URL": closed})
    assert {a.status for a in attempts} == {"failed"} and len(attempts) == 5
    webhook = next(a for a in attempts if a.channel == "webhook")
    assert webhook.error == f"webhook http://localhost:{httpserver.port}: HTTP 500"
    recorded = (result.folder / "delivery.json").read_text()
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("engage"))
    assert "s3cr3t" not in recorded and "s3cr3t" not in ours and "ConnectionRefusedError" in ours
    assert "ConnectionRefusedError" in recorded
    assert "failed" in (result.folder / "index.html").read_text()  # shown on the day's page
    assert not any(v["sent"] for v in load_state(root).values())

    # The next run (SMTP back, webhook still down): the alerts still pending are sent by e-mail.
    url, inbox = smtp_server
    following = write_reports(known, D + timedelta(days=1), root, config)
    deliver(following, config, root, {"ENGAGE_SMTP_URL": url})
    alert_mails = [m for r, m in inbox.messages if "alerts@acme.example" in r]
    assert sum(m.get_payload().count("- [") for m in alert_mails) == 6  # yesterday's five and today's one
    assert all(v["sent"] for v in load_state(root).values())


def test_report_step_never_fails_the_day_on_delivery(
    known: Engine,
    tmp_path: Path,
    settings_for,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    sources_path = _sources(tmp_path, f"http://127.0.0.1:{_free_port()}{SECRET_PATH}")
    settings = settings_for(str(known.url), sources_path)
    monkeypatch.delenv("ENGAGE_SMTP_URL", raising=False)
    monkeypatch.delenv("ENGAGE_WEBHOOK_URL", raising=False)
    result = report_step(settings, load_sources(sources_path), D, engine=known)
    assert result.index == settings.reports_dir / "2026-11-20" / "index.html" and result.index.exists()
    assert result.failed_deliveries and all(a.status == "failed" for a in result.deliveries)
    assert "no SMTP server configured" in (result.folder / "delivery.json").read_text()


def test_send_alert(
    tmp_path: Path, settings_for, smtp_server: tuple[str, Inbox], httpserver: HTTPServer
) -> None:  # type: ignore[no-untyped-def]
    url, inbox = smtp_server
    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_data("ok")
    settings = settings_for("sqlite://", _sources(tmp_path, alert_webhook=httpserver.url_for(SECRET_PATH)))
    done = send_alert(
        settings, "engagement_daily failed", "task collect[forum] failed", env={"ENGAGE_SMTP_URL": url}
    )
    assert done == ["email to alerts@acme.example: sent", f"webhook http://localhost:{httpserver.port}: sent"]
    [(rcpt, message)] = inbox.messages
    assert rcpt == ["alerts@acme.example"] and message["Subject"] == "engagement_daily failed"
    [(request, _)] = httpserver.log
    assert request.get_json()["text"] == "engagement_daily failed\ntask collect[forum] failed"
    nothing = settings_for("sqlite://", tmp_path / "missing.yml")
    assert send_alert(nothing, "x", "y", env={}) == []


def test_webhook_redirects_and_timeouts_are_failures(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": "http://192.0.2.1/"}
    )
    with pytest.raises(DeliveryError, match="HTTP 302"):
        post_webhook(httpserver.url_for("/hook"), {"text": "x"})


def test_smtp_from_the_airflow_connection(
    smtp_server: tuple[str, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engage.delivery import smtp_settings

    url, inbox = smtp_server
    port = int(url.split(":")[2].split("?")[0])
    conn = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "login": "",
            "password": "",
            "extra": {
                "from_email": "airflow@acme.example",
                "disable_ssl": True,
                "disable_tls": True,
                "timeout": 5,
            },
        }
    )
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGE_SMTP", conn)  # how Airflow finds connections in the environment
    smtp = smtp_settings({"AIRFLOW_CONN_ENGAGE_SMTP": conn})
    assert smtp is not None and (smtp.host, smtp.port, smtp.use_ssl, smtp.starttls) == (
        "127.0.0.1",
        port,
        False,
        False,
    )
    send_email(smtp, ["sam@acme.example"], "from the connection", "hello")
    assert inbox.messages[0][1]["From"] == "airflow@acme.example"
    assert smtp_settings({}) is None  # nothing configured: no e-mail
