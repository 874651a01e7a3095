"""
### stage_model_weekly

Retrains the buying-journey stage classifier every week on the bundled
corpus plus the analysts' corrected labels (`engage label import`), scores
the new model and the current one on the fixed test split, and promotes the
new one only if it is better. Both scores land in the `model_version` table.

When a model is promoted, the `engage_stage_model` asset is updated, which
starts `stage_reclassify` in the background.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, dag, task

STAGE_MODEL = Asset("engage_stage_model")


@dag(
    dag_id="stage_model_weekly",
    schedule="0 5 * * 1",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["engage", "model"],
    doc_md=__doc__,
    default_args={
        "owner": "marketing-ops",
        "retries": 1,
        "retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=2),
    },
)
def stage_model_weekly() -> None:
    @task
    def retrain() -> dict[str, Any]:
        from engage.settings import load_settings
        from models.retrain import retrain as run_retrain
        from models.stage_classifier import CORPUS_DIR

        outcome = run_retrain(
            load_settings(), corpus_dir=CORPUS_DIR, use_feedback=True, promote_if_better=True
        )
        print(outcome.message)
        return {
            "promoted": outcome.promoted,
            "version": outcome.result.model.version,
            "new_macro_f1": outcome.new_macro_f1,
            "current_macro_f1": outcome.current_macro_f1,
        }

    @task(outlets=[STAGE_MODEL])
    def announce(outcome: dict[str, Any]) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        if not outcome["promoted"]:
            raise AirflowSkipException("the new model did not beat the current one")
        return str(outcome["version"])

    announce(retrain())


dag = stage_model_weekly()

if __name__ == "__main__":
    dag.test()
