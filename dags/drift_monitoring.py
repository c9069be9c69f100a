"""
### Drift monitoring

Compares the last `monitoring.window_days` days of the prediction log with the champion's training reference
sample using Evidently (data drift per feature and of the model's output), checks the rise in missing values per
column (Evidently drops NaNs before its tests), and, where labels for logged keys have arrived, computes the
champion's realized metric. The HTML and JSON reports land in `<storage.root>/reports/date=YYYY-MM-DD/` and in an
MLflow run `drift-YYYY-MM-DD` (tagged with the model version) whose metrics chart drift over time.

**Labels arrive late**, so the `check` task also updates the performance table, as of each day it checks:
for every scored day of the last `monitoring.label_horizon_days` whose labels are incomplete, the labels that have
arrived by the end of the run's day are joined to the day's predictions; a day whose labeled rows changed gets its
row in `<storage.root>/performance/date=YYYY-MM-DD/` rewritten (labeled rows, realized metric with a bootstrap
interval, model version) and its MLflow run `performance-YYYY-MM-DD` updated (metrics at step = days since
scoring). A rerun of an earlier day sees only the labels known then and leaves rows computed later alone.

It starts `retraining__<model>` with the reason when a trigger fires: the share of drifted features reaches
`monitoring.drift_share_threshold`, the model's output drifts (`monitoring.output_drift_trigger`), a feature's
missing share rises by more than `monitoring.missing_share_threshold` or it goes entirely missing
(`monitoring.missing_trigger`), or the realized metric of the newest *labeled* day the champion scored
(`monitoring.min_label_share` of its rows labeled, from the performance table; the day just checked has no labels
yet) falls by `monitoring.metric_drop_threshold` below the champion's training metric; unless a retraining ran
within `monitoring.cooldown_days` or too few new labels (`monitoring.min_new_labels`) have arrived. The decision,
retrain or not, is recorded with its reason and every signal on the day's MLflow run (`decision`,
`decision.reason` tags and its description) and on top of its report. Starting it sends a `drift` alert
with the reason and links to the day's MLflow run and drift report (README "Alerts").

**Runs** once per day that `batch_scoring__<model>` scores: each `mlops.predictions.<model>` event is keyed by its
day and the scheduler starts one run per key (a partitioned asset), so the run's **partition key** is the day it
checks, shown in the grid; runs queue one at a time (`max_active_runs=1`) and none is lost. A day's predictions are
checked once: a run for predictions already checked (a manual run, a cleared run) records nothing new, so past
reports and MLflow drift runs stay as they were whichever model is champion now; rescoring a day checks it again.
**Params**: `date` (the day, for a manual run without a partition key), `through` (a run of days: each day checked,
its performance updated and its decision recorded in turn, stopping after the first day that retrains; `make
bootstrap` loads history this way), `force` (retrain regardless), `defer_reports` (store each day's report inputs and
draw the HTML later, `make reports`), and threshold overrides (empty = the config's).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, PokeReturnValue, get_current_context, task

from _alerts import notify_drift
from _schedule import parsed_config, partition_day, per_day, run_of_days
from _support import PARAMS, THROUGH, Model, for_each_model, model_dag, run_config

THRESHOLDS = {
    "drift_share_threshold": "Retrain at this share of drifted columns.",
    "metric_drop_threshold": "Retrain when the realized metric is this much below training.",
}


def build(model: Model) -> None:
    """The drift_monitoring DAG of one model."""

    @model_dag(
        model,
        "drift_monitoring",
        schedule=per_day(model.predictions),
        params={
            **PARAMS,
            **THROUGH,
            "force": Param(
                False, type="boolean", title="Force retraining", description="Start retraining whatever the checks say."
            ),
            "defer_reports": Param(
                False,
                type="boolean",
                title="Draw the HTML reports later",
                description=(
                    "Store each day's report inputs and draw the HTML later (make reports; make bootstrap does it in"
                    " a process of its own): drawing is most of a day's check over history. Verdicts and decisions"
                    " are the same."
                ),
            ),
            **{
                name: Param(None, type=["null", "number"], title=name, description=text)
                for name, text in THRESHOLDS.items()
            },
        },
        tags=["monitoring"],
        doc=__doc__,
    )
    def drift_monitoring():
        # a backstop only: days_to_check stops waiting itself after monitoring.window_wait_minutes
        wait_s = parsed_config(model.config).monitoring.window_wait_minutes * 60 + 600

        @task.sensor(poke_interval=30, timeout=wait_s, mode="reschedule")
        def days_to_check() -> PokeReturnValue:
            """The run's day (or run of days), less the days whose predictions have been checked already (a day's
            predictions are checked once, never again against whichever model is champion now). Waits first, freeing
            its worker slot between looks, while an earlier day of the window is extracted but not scored yet (a
            backfill's days finish out of order), up to `monitoring.window_wait_minutes`."""
            from datetime import UTC, datetime

            from pipelines.backlog import already_checked, unscored_in_window

            context = get_current_context()
            config, days = run_config(model, context), run_of_days(context)
            waiting = unscored_in_window(config, days)
            waited = datetime.now(UTC) - (context["dag_run"].start_date or datetime.now(UTC))
            if waiting and waited.total_seconds() < config.monitoring.window_wait_minutes * 60:
                print(f"waiting for the scoring of {[d.isoformat() for d in waiting]}, in the window of {days[0]}")
                return PokeReturnValue(is_done=False)
            if waiting:
                print(f"checking without {[d.isoformat() for d in waiting]}: not scored after {waited} (a failed run?)")
            due = []
            for day in days:
                if already_checked(config, day):
                    print(f"the predictions of {day} have been checked already: not checking them again")
                else:
                    due.append(day.isoformat())
            return PokeReturnValue(is_done=True, xcom_value=due)

        @task(multiple_outputs=False)
        def check(days: list[str]) -> dict:
            """Each day in order: the Evidently drift report, missing-value check and realized metric, recorded with
            the predictions it checked; the performance table (realized metric of every scored day whose labels
            changed) brought up to that day; and retrain or not, recorded either way with the reason and every
            signal on the day's MLflow drift run and on top of its report. A run of days stops after the first day
            that retrains: its retraining decides which model scores the days after it."""
            from datetime import date

            from pipelines.drift_run import check_days
            from pipelines.registry import alert_once, connect

            context = get_current_context()
            config = run_config(model, context, THRESHOLDS)
            registry = connect(config)
            run = check_days(
                config,
                [date.fromisoformat(d) for d in days],
                as_of=partition_day(context),
                force=context["params"]["force"],
                registry=registry,
                render=not context["params"]["defer_reports"],
            )
            updated = [(r.date, r.labels_as_of, r.labeled_rows, r.value) for r in run.performance]
            print(f"performance updated: {updated}")
            decision = run.decision
            if decision and decision["retrain"]:  # once per decision run: a retry of this task does not alert again
                alert = {**decision, "day": decision["date"]}
                alert_once(
                    registry,
                    decision["mlflow_run_id"],
                    lambda: notify_drift(config, context, alert, decision["reason"]),
                )
            return run.as_dict()

        @task.short_circuit
        def start_retraining(decision: dict) -> dict | bool:
            """Go on to trigger retraining only when the decision says so, with its day and reason as the run's conf."""
            return {"date": decision["date"], "reason": decision["reason"]} if decision["retrain"] else False

        decision = check(days_to_check())
        start_retraining(decision) >> TriggerDagRunOperator(
            task_id="trigger_retraining",
            trigger_dag_id=model.dag_id("retraining"),
            conf="{{ ti.xcom_pull(task_ids='start_retraining') | tojson }}",
            reset_dag_run=False,
            wait_for_completion=False,
        )

    drift_monitoring()


for_each_model(build)
