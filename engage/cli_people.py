"""``engage crm``, ``engage referrals``, ``engage match`` and ``engage facts``."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import click

from engage.errors import EngageError


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _engine():  # type: ignore[no-untyped-def]
    from engage.pipeline import open_warehouse
    from engage.settings import load_settings

    return open_warehouse(load_settings())


@click.group()
def crm() -> None:
    """Prospects and accounts from your CRM."""


@crm.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def crm_import(path: Path) -> None:
    """Import a Salesforce or HubSpot contacts export (CSV), then match authors."""
    from transforms.people import import_crm, match_authors

    try:
        engine = _engine()
        counts = import_crm(engine, path)
        matched = match_authors(engine)
    except EngageError as exc:
        _fail(str(exc), code=2)
    click.echo(
        f"{counts.prospects} prospects ({counts.decision_makers} decision makers) in {counts.accounts} accounts; "
        f"{matched} authors matched"
    )


@click.group()
def referrals() -> None:
    """Referrals to our content from web analytics."""


@referrals.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", help="Base URL for landing pages given as paths, e.g. https://www.acme.com")
def referrals_import(path: Path, site: str | None) -> None:
    """Import a referrals CSV (date, referrer, landing page, sessions, UTM columns)."""
    from transforms.referrals import import_referrals

    try:
        count = import_referrals(_engine(), path, site=site)
    except EngageError as exc:
        _fail(str(exc), code=2)
    click.echo(f"{count} referral rows loaded from {path}")


@click.group()
def match() -> None:
    """Matching collected authors to prospects."""


@match.command("run")
def match_run() -> None:
    """Match every author again (after CRM or override changes)."""
    from transforms.people import match_authors

    try:
        count = match_authors(_engine())
    except EngageError as exc:
        _fail(str(exc))
    click.echo(f"{count} authors matched")


@match.command("override")
@click.argument("source_name")
@click.argument("author_external_id")
@click.option("--prospect", "prospect_crm_id", help="The prospect's CRM id.")
@click.option("--none", "no_match", is_flag=True, help="This author is nobody in the CRM.")
@click.option("--note")
def match_override(
    source_name: str, author_external_id: str, prospect_crm_id: str | None, no_match: bool, note: str | None
) -> None:
    """Set the prospect of an author by hand, or mark a confirmed non-match."""
    from transforms.people import match_authors, set_override

    if bool(prospect_crm_id) == no_match:
        _fail("give either --prospect CRM_ID or --none", code=2)
    try:
        engine = _engine()
        set_override(engine, source_name, author_external_id, prospect_crm_id, note)
        match_authors(engine)
    except EngageError as exc:
        _fail(str(exc), code=2)
    click.echo("override saved and matches updated")


@click.group()
def facts() -> None:
    """The daily fact tables."""


@facts.command("build")
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="Rebuild every day up to this one.")
def facts_build(day, until) -> None:  # type: ignore[no-untyped-def]
    """Rebuild the facts of one day (or a range of days)."""
    from transforms.facts import build_facts_for_date

    first: date = day.date()
    last: date = until.date() if until else first
    try:
        engine = _engine()
        current = first
        while current <= last:
            counts = build_facts_for_date(engine, current)
            click.echo(
                f"{current}: {counts.sources} sources, {counts.accounts} accounts, {counts.stage_changes} stage changes"
            )
            current += timedelta(days=1)
    except EngageError as exc:
        _fail(str(exc))
