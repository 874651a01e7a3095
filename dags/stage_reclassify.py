"""
### stage_reclassify

Reclassifies, in the background, every item whose stage prediction came from
an older model. It runs when a new model is promoted (the
`engage_stage_model` asset), so the daily run never waits for it; the daily
`classify` task only handles new and changed items.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

STAGE_MODEL = Asset("engage_stage_model")


@dag(
    dag_id="stage_reclassify",
    schedule=[STAGE_MODEL],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["engage", "model"],
    doc_md=__doc__,
    default_args={
        "owner": "marketing-ops",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=6),
    },
)
def stage_reclassify() -> None:
    @task
    def reclassify() -> int:
        from engage.pipeline import open_warehouse
        from engage.settings import load_settings
        from models.registry import load_current
        from transforms.classify import reclassify_stale

        settings = load_settings()
        return reclassify_stale(open_warehouse(settings), load_current(settings))

    reclassify()


dag = stage_reclassify()

if __name__ == "__main__":
    dag.test()
