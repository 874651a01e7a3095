"""``engage reparse`` and ``engage raw prune``: the landed raw responses (``engage.raw``)."""

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
@click.option(
    "--date",
    "run_date",
    type=ISO_DAY,
    required=True,
    help="The day whose raw responses to re-parse (YYYY-MM-DD).",
)
@click.option(
    "--source",
    "names",
    multiple=True,
    help="Only this source (repeatable; default: every source with raw data that day).",
)
def reparse(run_date: datetime, names: tuple[str, ...]) -> None:
    """Re-parse a day from its raw responses and load it again, without any HTTP request.

    Loads are upserts, so this replaces the day's rows; the sources' cursors
    (ETag, watermark) and failure state are left as the latest collection set them.
    """
    from engage.config import load_sources
    from engage.raw import reparse_day
    from engage.settings import load_settings

    settings = load_settings()
    try:
        config = load_sources(settings.sources_path)
        outcomes = reparse_day(settings, config, run_date.date(), names=names)
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except EngageError as exc:
        _fail(str(exc))
    rows = [
        (
            o.source,
            o.status,
            o.responses,
            o.authors,
            o.items,
            o.observations,
            (o.error or "; ".join(o.warnings))[:70],
        )
        for o in outcomes
    ]
    click.echo(
        tabulate(
            rows, headers=["source", "status", "responses", "authors", "items", "observations", "problem"]
        )
    )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        click.secho(
            f"\n{len(failed)} source(s) could not be re-parsed; the others were loaded", fg="red", err=True
        )
        sys.exit(1)


@click.group()
def raw() -> None:
    """The raw responses kept under $ENGAGE_HOME/raw/<date>/<source>/."""


@raw.command("prune")
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=None,
    help="Keep this many days (default: $ENGAGE_RAW_RETENTION_DAYS, 90).",
)
@click.option("--today", type=ISO_DAY, default=None, help="Reference day (default: today, UTC).")
def raw_prune(days: int | None, today: datetime | None) -> None:
    """Remove raw data older than the retention."""
    from engage.raw import prune_raw
    from engage.settings import load_settings

    settings = load_settings()
    keep = settings.raw_retention_days if days is None else days
    reference: date = today.date() if today else datetime.now(UTC).date()
    try:
        removed = prune_raw(settings.raw_dir, reference, keep)
    except EngageError as exc:
        _fail(str(exc), code=2)
    for folder in removed:
        click.echo(f"removed {folder}")
    click.echo(
        f"{len(removed)} day folder(s) older than {keep} days before {reference} removed from {settings.raw_dir}"
    )
