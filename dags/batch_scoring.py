"""
### Batch scoring

Scores a day's feature partition on Dask with the model holding the `champion` alias in MLflow (sklearn or
PyTorch), and publishes, per day:

- `predictions/date=YYYY-MM-DD/`: key, prediction (+ probability), model name, version and MLflow run, this
  Airflow run's id, the day and the scoring time;
- `dead_letter/date=YYYY-MM-DD/`: rows that could not be scored, with the error (the rest of their batch is scored);
- `prediction_log/date=YYYY-MM-DD/`: a `monitoring.sample_rate` share of keys (chosen by key hash, so stable)
  with their features and prediction, for drift monitoring.

A champion trained with feature definitions other than the config's (a window, a filter, a delay changed since) is
never scored: the run fails naming both definition hashes; train and promote a version on the new definitions, or
revert the config (docs: "Declared features", Lineage). Rows in = rows scored + rows dead-lettered, checked on every
run; above `scoring.max_dead_letter_share` the task fails and publishes only the dead letters. A rerun replaces the
day's partitions.

**Runs** once per day that `feature_extraction__<model>` publishes: each `mlops.features.<model>` event is keyed by
its day, and the scheduler starts one run per key (a partitioned asset), so the run's **partition key** is the day
it scores, shown in the grid. Runs queue one at a time (`max_active_runs=1`, each uses the whole Dask cluster);
none is lost or merged, however many days arrive together. A re-extracted day is scored again under its key. When
the day is written, it emits a `mlops.predictions.<model>` event keyed by the day, which starts
`drift_monitoring__<model>` for it. Without a `champion` yet a run the asset started skips, saying so: clear it
once `model_training__<model>` has registered one (`airflow dags clear <dag_id> --partition-key <day>`). Dask runs on a
`LocalCluster` of worker processes unless `DASK_SCHEDULER_ADDRESS` (or `scoring.scheduler_address`) names one.
PyTorch models run on workers that declare the Dask resource `GPU=1` when there are any, else on CPU workers.
Under the CeleryExecutor, the task of a PyTorch model whose config sets `scoring.gpu_workers` (and no external
scheduler) goes to the `gpu` queue, served by Airflow workers on machines with GPUs; every other task to the
default queue.

**Params**: `date` (the day, for a manual run without a partition key), `through` (a run of days: every day from
the run's day to this one, each scored, published and keyed as its own run would be, with one Dask client;
`make bootstrap` loads history this way).
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from _schedule import per_day, run_of_days
from _support import (
    PARAMS,
    THROUGH,
    Model,
    for_each_model,
    model_dag,
    run_config,
    scoring_queue,
    skip_without_champion,
)


def build(model: Model) -> None:
    """The batch_scoring DAG of one model."""

    @model_dag(
        model,
        "batch_scoring",
        schedule=per_day(model.features),
        params={**PARAMS, **THROUGH},
        tags=["scoring"],
        doc=__doc__,
    )
    def batch_scoring():
        @task(multiple_outputs=False, outlets=[model.predictions], **scoring_queue(model))
        def score() -> dict:
            """Score the run's day (or each day of its run of days, in order) on Dask with the champion; publish
            predictions, dead letters and the prediction log; emit the predictions event keyed by each day."""
            from pipelines.cluster import dask_client
            from pipelines.scoring import score_days

            context = get_current_context()
            config, days = run_config(model, context), run_of_days(context)
            if context.get("triggering_asset_events"):  # a manual run without a champion fails, saying so
                skip_without_champion(model, config, f"{days[0]} is not scored (clear this run once there is one)")
            event = context["outlet_events"][model.predictions]
            with dask_client(config) as client:
                results = [r.as_dict() for r in score_days(config, days, context["run_id"], client)]
            for result in results:
                event.add_partitions(result["day"])
            event.extra = {"days": [r["day"] for r in results], "rows": sum(r["rows_scored"] for r in results)}
            return results[0] if len(results) == 1 else {"days": results}

        score()

    batch_scoring()


for_each_model(build)
