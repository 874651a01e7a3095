"""The ``engage`` command (click).

Exit codes: 0 all well; 1 a source failed (after every other source was
loaded) or a check failed; 2 bad usage or configuration.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, date, datetime
from typing import Any

import click
from tabulate import tabulate

from engage.errors import ConfigError, EngageError


def _today() -> date:
    return datetime.now(UTC).date()


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date in the form YYYY-MM-DD", param, ctx)


DATE = DateType()


# Options of both `engage collect` and `engage run`.
RUN_DATE_OPTION = click.option(
    "--date",
    "run_date",
    type=DATE,
    default=_today,
    show_default="today (UTC)",
    help="Logical date of the run.",
)
WORKERS_OPTION = click.option(
    "--workers",
    type=int,
    default=None,
    show_default="64, or one per 4 sources up to 256",
    help="Sources fetched at once (threads; each host still gets at most its max_concurrency).",
)
PROCESSES_OPTION = click.option(
    "--processes",
    type=int,
    default=None,
    show_default="the CPUs (at most 4) from 100 sources on, else 1",
    help="Worker processes the hosts are split among; each fetches and parses its hosts on its share of the --workers threads.",
)


def _settings():  # type: ignore[no-untyped-def]
    from engage.settings import load_settings

    return load_settings()


def _config(settings):  # type: ignore[no-untyped-def]
    from engage.config import load_sources

    return load_sources(settings.sources_path)


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


class _Commands(click.Group):
    """Every command: a ConfigError it does not handle itself (a bad ENGAGE_* setting,
    say) is a one-line error and exit code 2, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc), code=2)


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="engage")
def main(verbose: bool) -> None:
    """engage: collect forum, feed and social engagement into a SQL warehouse."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.command()
def init() -> None:
    """Create the warehouse, or migrate it to the current schema."""
    from engage.warehouse.db import make_engine, migrate

    settings = _settings()
    try:
        revision = migrate(make_engine(settings.warehouse_url))
    except EngageError as exc:
        _fail(str(exc))
    click.echo(f"warehouse {_safe_url(settings.warehouse_url)} is at schema revision {revision}")


def _safe_url(url: str) -> str:
    """The URL with any password hidden (secrets never reach logs)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def sources() -> None:
    """Inspect the sources file."""


@sources.command("check")
@click.option(
    "--file", "path", type=click.Path(dir_okay=False), help="Sources file (default: $ENGAGE_SOURCES)."
)
def sources_check(path: str | None) -> None:
    """Validate the sources file and list the sources."""
    from engage.config import load_sources

    settings = _settings()
    try:
        config = load_sources(path or settings.sources_path)
    except ConfigError as exc:
        _fail(str(exc), code=2)
    rows = [
        (s.name, s.kind, s.url, "yes" if s.own else "", "" if s.enabled else "disabled")
        for s in config.sources
    ]
    click.echo(tabulate(rows, headers=["source", "kind", "url", "own", "state"]))
    click.echo(f"\n{config.path}: {len(config.sources)} sources, all valid")


def _print_summary(summary: list[Any]) -> None:
    rows = [
        (
            s.source,
            s.kind,
            s.status,
            s.http_status or "",
            s.items_collected,
            s.items_total,
            s.observations_today,
            (s.error or "")[:70],
        )
        for s in summary
    ]
    click.echo(
        tabulate(
            rows,
            headers=[
                "source",
                "kind",
                "status",
                "http",
                "items fetched",
                "items in warehouse",
                "observations today",
                "problem",
            ],
        )
    )


def _report_failures(summary: list[Any]) -> None:
    from engage.pipeline import failed_sources

    failed = failed_sources(summary)
    if failed:
        click.secho(f"\n{len(failed)} source(s) failed; the others were loaded:", fg="red", err=True)
        for s in failed:
            click.secho(f"  {s.source}: {s.error or s.status}", fg="red", err=True)
        sys.exit(1)


