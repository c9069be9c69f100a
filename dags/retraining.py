"""
### Retraining (challenger vs champion)

Trains a challenger on the latest labeled window (ending `promotion.holdout_days` before the run's day), registers
it with the alias `challenger`, then scores champion and challenger on the **same current holdout**: the newest
labeled days, which the challenger never saw. The challenger becomes `champion` only if its metric beats the
champion's by `promotion.min_improvement` and a paired bootstrap interval of the difference (at
`promotion.confidence`) lies above zero; the old champion then holds `previous_champion`. Every decision is
recorded on the challenger version (`decision.*` tags, and in words as its description) and as an MLflow run
`promotion-...`, and sent as a `promotion` alert (README "Alerts"). After the decision `challenger` names the
challenger if it was kept out, and no version if it was promoted.

Runs on `schedule.retraining_cron` (weekly by default), when `drift_monitoring` triggers it (with the reason),
and by hand; a day before `schedule.start_date` fails, and without a champion yet (e.g. the first scheduled run
after unpausing) it skips and says so; so does a scheduled run when no day has been labeled since the data already
used (the champion's window, the holdouts challengers were judged on), e.g. the weekly run after unpausing over
old data. Promotions and rollbacks share the `mlops_registry` pool (one slot), so two
never run at once. **Params**: `date`, `reason`.
"""

from __future__ import annotations

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from _alerts import notify_promotion
from _schedule import partition_day, timetable
from _support import (
    PARAMS,
    REGISTRY_POOL,
    Model,
    for_each_model,
    model_dag,
    run_config,
    skip_without_champion,
    stderr_to_log,
)


def build(model: Model) -> None:
    """The retraining DAG of one model."""

    @model_dag(
        model,
        "retraining",
        schedule=timetable("retraining_cron", model.config),
        params={
            **PARAMS,
            "reason": Param("scheduled", type="string", title="Reason", description="Why retrain; recorded."),
        },
        tags=["training"],
        doc=__doc__,
    )
    def retraining():
        @task
        def train_challenger() -> str:
            """Train and register the challenger; returns its version. Skips while there is no champion to challenge,
            and a scheduled run skips when no day has been labeled since the data already used (nothing new)."""
            from pipelines.promotion import train_challenger as train
            from pipelines.registry import connect
            from pipelines.retrain_gate import scheduled_retraining_skip

            context = get_current_context()
            config, day = run_config(model, context), partition_day(context)
            config.schedule.require_day(day)
            registry = connect(config)
            skip_without_champion(model, config, "nothing to challenge", registry)
            scheduled = context["dag_run"].run_type == "scheduled"
            stale = scheduled_retraining_skip(config, day, registry) if scheduled else None
            if stale:
                raise AirflowSkipException(f"scheduled retraining for {day} skipped: {stale}")
            with stderr_to_log():
                return train(config, day, context["params"]["reason"], registry)

        @task(multiple_outputs=False, pool=REGISTRY_POOL)
        def evaluate_and_promote(challenger_version: str) -> dict:
            """Champion vs challenger on the same holdout; promote only on a significant margin. A retry of this task
            finds the decision its first try recorded (keyed by this run, the day and the challenger) and neither
            decides nor alerts again."""
            from pipelines.promotion import evaluate_and_promote as decide
            from pipelines.registry import alert_once, connect

            context = get_current_context()
            config = run_config(model, context)
            day, reason = partition_day(context), context["params"]["reason"]
            registry = connect(config)
            with stderr_to_log():
                decision = decide(config, day, challenger_version, reason, run_key=context["run_id"], registry=registry)
            alert_once(registry, decision.mlflow_run_id, lambda: notify_promotion(config, context, decision.as_dict()))
            return decision.as_dict()

        evaluate_and_promote(train_challenger())

    retraining()


for_each_model(build)
