"""``engage report``: the day's reports for sales and marketing, as HTML and CSV files."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from engage.errors import ConfigError, EngageError


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


@click.command("report")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The report date (YYYY-MM-DD); default: yesterday (UTC).",
)
@click.option("--owner", help="Only this sales owner's prospect report (as in the CRM's owner field).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Reports folder (default: $ENGAGE_HOME/reports); the files go in OUT/YYYY-MM-DD/.",
)
@click.option(
    "--send/--no-send",
    default=False,
    show_default=True,
    help="Also e-mail / post the reports and new alerts where the sources file says.",
)
def report(day: datetime | None, owner: str | None, out: Path | None, send: bool) -> None:
    """Write the prospect-engagement, KPI and alert reports of a day."""
    from engage.config import load_sources
    from engage.pipeline import open_warehouse
    from engage.reports.daily import deliver, report_config_of, write_reports
    from engage.settings import load_settings

    settings = load_settings()
    run_date = day.date() if day else _yesterday()
    root = (out or settings.reports_dir).resolve()
    try:
        config = report_config_of(load_sources(settings.sources_path))
        result = write_reports(open_warehouse(settings), run_date, root, config, owner=owner)
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except EngageError as exc:
        _fail(str(exc))
    new = sum(1 for a in result.alerts if a.new)
    click.echo(f"{run_date}: {result.accounts} accounts, {len(result.alerts)} alerts ({new} new)")
    click.echo(f"reports: {result.index}")
    click.echo(f"all dates: {root / 'index.html'}")
    if send:
        attempts = deliver(result, config, root)
        for a in attempts:
            line = f"{a.channel} {a.what} to {a.to}: {a.status}" + (f" ({a.error})" if a.error else "")
            click.secho(line, fg="red" if a.status != "sent" else None, err=a.status != "sent")
        if not attempts:
            click.echo("nothing to send: no recipients or webhook configured")
        if result.failed_deliveries:
            sys.exit(1)
