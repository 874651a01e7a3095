"""Delivery of reports and alerts: e-mail over SMTP, and a JSON POST to a webhook.

Where to send comes from the sources file (``reports:`` and ``alerts:``, see
``engage.reports.config``) and the environment; how, from:

| setting | meaning |
|---|---|
| Airflow connection ``engage_smtp`` (``ENGAGE_SMTP_CONN_ID``) | inside Airflow: host, port, login, password; extra ``from_email``, ``disable_ssl``, ``disable_tls``, ``timeout`` (the SMTP provider's fields) |
| ``ENGAGE_SMTP_URL`` | elsewhere, or when set: ``smtp://user:password@host:587?from=reports@acme.example`` (STARTTLS when the server offers it, ``starttls=false`` to skip), ``smtps://...:465`` for TLS from the start |
| ``ENGAGE_SMTP_FROM`` | the sender, when the URL or connection names none |
| ``ENGAGE_WEBHOOK_URL`` | the reports' webhook (wins over ``reports.webhook_url``) |
| ``ENGAGE_ALERT_WEBHOOK_URL`` | the alerts' webhook (wins over ``alerts.webhook_url``; else the reports' one) |

Passwords and webhook URLs (which carry their secret in the path) are never
logged nor written to ``delivery.json``: a webhook is named by its host only.
Every attempt has a timeout; a failure raises ``DeliveryError`` to the
caller, which records it and goes on (``deliver`` below never raises).
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from engage.errors import ConfigError, EngageError
from engage.files import write_atomic

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 20.0
WEBHOOK_TIMEOUT = (5.0, 15.0)
MAX_ATTACHMENT_BYTES = 15_000_000
MAX_ALERT_TEXT = 4000


class DeliveryError(EngageError):
    """An e-mail or webhook could not be delivered; the message names the target, never a secret."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    use_ssl: bool = False
    starttls: bool | None = None  # None: when the server offers it
    timeout: float = SMTP_TIMEOUT

    def __repr__(self) -> str:  # never show the password
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, sender={self.sender!r}, ssl={self.use_ssl})"
        )


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def smtp_from_url(url: str, sender: str | None = None) -> SmtpSettings:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("ENGAGE_SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://...")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    use_ssl = parts.scheme == "smtps"
    sender = query.get("from") or sender or (f"engage@{parts.hostname}")
    starttls = query.get("starttls")
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or (465 if use_ssl else 25),
        sender=sender,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_ssl=use_ssl,
        starttls=None if starttls is None else _flag(starttls, False),
        timeout=float(query.get("timeout", SMTP_TIMEOUT)),
    )


def _airflow_smtp(conn_id: str, env: Mapping[str, str], sender: str | None) -> SmtpSettings | None:
    if not env.get("AIRFLOW_CTX_DAG_ID") and not env.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return None
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - no such connection: no e-mail
        return None
    extra = conn.extra_dejson or {}
    use_ssl = not _flag(extra.get("disable_ssl"), False)
    return SmtpSettings(
        host=conn.host or "localhost",
        port=int(conn.port or (465 if use_ssl else 587)),
        sender=extra.get("from_email") or sender or f"engage@{conn.host or 'localhost'}",
        username=conn.login or None,
        password=conn.password or None,
        use_ssl=use_ssl,
        starttls=None if use_ssl else not _flag(extra.get("disable_tls"), False),
        timeout=float(extra.get("timeout", SMTP_TIMEOUT)),
    )


def smtp_settings(env: Mapping[str, str] | None = None) -> SmtpSettings | None:
    """How to send e-mail: ENGAGE_SMTP_URL, else the Airflow connection, else None (no e-mail)."""
    env = os.environ if env is None else env
    sender = env.get("ENGAGE_SMTP_FROM") or None
    if env.get("ENGAGE_SMTP_URL"):
        return smtp_from_url(env["ENGAGE_SMTP_URL"], sender)
    return _airflow_smtp(env.get("ENGAGE_SMTP_CONN_ID", "engage_smtp"), env, sender)


