"""The ``targets:``, ``reports:`` and ``alerts:`` sections of the sources file.

```yaml
targets:                    # KPI targets per 7 days, all sources together
  our_replies: 20           # a number: at least this much
  new_engagement: 200
  median_response_minutes: {max: 120}   # at most this much
reports:
  window_days: 7            # "recent engagement": the last N days (default 7)
  detail_accounts: 25       # accounts shown in full (people, items, chart) per report
  recipients:               # e-mail addresses per sales owner; "all": the report for everyone
    all: [marketing@acme.example]
    Sam Seller: [sam@acme.example]
  webhook_url: https://hooks.example.com/engage   # or ENGAGE_WEBHOOK_URL
alerts:
  wait_hours: 24            # a thread of ours waits this long for our answer
  email: [sales-alerts@acme.example]
  webhook_url: https://hooks.example.com/alerts   # or ENGAGE_ALERT_WEBHOOK_URL
  to_owners: true           # also e-mail an account's alerts to its owner's recipients
```

Every section is optional. A mistake raises ``ConfigError`` naming the file
and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engage.errors import ConfigError

KPI_KEYS = (
    "items_published",
    "our_items_published",
    "threads_started_by_us",
    "threads_started_by_others",
    "replies",
    "our_replies",
    "our_follow_ups",
    "threads_answered",
    "new_engagement",
    "followers_change",
    "referrals",
    "decision_maker_days",
    "prospect_days",
    "median_response_minutes",
)
EMAIL_RE = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")


@dataclass(frozen=True)
class Target:
    value: float
    direction: str = "min"  # min: at least; max: at most

    def met(self, actual: float | None) -> bool | None:
        if actual is None:
            return None
        return actual >= self.value if self.direction == "min" else actual <= self.value


@dataclass(frozen=True)
class ReportConfig:
    targets: dict[str, Target] = field(default_factory=dict)
    window_days: int = 7
    detail_accounts: int = 25
    recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)
    webhook_url: str | None = None
    wait_hours: float = 24.0
    alert_emails: tuple[str, ...] = ()
    alert_webhook_url: str | None = None
    alerts_to_owners: bool = True


def _fail(path: Path | str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}")


def _mapping(path: Path | str, where: str, raw: Any, allowed: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a mapping")
    for key in raw:
        if key not in allowed:
            raise _fail(
                path, f"{where}, field {key!r}", f"unknown; the fields are {', '.join(sorted(allowed))}"
            )
    return raw


def _number(path: Path | str, where: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and value <= 0):
        raise _fail(path, where, f"{value!r} is not a {'positive ' if positive else ''}number")
    return float(value)


def _emails(path: Path | str, where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(path, where, "must be an e-mail address or a list of them")
    for address in value:
        if not isinstance(address, str) or not EMAIL_RE.match(address.strip()):
            raise _fail(path, where, f"{address!r} is not an e-mail address")
    return tuple(a.strip() for a in value)


def _http_url(path: Path | str, where: str, value: Any) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        # Never echo the URL: webhook URLs carry their secret in the path.
        raise _fail(path, where, "is not an http(s) URL")
    return value


def load_report_config(extra: dict[str, Any], path: Path | str = "sources file") -> ReportConfig:
    """Validate the report sections found in ``SourcesConfig.extra``."""
    targets_raw = extra.get("targets") or {}
    if not isinstance(targets_raw, dict):
        raise _fail(
            path, "targets", f"must be a mapping of KPI to target; the KPIs are {', '.join(KPI_KEYS)}"
        )
    targets = {}
    for key, raw in targets_raw.items():
        where = f"targets, field {key!r}"
        if key not in KPI_KEYS:
            raise _fail(path, where, f"unknown KPI; the KPIs are {', '.join(KPI_KEYS)}")
        if isinstance(raw, dict):
            if len(raw) != 1 or next(iter(raw)) not in ("min", "max"):
                raise _fail(path, where, "must be a number, {min: N} or {max: N}")
            direction, value = next(iter(raw.items()))
            targets[key] = Target(_number(path, where, value), direction)
        else:
            direction = "max" if key == "median_response_minutes" else "min"
            targets[key] = Target(_number(path, where, raw), direction)

    reports = _mapping(
        path, "reports", extra.get("reports"), {"window_days", "detail_accounts", "recipients", "webhook_url"}
    )
    window = reports.get("window_days", 7)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 90:
        raise _fail(
            path, "reports, field 'window_days'", f"{window!r} is not a whole number of days from 1 to 90"
        )
    detail = reports.get("detail_accounts", 25)
    if isinstance(detail, bool) or not isinstance(detail, int) or not 0 <= detail <= 500:
        raise _fail(
            path, "reports, field 'detail_accounts'", f"{detail!r} is not a whole number from 0 to 500"
        )
    recipients_raw = reports.get("recipients") or {}
    if not isinstance(recipients_raw, dict):
        raise _fail(
            path,
            "reports, field 'recipients'",
            "must be a mapping of sales owner (or 'all') to e-mail addresses",
        )
    recipients = {
        str(owner): _emails(path, f"reports, field 'recipients', owner {str(owner)!r}", value)
        for owner, value in recipients_raw.items()
    }

    alerts = _mapping(
        path, "alerts", extra.get("alerts"), {"wait_hours", "email", "webhook_url", "to_owners"}
    )
    wait = _number(path, "alerts, field 'wait_hours'", alerts.get("wait_hours", 24), positive=True)
    to_owners = alerts.get("to_owners", True)
    if not isinstance(to_owners, bool):
        raise _fail(path, "alerts, field 'to_owners'", "must be true or false")
    return ReportConfig(
        targets=targets,
        window_days=window,
        detail_accounts=detail,
        recipients=recipients,
        webhook_url=_http_url(path, "reports, field 'webhook_url'", reports.get("webhook_url")),
        wait_hours=wait,
        alert_emails=_emails(path, "alerts, field 'email'", alerts["email"]) if alerts.get("email") else (),
        alert_webhook_url=_http_url(path, "alerts, field 'webhook_url'", alerts.get("webhook_url")),
        alerts_to_owners=to_owners,
    )
