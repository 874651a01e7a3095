"""
### engagement_daily

Collects every enabled source of the sources file (`ENGAGE_SOURCES`) for the
run's data interval, loads the records into the warehouse, and summarises
the day.

- **list_<platform>** reads the sources file at run time (never at parse
  time): the enabled sources of that platform.
- **collect_<platform>** is mapped: one task instance per source, one
  mapped task per platform, each in its Airflow pool (`engage_feeds`,
  `engage_reddit`, ...; see `engage.pools` and `config/airflow_pools.json`)
  so that all workers together respect each service's limits. A source
  that fails fails only its own instance; the failure is recorded in
  `collection_run` and the other sources go on.
- **load** (runs when every collect has finished, failed or not) loads what
  was staged, one transaction per source; rerunning a day replaces it.
- **classify** labels new and changed items with the current stage model
  (items of an older model are reclassified by `stage_reclassify`, in the
  background).
- **check_quality** runs the data-quality checks on the day
  (`transforms.quality`): wrong data (duplicate or null keys, labels
  outside their domain, orphaned rows) fails the run loudly; a stale
  source or an unusual row count is printed as a warning and kept in
  `quality_check`.
- **build_facts** matches new authors to prospects and rebuilds the day's
  facts (`fct_*` tables, account stage history) in one transaction.
- **apply_retention** removes raw responses past their retention
  (`ENGAGE_RAW_RETENTION_DAYS`), and anonymises people never matched to a prospect and not
  seen for `ENGAGE_UNMATCHED_RETENTION_DAYS`.
- **report** writes the day's reports for sales and marketing (HTML and
  CSV under `$ENGAGE_HOME/reports/<date>/`, see docs/reports.md) and sends
  them and the new alerts where the sources file says. A failed delivery is
  recorded in the report folder and printed as a warning: it never fails
  the day.
- **summary** prints the counts per source and fails the run, after
  everything else is done, if any source failed.

The data interval is explicit: `CronDataIntervalTimetable` at midnight UTC.
The run that starts just after midnight on D+1 covers day D, [D, D+1);
a manual run or `airflow dags test engagement_daily D+1` does the same.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, TriggerRule, chain, dag, task

from engage.alerts import task_failure_alert
from engage.pools import POOLS, task_suffix

# Read from the environment only (no I/O): lets tests and the demo run
# without waiting minutes between retries.
RETRIES = int(os.environ.get("ENGAGE_TASK_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("ENGAGE_RETRY_DELAY_SECONDS", "300")))
MAX_PARALLEL_SOURCES = int(os.environ.get("ENGAGE_MAX_PARALLEL_SOURCES", "8"))
COLLECT_TIMEOUT_MINUTES = int(os.environ.get("ENGAGE_COLLECT_TIMEOUT_MINUTES", "30"))
STEP_TIMEOUT_MINUTES = int(os.environ.get("ENGAGE_STEP_TIMEOUT_MINUTES", "60"))


def _context_objects(data_interval_start: Any) -> tuple[Any, Any, Any]:
    from engage.config import load_sources
    from engage.settings import load_settings

    settings = load_settings()
    config = load_sources(settings.sources_path)
    return settings, config, data_interval_start.date()


@dag(
    dag_id="engagement_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["engage", "collect"],
    doc_md=__doc__,
    default_args={
        "owner": "marketing-ops",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=STEP_TIMEOUT_MINUTES),
        "on_failure_callback": task_failure_alert,
    },
)
def engagement_daily() -> None:
    @task
    def list_sources(pool: str) -> list[str]:
        from engage.config import load_sources
        from engage.pools import pool_of_kind
        from engage.settings import load_settings

        sources = load_sources(load_settings().sources_path).enabled()
        return [s.name for s in sources if pool_of_kind(s.kind) == pool]

    @task(
        max_active_tis_per_dagrun=MAX_PARALLEL_SOURCES,
        map_index_template="{{ source_name }}",
        execution_timeout=timedelta(minutes=COLLECT_TIMEOUT_MINUTES),
    )
    def collect(source_name: str, data_interval_start: Any = None) -> dict[str, Any]:
        from engage import pipeline

        settings, config, run_date = _context_objects(data_interval_start)
        return pipeline.collect_source(settings, config, source_name, run_date).to_dict()

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def load(data_interval_start: Any = None) -> dict[str, int]:
        from engage import pipeline

        settings, config, run_date = _context_objects(data_interval_start)
        outcomes = pipeline.load_day(settings, config, run_date)
        return {o.source: o.items for o in outcomes}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(data_interval_start: Any = None) -> list[dict[str, Any]]:
        from dataclasses import asdict

        from airflow.sdk.exceptions import AirflowFailException

        from engage import pipeline

        settings, config, run_date = _context_objects(data_interval_start)
        rows = pipeline.summarize_day(settings, config, run_date)
        for r in rows:
            print(
                f"{r.source:30} {r.status:13} http={r.http_status or '-':>4} "
                f"fetched={r.items_collected:5} total={r.items_total:7} obs={r.observations_today:6}"
            )
        failed = pipeline.failed_sources(rows)
        if failed:
            raise AirflowFailException(
                "sources failed: " + "; ".join(f"{r.source}: {r.error or r.status}" for r in failed)
            )
        return [asdict(r) for r in rows]

    @task
    def classify(data_interval_start: Any = None) -> dict[str, Any]:
        from engage import pipeline
        from transforms.classify import classify_day

        settings, config, run_date = _context_objects(data_interval_start)
        counts = classify_day(settings, config, run_date, engine=pipeline.open_warehouse(settings))
        return {"classified": counts.classified, "model_version": counts.model_version}

    @task
    def check_quality(data_interval_start: Any = None) -> dict[str, int]:
        from airflow.sdk.exceptions import AirflowFailException

        from engage import pipeline
        from engage.errors import DataQualityError
        from transforms.quality import quality_step

        settings, config, run_date = _context_objects(data_interval_start)
        try:
            report = quality_step(settings, config, run_date, engine=pipeline.open_warehouse(settings))
        except DataQualityError as exc:
            raise AirflowFailException(str(exc)) from None  # wrong data: retrying will not help
        for finding in report.warnings:
            print("WARNING", finding.describe())
        return {"checks": len(report.results), "warnings": len(report.warnings)}

    @task
    def build_facts(data_interval_start: Any = None) -> dict[str, int]:
        from engage import pipeline
        from transforms.facts import build_facts_day

        settings, config, run_date = _context_objects(data_interval_start)
        counts = build_facts_day(settings, config, run_date, engine=pipeline.open_warehouse(settings))
        return {"sources": counts.sources, "accounts": counts.accounts, "stage_changes": counts.stage_changes}

    @task
    def apply_retention(data_interval_start: Any = None) -> dict[str, int]:
        from engage import pipeline
        from engage.privacy import retention_step

        settings, config, run_date = _context_objects(data_interval_start)
        return retention_step(settings, config, run_date, engine=pipeline.open_warehouse(settings))

    @task
    def report(data_interval_start: Any = None) -> dict[str, Any]:
        from engage import pipeline
        from engage.reports.daily import report_step

        settings, config, run_date = _context_objects(data_interval_start)
        result = report_step(settings, config, run_date, engine=pipeline.open_warehouse(settings))
        print(f"reports: {result.index} ({result.accounts} accounts, {len(result.alerts)} alerts)")
        for failed in result.failed_deliveries:
            print(
                f"WARNING delivery failed: {failed.what} by {failed.channel} to {failed.to}: {failed.error}"
            )
        return {
            "index": str(result.index),
            "accounts": result.accounts,
            "alerts": len(result.alerts),
            "failed_deliveries": len(result.failed_deliveries),
        }

    collected = [
        collect.override(task_id=f"collect_{task_suffix(pool)}", pool=pool).expand(
            source_name=list_sources.override(task_id=f"list_{task_suffix(pool)}")(pool)
        )
        for pool in POOLS
    ]
    # The steps after the load, in the order of engage.pipeline.AFTER_LOAD.
    after_load = [load(), classify(), check_quality(), build_facts(), apply_retention(), report()]
    collected >> after_load[0]
    chain(*after_load, summary())


dag = engagement_daily()

if __name__ == "__main__":
    dag.test()
