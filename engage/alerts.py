"""Alerts when a task of the daily run fails (Airflow ``on_failure_callback``).

The callback sends a short plain-text alert -- DAG, task, source, date,
try number, the error's first line and the log URL -- to where the sources
file's ``alerts:`` section says (webhook and/or e-mail, through
``engage.delivery.send_alert``). Anything that looks like a password in a
URL is masked first. A callback never raises: a failed alert is logged and
the task's own failure stands.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

# "scheme://user:secret@host" -> "scheme://user:***@host"; "password=..." -> "password=***"
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|token|secret|api_key|apikey)=([^\s&'\"]+)")
MAX_ERROR = 500


def redact(text: str) -> str:
    """``text`` with passwords in URLs and ``password=...`` values masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}=***", text)


def failure_message(context: dict[str, Any]) -> tuple[str, str]:
    """Subject and text of the alert for a failed task instance."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    rendered = getattr(ti, "rendered_map_index", None)
    source = rendered or (str(map_index) if map_index not in (None, -1) else None)
    interval = context.get("data_interval_start")
    day = interval.date().isoformat() if interval is not None else str(context.get("logical_date") or "?")
    error = context.get("exception")
    first_line = redact(
        str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    )
    if len(first_line) > MAX_ERROR:
        first_line = first_line[:MAX_ERROR] + "..."
    where = f"{task_id}[{source}]" if source else task_id
    subject = f"[engage] {dag_id}: {where} failed for {day}"
    lines = [
        f"DAG:     {dag_id}",
        f"Task:    {where}",
        f"Day:     {day}",
        f"Try:     {getattr(ti, 'try_number', '?')}",
        f"Error:   {type(error).__name__ + ': ' if error is not None else ''}{first_line}",
    ]
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"Log:     {log_url}")
    return subject, "\n".join(lines) + "\n"


def task_failure_alert(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: send the alert; never raise."""
    try:
        from engage.delivery import send_alert
        from engage.settings import load_settings

        subject, text = failure_message(context)
        done = send_alert(load_settings(), subject, text)
        log.info("failure alert: %s", ", ".join(done) if done else "no alert destination configured")
    except Exception as exc:  # noqa: BLE001 - an alert must never hide the task's own failure
        log.warning("could not send the failure alert: %s", redact(str(exc)))
