"""``engage forget`` and ``engage quality``: privacy requests and data-quality checks."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

import click
from tabulate import tabulate

from engage.errors import ConfigError, EngageError

ISO_DAY = click.DateTime(formats=["%Y-%m-%d"])


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@click.command()
@click.option("--email", help="The person's e-mail address.")
@click.option("--handle", help="The person's handle on a source (with or without @).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget(email: str | None, handle: str | None, yes: bool) -> None:
    """Remove a person from every table and from the raw landing (a privacy request).

    Name the person by exactly one of --email or --handle. Prints what was
    removed (counts only); running it again removes nothing more.
    """
    from engage.pipeline import open_warehouse
    from engage.privacy import forget as forget_person
    from engage.settings import load_settings

    if bool(email) == bool(handle):
        _fail("name the person by exactly one of --email or --handle", code=2)
    if not yes:
        click.confirm("Remove this person's data everywhere? This cannot be undone", abort=True)
    settings = load_settings()
    try:
        report = forget_person(settings, engine=open_warehouse(settings), email=email, handle=handle)
    except EngageError as exc:
        _fail(str(exc))
    rows = sorted(report.removed.items())
    if not rows and not report.files:
        click.echo("Nothing found: no table or file holds this person (any more).")
        return
    if rows:
        click.echo(tabulate(rows, headers=["table", "rows removed"]))
    click.echo(
        f"{len(report.files)} raw response(s) or staged result(s) removed or rewritten under {settings.home}"
    )


@click.command()
@click.option(
    "--date",
    "run_date",
    type=ISO_DAY,
    default=lambda: datetime.now(UTC).strftime("%Y-%m-%d"),
    show_default="today (UTC)",
    help="The day to check (YYYY-MM-DD).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list the checks that passed.")
def quality(run_date: datetime, show_all: bool) -> None:
    """Run the data-quality checks on a day; exit 1 when one finds wrong data.

    Warnings (a stale source, an unusual row count) are printed and exit 0.
    """
    from engage.config import load_sources
    from engage.pipeline import open_warehouse
    from engage.settings import load_settings
    from transforms.quality import check_day

    settings = load_settings()
    try:
        config = load_sources(settings.sources_path)
        report = check_day(
            settings,
            config,
            date.fromisoformat(run_date.strftime("%Y-%m-%d")),
            engine=open_warehouse(settings),
        )
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except EngageError as exc:
        _fail(str(exc))
    shown = [r for r in report.results if show_all or not r.passed]
    if shown:
        click.echo(
            tabulate(
                [
                    (r.severity if not r.passed else "ok", r.check_name, r.subject, r.detail or "")
                    for r in shown
                ],
                headers=["result", "check", "subject", "detail"],
            )
        )
    click.echo(
        f"{len(report.results)} checks: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    if report.errors:
        sys.exit(1)
