"""
### Batch scoring

Scores a day's feature partition on Dask with the model holding the `champion` alias in MLflow, and publishes
`<storage.root>/predictions/date=YYYY-MM-DD/`: one row per feature row with the key, the prediction (and the
probability for classification), the model name, version and MLflow run, this Airflow run's id, the day and the
scoring time. A rerun replaces the day's predictions.

Runs when `feature_extraction` updates the `mlops.features` asset, once per announced day. Dask runs on a
`LocalCluster` of worker processes unless `DASK_SCHEDULER_ADDRESS` (or `scoring.scheduler_address`) names one.

**Params**: `config`, `date` (score this day; used when the run was not started by the asset).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

from _support import DEFAULT_ARGS, FEATURES, PARAMS, PREDICTIONS, asset_days, config_arg, partition_day


@dag(
    schedule=[FEATURES],
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["mlops", "scoring"],
    doc_md=__doc__,
)
def batch_scoring():
    @task
    def days_to_score() -> list[str]:
        """The days announced by the triggering asset events, else the run's own day."""
        context = get_current_context()
        days = asset_days(context, FEATURES) if not context["params"].get("date") else []
        return [day.isoformat() for day in days or [partition_day(context)]]

    @task(outlets=[PREDICTIONS], max_active_tis_per_dag=1)
    def score(day: str) -> dict:
        """Score one day on Dask with the champion model and publish its prediction partition."""
        from datetime import date

        from pipelines.cluster import dask_client
        from pipelines.config import load_config
        from pipelines.scoring import score_day

        context = get_current_context()
        config = load_config(config_arg(context))
        with dask_client(config) as client:
            result = score_day(config, date.fromisoformat(day), context["run_id"], client).as_dict()
        context["outlet_events"][PREDICTIONS].extra = {"day": day, "model_version": result["model_version"]}
        return result

    score.expand(day=days_to_score())


batch_scoring()
