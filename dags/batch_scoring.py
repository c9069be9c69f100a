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

Runs when `feature_extraction__<model>` updates `mlops.features.<model>`. Asset events can be lost under the scheduler
(apache/airflow#56050), so such a run scores every day whose features are newer than its predictions: each
extracted day is scored once, however the events arrived. Without a `champion` yet it skips, and those days stay
due. When its days are written it updates `mlops.predictions.<model>` once, listing the days. Dask runs on a
`LocalCluster` of worker processes unless `DASK_SCHEDULER_ADDRESS` (or `scoring.scheduler_address`) names one.
PyTorch models run on workers that declare the Dask resource `GPU=1` when there are any, else on CPU workers.

**Params**: `date` (score this day; used when the run was not started by the asset).
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from _schedule import partition_day
from _support import Model, for_each_model, model_dag, run_config, skip_without_champion


def build(model: Model) -> None:
    """The batch_scoring DAG of one model."""

    @model_dag(
        model,
        "batch_scoring",
        schedule=[model.features],
        tags=["scoring"],
        doc=__doc__,
    )
    def batch_scoring():
        @task
        def days_to_score() -> list[str]:
            """The `date` Param's day; for an asset-triggered run, every day due in the lake; else the run's own day.

            Asset events can be lost (apache/airflow#56050), the lake cannot: an asset-triggered run scores every day
            whose features are newer than its predictions, so a day scored by an earlier run is not scored again.
            """
            from pipelines.backlog import due_for_scoring

            context = get_current_context()
            if context["params"].get("date") or not context.get("triggering_asset_events"):
                return [partition_day(context).isoformat()]
            config = run_config(model, context)
            due = [day.isoformat() for day in due_for_scoring(config)]
            skip_without_champion(
                model, config, f"{len(due)} day(s) stay due, scored by the first run once there is one"
            )
            print(f"days due for scoring: {due}")
            return due

        @task(multiple_outputs=False, max_active_tis_per_dag=1)
        def score(day: str) -> dict:
            """Score one day on Dask with the champion; publish predictions, dead letters and the prediction log."""
            from datetime import date

            from pipelines.cluster import dask_client
            from pipelines.scoring import score_day

            context = get_current_context()
            config = run_config(model, context)
            with dask_client(config) as client:
                return score_day(config, date.fromisoformat(day), context["run_id"], client).as_dict()

        @task(outlets=[model.predictions])
        def announce() -> list[str]:
            """One `mlops.predictions.<model>` event once every day of the run is written, listing the unchecked days.

            One event after the last day rather than one per mapped task, so drift monitoring starts once and sees
            every day of the run (and any scored day an earlier lost event left unchecked).
            """
            from pipelines.backlog import due_for_drift_check

            context = get_current_context()
            days = [day.isoformat() for day in due_for_drift_check(run_config(model, context))]
            if not days:
                raise AirflowSkipException("every scored day has been checked for drift: nothing to announce")
            context["outlet_events"][model.predictions].extra = {"days": days}
            return days

        score.expand(day=days_to_score()) >> announce()

    batch_scoring()


for_each_model(build)