@main.command()
@RUN_DATE_OPTION
@click.option("--source", "names", multiple=True, help="Only these sources (repeatable).")
@WORKERS_OPTION
@PROCESSES_OPTION
def collect(run_date: date, names: tuple[str, ...], workers: int | None, processes: int | None) -> None:
    """Collect sources for a day and load them into the warehouse."""
    from dataclasses import replace

    from engage import pipeline

    settings = _settings()
    try:
        config = _config(settings)
        if names:
            chosen = [config.get(n) for n in names]
            config = replace(config, sources=tuple(chosen))
        engine = pipeline.open_warehouse(settings)
        pipeline.collect_all(
            settings,
            config,
            run_date,
            engine=engine,
            max_workers=pipeline.default_workers(config, workers),
            processes=pipeline.default_processes(config, processes),
        )
        pipeline.load_day(settings, config, run_date, engine=engine)
        summary = pipeline.summarize_day(settings, config, run_date, engine=engine)
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except EngageError as exc:
        _fail(str(exc))
    _print_summary(summary)
    _report_failures(summary)


@main.command()
@RUN_DATE_OPTION
@WORKERS_OPTION
@PROCESSES_OPTION
def run(run_date: date, workers: int | None, processes: int | None) -> None:
    """The whole daily pipeline without the scheduler (same steps as the DAG)."""
    from engage import pipeline

    settings = _settings()
    try:
        config = _config(settings)
        summary = pipeline.run_day(
            settings,
            config,
            run_date,
            max_workers=pipeline.default_workers(config, workers),
            processes=pipeline.default_processes(config, processes),
        )
    except ConfigError as exc:
        _fail(str(exc), code=2)
    except EngageError as exc:
        _fail(str(exc))
    _print_summary(summary)
    _report_failures(summary)


@main.command()
@click.option("--date", "run_date", type=DATE, default=_today, show_default="today (UTC)")
def summary(run_date: date) -> None:
    """What the warehouse holds for a day, per source."""
    from engage import pipeline

    settings = _settings()
    try:
        config = _config(settings)
        rows = pipeline.summarize_day(settings, config, run_date)
    except EngageError as exc:
        _fail(str(exc))
    _print_summary(rows)


@main.command()
@click.option("--date", "run_date", type=DATE, default=lambda: date(2026, 11, 20), show_default="2026-11-20")
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Run through `airflow dags test` (else the same steps in-process).",
)
def demo(run_date: date, scheduler: bool) -> None:
    """One full daily run on bundled sample sources served on loopback."""
    from engage.demo import run_demo

    try:
        code = run_demo(run_date, use_airflow=scheduler, echo=click.echo)
    except EngageError as exc:
        _fail(str(exc))
    sys.exit(code)


@main.command("demo-server")
@click.option("--port", default=8765, show_default=True)
def demo_server(port: int) -> None:
    """Serve the bundled sample sources on 127.0.0.1 until interrupted."""
    from engage.demo import serve_forever

    serve_forever(port, echo=click.echo)


# Command groups of other areas live in their own modules.
from engage.cli_model import label as _label_group  # noqa: E402
from engage.cli_model import model as _model_group  # noqa: E402
from engage.cli_people import crm as _crm_group  # noqa: E402
from engage.cli_people import facts as _facts_group  # noqa: E402
from engage.cli_people import match as _match_group  # noqa: E402
from engage.cli_people import referrals as _referrals_group  # noqa: E402
from engage.cli_privacy import forget as _forget_command  # noqa: E402
from engage.cli_privacy import quality as _quality_command  # noqa: E402
from engage.cli_raw import raw as _raw_group  # noqa: E402
from engage.cli_raw import reparse as _reparse_command  # noqa: E402
from engage.cli_reports import report as _report_command  # noqa: E402

main.add_command(_model_group)
main.add_command(_forget_command)
main.add_command(_quality_command)
main.add_command(_label_group)
main.add_command(_crm_group)
main.add_command(_referrals_group)
main.add_command(_match_group)
main.add_command(_facts_group)
main.add_command(_reparse_command)
main.add_command(_raw_group)
main.add_command(_report_command)

if __name__ == "__main__":  # pragma: no cover
    main()
