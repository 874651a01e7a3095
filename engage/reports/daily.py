"""Write a day's reports (HTML + CSV) under the reports folder, and deliver them.

Layout (``root`` is ``$ENGAGE_HOME/reports`` unless ``--out`` says otherwise)::

    root/index.html                      every date with reports
    root/alert-state.json                alerts already reported / sent (de-duplication)
    root/YYYY-MM-DD/index.html           that day's reports, CSV files and delivery results
    root/YYYY-MM-DD/prospects.html       all owners; prospects-<owner>.html per sales owner
    root/YYYY-MM-DD/kpis.html, alerts.html
    root/YYYY-MM-DD/*.csv                one beside each table
    root/YYYY-MM-DD/delivery.json        every delivery attempt (sent / failed, why)

HTML comes from Jinja2 templates with autoescaping on: collected text
(names, titles, posts) is always shown as text. Links are kept only when
http(s). Charts are SVG drawn by matplotlib, inlined. Pages load nothing:
no script, no remote style, font or image, and a Content-Security-Policy that
forbids them.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engage.files import write_atomic
from engage.reports import build, charts
from engage.reports.config import ReportConfig

log = logging.getLogger(__name__)

DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STATE_FILE = "alert-state.json"
STATE_KEEP_DAYS = 90
PENDING_RETRY_DAYS = 7
KIND_LABELS = {
    "decision_maker": "Decision maker engaged",
    "stage_forward": "Moved to a later stage",
    "thread_waiting": "Thread waits for us",
}


@dataclass
class ReportResult:
    day: date
    folder: Path
    files: list[Path] = field(default_factory=list)
    accounts: int = 0
    alerts: list[build.Alert] = field(default_factory=list)
    deliveries: list[Any] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.folder / "index.html"

    @property
    def failed_deliveries(self) -> list[Any]:
        return [d for d in self.deliveries if d.status != "sent"]


# --- helpers -------------------------------------------------------------------


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("engage.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=False,
    )
    return env


def owner_slug(owner: str, taken: set[str]) -> str:
    """A safe file-name part for a sales owner (letters, digits, '-'), unique in ``taken``."""
    slug = re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-")[:60] or "owner"
    candidate, n = slug, 2
    while candidate in taken:
        candidate, n = f"{slug}-{n}", n + 1
    taken.add(candidate)
    return candidate


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (CSV injection): text starting with = + - @ tab or CR gets a quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    text = str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([csv_cell(v) for v in row] for row in rows)
    return path


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _signed(value: float | None) -> str:
    if value is None:
        return "–"
    return ("+" if value > 0 else "") + _number(value)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _change_text(a: build.AccountEngagement) -> str:
    if a.change in ("forward", "backward"):
        return f"{a.change} from {a.previous_stage}"
    return {"new": "new", "steady": "no change", "none": "no stage"}[a.change]


def previous_report_date(root: Path, day: date) -> date | None:
    """The latest date before ``day`` with a prospect report in ``root``."""
    if not root.is_dir():
        return None
    dates = [
        date.fromisoformat(p.name)
        for p in root.iterdir()
        if p.is_dir() and DATE_DIR.match(p.name) and (p / "prospects.html").exists()
    ]
    earlier = [d for d in dates if d < day]
    return max(earlier) if earlier else None


# --- alert state -----------------------------------------------------------------


def load_state(root: Path) -> dict[str, dict[str, Any]]:
    path = root / STATE_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        alerts = data.get("alerts", {})
        return alerts if isinstance(alerts, dict) else {}
    except (ValueError, AttributeError):
        log.warning("%s is unreadable; alerts start afresh", path)
        return {}


def save_state(root: Path, state: dict[str, dict[str, Any]], day: date) -> None:
    oldest = (day - timedelta(days=STATE_KEEP_DAYS)).isoformat()
    kept = {k: v for k, v in state.items() if str(v.get("first_date", "")) >= oldest}
    write_atomic(root / STATE_FILE, json.dumps({"alerts": kept}, indent=1, sort_keys=True))


def mark_alerts(alerts: list[build.Alert], state: dict[str, dict[str, Any]], day: date) -> None:
    """``new``: first reported on this date (a rerun of the date keeps them new)."""
    for a in alerts:
        seen = state.get(a.key)
        if seen is None:
            state[a.key] = {
                "first_date": day.isoformat(),
                "sent": False,
                "kind": a.kind,
                "account": a.account,
                "owner": a.owner,
                "text": a.text,
                "url": a.url,
            }
            a.new = True
        else:
            a.new = seen.get("first_date") == day.isoformat()


# --- writing ---------------------------------------------------------------------


def write_reports(
    engine: Engine, day: date, root: Path, config: ReportConfig, *, owner: str | None = None
) -> ReportResult:
    """Build every report of ``day`` into ``root/day/`` and update ``root/index.html``.

    ``owner``: only that sales owner's prospect report (plus the KPIs and alerts).
    """
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    env = _environment()
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    common = {"day": day, "generated_at": generated}
    result = ReportResult(day, folder)

    report = build.build_prospect_report(
        engine, day, window_days=config.window_days, compared_with=previous_report_date(root, day)
    )
    owners = [owner] if owner else report.owners
    chart_cache: dict[int, str] = {}
    taken: set[str] = set()
    owner_files = []
    pages = [(None, "prospects")] if owner is None else []
    for name in owners:
        pages.append((name, f"prospects-{owner_slug(name, taken)}"))
    for page_owner, stem in pages:
        accounts = report.for_owner(page_owner)
        detail = accounts[: config.detail_accounts]
        for a in detail:
            if a.account_id not in chart_cache:
                chart_cache[a.account_id] = charts.timeline_svg(
                    a.timeline_days, a.timeline_items, a.timeline_decision_makers, salt=str(a.account_id)
                )
        csv_accounts, csv_items = f"{stem}.csv", f"{stem}-items.csv"
        html = env.get_template("prospects.html.j2").render(
            **common,
            owner=page_owner,
            accounts=accounts,
            detail=detail,
            charts=chart_cache,
            window_start=report.window_start,
            window_days=config.window_days,
            compared_with=report.compared_with,
            compared_with_report=report.compared_with_report,
            csv_accounts=csv_accounts,
            csv_items=csv_items,
            max_items=build.MAX_ITEMS_PER_ACCOUNT,
            change_text=_change_text,
            when=_when,
        )
        result.files.append(write_atomic(folder / f"{stem}.html", html))
        result.files.append(
            write_csv(
                folder / csv_accounts,
                [
                    "rank",
                    "account",
                    "domain",
                    "owner",
                    "target",
                    "stage",
                    "stage_since",
                    "previous_stage",
                    "change",
                    "items",
                    "decision_maker_items",
                    "people",
                    "decision_makers",
                ],
                [
                    [
                        i,
                        a.name,
                        a.domain,
                        a.owner,
                        a.is_target,
                        a.stage,
                        a.stage_since,
                        a.previous_stage,
                        a.change,
                        a.items,
                        a.decision_maker_items,
                        len(a.people),
                        a.decision_makers,
                    ]
                    for i, a in enumerate(accounts, 1)
                ],
            )
        )
        result.files.append(
            write_csv(
                folder / csv_items,
                [
                    "account",
                    "published_at",
                    "person",
                    "decision_maker",
                    "source",
                    "kind",
                    "text",
                    "url",
                    "thread",
                    "thread_url",
                    "our_thread",
                    "stage",
                ],
                [
                    [
                        a.name,
                        i.published_at,
                        i.person,
                        i.is_decision_maker,
                        i.source,
                        i.kind,
                        i.text,
                        i.url,
                        i.thread_text,
                        i.thread_url,
                        i.in_our_thread,
                        i.stage,
                    ]
                    for a in accounts
                    for i in a.engagement
                ],
            )
        )
        if page_owner is not None:
            owner_files.append({"owner": page_owner, "file": f"{stem}.html", "accounts": len(accounts)})
    result.accounts = len(report.for_owner(owner))

    kpi = build.build_kpi_report(engine, day, targets=config.targets, window_days=config.window_days)
    charted = [k for k in kpi.kpis if k.target is not None or any(v for v in k.values)]
    kpi_charts = {
        k.key: charts.kpi_svg(
            k.period_ends, k.values, k.target.value if k.target else None, k.label, salt=k.key
        )
        for k in charted
    }
    half_chart = charts.half_life_svg([b.bucket for b in kpi.half_life], [b.share for b in kpi.half_life])
    html = env.get_template("kpis.html.j2").render(
        **common,
        kpis=kpi.kpis,
        charted=charted,
        kpi_charts=kpi_charts,
        half_life=kpi.half_life,
        half_life_chart=half_chart,
        moving_content=kpi.moving_content,
        window_start=report.window_start,
        number=_number,
        signed=_signed,
    )
    result.files.append(write_atomic(folder / "kpis.html", html))
    result.files.append(
        write_csv(
            folder / "kpis.csv",
            ["kpi", "label", "period_end", "value", "target", "direction", "met"],
            [
                [
                    k.key,
                    k.label,
                    end,
                    v,
                    k.target.value if k.target else None,
                    k.target.direction if k.target else None,
                    (k.target.met(v) if k.target else None),
                ]
                for k in kpi.kpis
                for end, v in zip(k.period_ends, k.values, strict=True)
            ],
        )
    )
    result.files.append(
        write_csv(
            folder / "half-life.csv",
            ["age_bucket", "new_engagement", "share"],
            [[b.bucket, b.new_engagement, round(b.share, 4)] for b in kpi.half_life],
        )
    )
    result.files.append(
        write_csv(
            folder / "moving-content.csv",
            ["content", "url", "source", "accounts_moved", "accounts"],
            [[c.title, c.url, c.source, len(c.accounts), "; ".join(c.accounts)] for c in kpi.moving_content],
        )
    )

    alerts = build.build_alerts(engine, report, wait_hours=config.wait_hours)
    if owner:
        alerts = [a for a in alerts if a.owner == owner or not a.owner]
    state = load_state(root)
    mark_alerts(alerts, state, day)
    save_state(root, state, day)
    result.alerts = alerts
    html = env.get_template("alerts.html.j2").render(
        **common, alerts=alerts, wait_hours=config.wait_hours, kind_labels=KIND_LABELS
    )
    result.files.append(write_atomic(folder / "alerts.html", html))
    result.files.append(
        write_csv(
            folder / "alerts.csv",
            ["kind", "account", "owner", "text", "url", "new"],
            [[a.kind, a.account, a.owner, a.text, a.url, a.new] for a in alerts],
        )
    )
    if owner is not None:  # one owner's run keeps the other owners' pages on the day's index
        try:
            earlier = json.loads((folder / "day-index.json").read_text(encoding="utf-8")).get("owners", [])
        except (OSError, ValueError, AttributeError):
            earlier = []
        kept = [
            o
            for o in earlier
            if isinstance(o, dict) and o.get("owner") != owner and (folder / str(o.get("file"))).exists()
        ]
        owner_files = sorted(kept + owner_files, key=lambda o: str(o["owner"]))
    write_day_index(folder, day, account_count=len(report.accounts), owners=owner_files, alerts=alerts)
    result.files.append(folder / "index.html")
    write_root_index(root)
    return result


def _read_deliveries(folder: Path) -> list[dict[str, Any]]:
    path = folder / "delivery.json"
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("attempts", []))
    except (ValueError, AttributeError):
        return []


def write_day_index(
    folder: Path, day: date, *, account_count: int, owners: list[dict[str, Any]], alerts: list[build.Alert]
) -> Path:
    html = (
        _environment()
        .get_template("day_index.html.j2")
        .render(
            day=day,
            generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            account_count=account_count,
            has_all=(folder / "prospects.html").exists(),
            owners=owners,
            alert_count=len(alerts),
            new_alerts=sum(1 for a in alerts if a.new),
            csv_files=sorted(p.name for p in folder.glob("*.csv")),
            deliveries=_read_deliveries(folder),
        )
    )
    write_atomic(
        folder / "day-index.json",
        json.dumps(
            {
                "account_count": account_count,
                "owners": owners,
                "alerts": len(alerts),
                "new_alerts": sum(1 for a in alerts if a.new),
            }
        ),
    )
    return write_atomic(folder / "index.html", html)


def refresh_day_index(folder: Path, day: date) -> None:
    """Rewrite a day's index page after deliveries, from what was recorded."""
    try:
        meta = json.loads((folder / "day-index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    alerts = [
        build.Alert("", "", "", "", "", None, new=i < meta.get("new_alerts", 0))
        for i in range(meta.get("alerts", 0))
    ]
    write_day_index(
        folder, day, account_count=meta.get("account_count", 0), owners=meta.get("owners", []), alerts=alerts
    )


def write_root_index(root: Path) -> Path:
    dates = sorted(
        (
            p.name
            for p in root.iterdir()
            if p.is_dir() and DATE_DIR.match(p.name) and (p / "index.html").exists()
        ),
        reverse=True,
    )
    html = (
        _environment()
        .get_template("root_index.html.j2")
        .render(
            day=dates[0] if dates else "",
            generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            dates=dates,
        )
    )
    return write_atomic(root / "index.html", html)


# --- delivery ------------------------------------------------------------------------


def _summary_text(result: ReportResult, owner: str | None, accounts: int) -> str:
    lines = [
        f"engage reports for {result.day}" + (f" ({owner})" if owner else ""),
        f"{accounts} accounts engaged.",
    ]
    mine = [a for a in result.alerts if a.new and (owner is None or a.owner == owner)]
    if mine:
        lines.append("New alerts:")
        lines += [f"- {a.text}" + (f" {a.url}" if a.url else "") for a in mine[:50]]
    lines.append(f"The reports are attached and in {result.folder}.")
    return "\n".join(lines)


def deliver(
    result: ReportResult, config: ReportConfig, root: Path, env: dict[str, str] | None = None
) -> list[Any]:
    """Send the reports and the new alerts where configured; record every attempt. Never raises.

    Reports: each ``reports.recipients`` owner gets their prospect report and
    the KPIs by e-mail (``all``: the report for everyone); the webhook gets a
    summary with the new alerts. Failed report deliveries are recorded in
    ``delivery.json`` and shown on the day's index page, not retried (the next
    day's report supersedes them). Alerts: new ones (and earlier ones whose
    sending failed, for up to 7 days) go to ``alerts.email``, the owner's
    recipients and the alert webhook; only a successful send marks them sent.
    """
    from engage import delivery

    env = dict(os.environ if env is None else env)
    attempts: list[Any] = []
    try:
        smtp = delivery.smtp_settings(env)
    except Exception as exc:  # noqa: BLE001 - a bad setting is recorded, never fatal
        smtp = None
        attempts.append(delivery.Attempt("reports", "email", "-", "failed", str(exc)))
    folder = result.folder
    meta = (
        json.loads((folder / "day-index.json").read_text(encoding="utf-8"))
        if (folder / "day-index.json").exists()
        else {}
    )
    owner_files = {o["owner"]: o for o in meta.get("owners", [])}

    for owner, addresses in config.recipients.items():
        if owner == "all":
            files, count, label = (
                [folder / "prospects.html", folder / "kpis.html"],
                meta.get("account_count", 0),
                None,
            )
        elif owner in owner_files:
            files, count, label = (
                [folder / owner_files[owner]["file"], folder / "kpis.html"],
                owner_files[owner]["accounts"],
                owner,
            )
        else:
            continue
        files = [f for f in files if f.exists()]
        subject = f"engage: prospect engagement {result.day}" + (f" ({label})" if label else "")
        text = _summary_text(result, label, count)
        if smtp is None:
            attempts.append(
                delivery.Attempt(
                    files[0].name if files else "reports",
                    "email",
                    ", ".join(addresses),
                    "failed",
                    "no SMTP server configured (ENGAGE_SMTP_URL or the engage_smtp connection)",
                )
            )
            continue
        attempts.append(
            delivery.attempt(
                files[0].name if files else "reports",
                "email",
                ", ".join(addresses),
                lambda a=addresses, s=subject, t=text, f=files: delivery.send_email(smtp, a, s, t, f),
            )
        )
    webhook = env.get("ENGAGE_WEBHOOK_URL") or config.webhook_url
    if webhook:
        payload = {
            "text": _summary_text(result, None, meta.get("account_count", result.accounts)),
            "date": result.day.isoformat(),
            "folder": str(folder),
            "files": sorted(p.name for p in folder.glob("*.html")),
            "alerts": [
                {"kind": a.kind, "account": a.account, "owner": a.owner, "text": a.text, "url": a.url}
                for a in result.alerts
                if a.new
            ],
        }
        attempts.append(
            delivery.attempt(
                "reports",
                "webhook",
                delivery.webhook_label(webhook),
                lambda: delivery.post_webhook(webhook, payload),
            )
        )
    attempts += _deliver_alerts(result, config, root, smtp, env)
    if attempts:
        delivery.record_attempts(folder, attempts)
        refresh_day_index(folder, result.day)
    result.deliveries = attempts
    return attempts


def _deliver_alerts(
    result: ReportResult, config: ReportConfig, root: Path, smtp: Any, env: dict[str, str]
) -> list[Any]:
    from engage import delivery

    webhook = env.get("ENGAGE_ALERT_WEBHOOK_URL") or config.alert_webhook_url
    if not (config.alert_emails or webhook or (config.alerts_to_owners and config.recipients)):
        return []
    state = load_state(root)
    oldest = (result.day - timedelta(days=PENDING_RETRY_DAYS)).isoformat()
    pending = {
        k: v
        for k, v in state.items()
        if not v.get("sent") and oldest <= str(v.get("first_date", "")) <= result.day.isoformat()
    }
    if not pending:
        return []
    attempts = []
    # Group per set of addresses: the alerts list, and each owner's recipients.
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, alert in pending.items():
        addresses = list(config.alert_emails)
        if config.alerts_to_owners and alert.get("owner") in config.recipients:
            addresses += [a for a in config.recipients[alert["owner"]] if a not in addresses]
        if addresses:
            groups.setdefault(tuple(addresses), []).append(key)
    ok: dict[str, bool] = {key: True for key in pending}
    for addresses, keys in groups.items():
        text = "\n".join(
            f"- [{KIND_LABELS.get(pending[k].get('kind', ''), 'Alert')}] {pending[k].get('text')}"
            + (f" {pending[k]['url']}" if pending[k].get("url") else "")
            for k in keys
        )
        subject = f"engage alerts {result.day}: {len(keys)}"
        if smtp is None:
            a = delivery.Attempt(
                "alerts", "email", ", ".join(addresses), "failed", "no SMTP server configured"
            )
        else:
            a = delivery.attempt(
                "alerts",
                "email",
                ", ".join(addresses),
                lambda ad=addresses, s=subject, t=text: delivery.send_email(smtp, ad, s, t),
            )
        attempts.append(a)
        if a.status != "sent":
            for k in keys:
                ok[k] = False
    if webhook:
        payload = {
            "text": f"engage alerts {result.day}",
            "date": result.day.isoformat(),
            "alerts": [
                {k2: v.get(k2) for k2 in ("kind", "account", "owner", "text", "url")}
                for v in pending.values()
            ],
        }
        a = delivery.attempt(
            "alerts",
            "webhook",
            delivery.webhook_label(webhook),
            lambda: delivery.post_webhook(webhook, payload),
        )
        attempts.append(a)
        if a.status != "sent":
            ok = dict.fromkeys(ok, False)
    state = load_state(root)
    for key, sent in ok.items():
        if sent and key in state:
            state[key]["sent"] = True
    save_state(root, state, result.day)
    return attempts


# --- the daily step ------------------------------------------------------------------


def report_config_of(sources_config: Any) -> ReportConfig:
    from engage.reports.config import load_report_config

    return load_report_config(sources_config.extra, sources_config.path)


def report_step(
    settings: Any, config: Any, run_date: date, *, engine: Engine, send: bool = True
) -> ReportResult:
    """The daily run's last step: write the day's reports and deliver them.

    A delivery that fails is recorded (``delivery.json``) and logged as a
    warning; it never fails the day.
    """
    report_config = report_config_of(config)
    result = write_reports(engine, run_date, settings.reports_dir, report_config)
    if send:
        deliver(result, report_config, settings.reports_dir)
        for failed in result.failed_deliveries:
            log.warning(
                "report delivery failed: %s by %s to %s: %s",
                failed.what,
                failed.channel,
                failed.to,
                failed.error,
            )
    return result
