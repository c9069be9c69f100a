"""
### Batch scoring

Scores a day's feature partition on Dask with the model holding the `champion` alias in MLflow (sklearn or
PyTorch), and publishes, per day:

- `predictions/date=YYYY-MM-DD/`: key, prediction (+ probability), model name, version and MLflow run, this
  Airflow run's id, the day and the scoring time;
- `dead_letter/date=YYYY-MM-DD/`: rows that could not be scored, with the error (the rest of their batch is scored);
- `prediction_log/date=YYYY-MM-DD/`: a `monitoring.sample_rate` share of keys (chosen by key hash, so stable)
  with their features and prediction, for drift monitoring.

Rows in = rows scored + rows dead-lettered, checked on every run; above `scoring.max_dead_letter_share` the task
fails and publishes only the dead letters. A rerun replaces the day's partitions.

Runs when `feature_extraction` updates the `mlops.features` asset, once per announced day. Dask runs on a
`LocalCluster` of worker processes unless `DASK_SCHEDULER_ADDRESS` (or `scoring.scheduler_address`) names one.
PyTorch models run on workers that declare the Dask resource `GPU=1` when there are any, else on CPU workers.

**Params**: `config`, `date` (score this day; used when the run was not started by the asset).
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from _schedule import dag_start
from _support import DEFAULT_ARGS, FEATURES, PARAMS, PREDICTIONS, asset_days, partition_day, run_config


@dag(
    schedule=[FEATURES],
    start_date=dag_start(),
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

    @task(multiple_outputs=False, outlets=[PREDICTIONS], max_active_tis_per_dag=1)
    def score(day: str) -> dict:
        """Score one day on Dask with the champion model; publish predictions, dead letters and the prediction log."""
        from datetime import date

        from pipelines.cluster import dask_client
        from pipelines.scoring import score_day

        context = get_current_context()
        config = run_config(context)
        with dask_client(config) as client:
            result = score_day(config, date.fromisoformat(day), context["run_id"], client).as_dict()
        context["outlet_events"][PREDICTIONS].extra = {
            "day": day,
            "model_version": result["model_version"],
            "rows_logged": result["rows_logged"],
        }
        return result

    score.expand(day=days_to_score())


batch_scoring()