def webhook_label(url: str) -> str:
    """How a webhook is named in logs and records: its host, never its secret path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def send_email(
    smtp: SmtpSettings, to: Iterable[str], subject: str, text: str, attachments: Iterable[Path] = ()
) -> None:
    """Send one message (plain text, files attached) to every address in ``to``."""
    to = list(to)
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(to)
    message["Subject"] = _one_line(subject)  # no header injection from names in the subject
    message.set_content(text)
    for path in attachments:
        data = path.read_bytes()
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise DeliveryError(
                f"{path.name} is {len(data)} bytes, more than the {MAX_ATTACHMENT_BYTES} an e-mail may carry"
            )
        maintype, subtype = ("text", "html") if path.suffix == ".html" else ("text", "csv")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    where = f"SMTP {smtp.host}:{smtp.port}"
    try:
        if smtp.use_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            client.ehlo()
            if not smtp.use_ssl and (
                smtp.starttls or (smtp.starttls is None and client.has_extn("starttls"))
            ):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"{where}: cannot send to {', '.join(to)}: {type(exc).__name__}: {_one_line(str(exc))}"
        ) from None
    if refused:
        raise DeliveryError(f"{where}: refused {', '.join(sorted(refused))}")


def post_webhook(
    url: str, payload: Mapping[str, Any], timeout: tuple[float, float] = WEBHOOK_TIMEOUT
) -> None:
    """POST ``payload`` as JSON; anything but a 2xx answer is a failure. Redirects are not followed."""
    import requests

    label = webhook_label(url)
    try:
        response = requests.post(url, json=dict(payload), timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook {label}: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {label}: HTTP {response.status_code}")


@dataclass
class Attempt:
    what: str
    channel: str  # email | webhook
    to: str
    status: str  # sent | failed
    error: str | None = None
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "channel": self.channel,
            "to": self.to,
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


def attempt(what: str, channel: str, to: str, send: Any) -> Attempt:
    """Run ``send()``; a failure becomes a recorded attempt and a warning, never an exception."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        send()
    except (DeliveryError, ConfigError, OSError) as exc:
        log.warning("delivery of %s by %s to %s failed: %s", what, channel, to, exc)
        return Attempt(what, channel, to, "failed", str(exc), at)
    return Attempt(what, channel, to, "sent", None, at)


def record_attempts(folder: Path, attempts: list[Attempt]) -> Path:
    """Append to ``delivery.json`` in the report folder (secrets are never in it)."""
    path = folder / "delivery.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("attempts", [])
        except (ValueError, AttributeError):
            previous = []
    data = {"attempts": previous + [a.as_dict() for a in attempts]}
    return write_atomic(path, json.dumps(data, indent=2))


def alert_targets(settings: Any, env: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], str | None]:
    """The alert e-mail addresses and webhook URL from the sources file and the environment."""
    from engage.config import load_sources
    from engage.reports.config import load_report_config

    env = os.environ if env is None else env
    emails: tuple[str, ...] = ()
    webhook = None
    try:
        sources = load_sources(settings.sources_path)
        config = load_report_config(sources.extra, sources.path)
        emails, webhook = config.alert_emails, config.alert_webhook_url or config.webhook_url
    except ConfigError as exc:
        log.warning("alerts: %s; using the environment only", exc)
    webhook = env.get("ENGAGE_ALERT_WEBHOOK_URL") or env.get("ENGAGE_WEBHOOK_URL") or webhook
    return emails, webhook


def send_alert(settings: Any, subject: str, text: str, *, env: Mapping[str, str] | None = None) -> list[str]:
    """Send a plain alert to the configured alert e-mail addresses and webhook.

    Returns one line per target saying what happened (``"email to a@b: sent"``,
    ``"webhook https://host: failed: HTTP 500"``); never raises, so it is safe
    in an Airflow failure callback. Nothing configured: an empty list.
    """
    env = os.environ if env is None else env
    subject, text = _one_line(subject), text[:MAX_ALERT_TEXT]
    emails, webhook = alert_targets(settings, env)
    done: list[str] = []
    if emails:
        try:
            smtp = smtp_settings(env)
        except ConfigError as exc:
            smtp = None
            done.append(f"email to {', '.join(emails)}: failed: {exc}")
        if smtp is not None:
            a = attempt(subject, "email", ", ".join(emails), lambda: send_email(smtp, emails, subject, text))
            done.append(f"email to {a.to}: {a.status}" + (f": {a.error}" if a.error else ""))
        elif not done:
            done.append(
                f"email to {', '.join(emails)}: failed: no SMTP server configured (ENGAGE_SMTP_URL or the engage_smtp connection)"
            )
    if webhook:
        label = webhook_label(webhook)
        a = attempt(
            subject,
            "webhook",
            label,
            lambda: post_webhook(webhook, {"text": f"{subject}\n{text}", "subject": subject}),
        )
        done.append(f"webhook {label}: {a.status}" + (f": {a.error}" if a.error else ""))
    return done
