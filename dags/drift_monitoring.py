"""
### Drift monitoring

Compares the last `monitoring.window_days` days of the prediction log with the champion's training reference
sample using Evidently (data drift per feature and of the model's output), checks the rise in missing values per
column (Evidently drops NaNs before its tests), and, where labels for logged keys have arrived, computes the
champion's realized metric. The HTML and JSON reports land in `<storage.root>/reports/date=YYYY-MM-DD/` and in an
MLflow run `drift-YYYY-MM-DD` (tagged with the model version) whose metrics chart drift over time.

When the share of drifted columns reaches `monitoring.drift_share_threshold`, or the realized metric falls by
`monitoring.metric_drop_threshold` below the champion's training metric, it starts `retraining__<model>` with the
reason, unless a retraining ran within `monitoring.cooldown_days` or too few new labels
(`monitoring.min_new_labels`) have arrived. Starting it sends a `drift` alert with the reason and links to the
day's MLflow run and drift report (README "Alerts").

Runs when `batch_scoring__<model>` updates `mlops.predictions.<model>`, and checks every day whose predictions are
newer than its last check (asset events can be lost under the scheduler, the lake and MLflow cannot). A day's
predictions are checked once: a backlog never re-checks old days against today's champion, so past reports and
MLflow drift runs stay as they were; rescoring a day makes it due again. **Params**: `date`, `force` (retrain
regardless), and threshold overrides (empty = the config's).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from _alerts import notify_drift
from _schedule import dag_start
from _support import PARAMS, Model, models, partition_day, run_config

THRESHOLDS = {
    "drift_share_threshold": "Retrain at this share of drifted columns.",
    "metric_drop_threshold": "Retrain when the realized metric is this much below training.",
}


def build(model: Model) -> None:
    """The drift_monitoring DAG of one model."""

    @dag(
        dag_id=model.dag_id("drift_monitoring"),
        schedule=[model.predictions],
        start_date=dag_start(model.config),
        catchup=False,
        max_active_runs=1,
        default_args=model.default_args,
        params={
            **PARAMS,
            "force": Param(
                False, type="boolean", title="Force retraining", description="Start retraining whatever the checks say."
            ),
            **{
                name: Param(None, type=["null", "number"], title=name, description=text)
                for name, text in THRESHOLDS.items()
            },
        },
        tags=["mlops", "monitoring"],
        doc_md=__doc__,
    )
    def drift_monitoring():
        @task
        def days_to_check() -> list[str]:
            """Days whose predictions are newer than their last drift check: all of them for an asset-triggered run
            (events can be lost, apache/airflow#56050), else the `date` Param's or the run's own day if it is one.

            A day's predictions are checked once: a backlog never re-checks old days against today's champion.
            """
            from pipelines.backlog import due_for_drift_check

            context = get_current_context()
            asset_run = context.get("triggering_asset_events") and not context["params"].get("date")
            wanted = None if asset_run else [partition_day(context)]
            days = [day.isoformat() for day in due_for_drift_check(run_config(model, context), wanted)]
            print(f"days due for a drift check: {days}" + ("" if asset_run else f" (asked for {wanted[0]})"))
            return days

        @task(multiple_outputs=False)
        def check(day: str) -> dict:
            """Evidently drift report, missing-value check and realized metric for one day."""
            from datetime import date

            from pipelines.monitoring import check_drift

            return check_drift(run_config(model, get_current_context(), THRESHOLDS), date.fromisoformat(day)).as_dict()

        @task.short_circuit
        def decide(results: list[dict]) -> dict | bool:
            """Retrain or not, from the newest day actually checked (a skipped newest day of a backlog, e.g. an empty
            one, does not hide the drift of the days before it); the reason is logged and passed to retraining."""
            from datetime import date

            from pipelines.monitoring import DriftResult
            from pipelines.promotion import retrain_reason

            context = get_current_context()
            checked = [results[i] for i in range(len(results))]  # indexing: iterating probes one XCom past the end
            latest = DriftResult(**max(checked, key=lambda r: (r["status"] == "checked", r["day"])))
            retrain, reason = retrain_reason(
                run_config(model, context, THRESHOLDS),
                latest,
                date.fromisoformat(latest.day),
                force=context["params"]["force"],
            )
            print(f"retrain={retrain}: {reason}")
            if retrain:
                notify_drift(run_config(model, context, THRESHOLDS), context, latest.as_dict(), reason)
            return {"date": latest.day, "reason": reason} if retrain else False

        decision = decide(check.expand(day=days_to_check()))
        decision >> TriggerDagRunOperator(
            task_id="trigger_retraining",
            trigger_dag_id=model.dag_id("retraining"),
            conf="{{ ti.xcom_pull(task_ids='decide') | tojson }}",
            reset_dag_run=False,
            wait_for_completion=False,
        )

    drift_monitoring()


for _model in models():
    build(_model)
