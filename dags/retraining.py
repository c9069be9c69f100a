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

With `promotion.approval: required` a promotion verdict is recorded but not acted on: `approve` (Airflow's
`ApprovalOperator`) shows the decision with both metrics, the interval, the segment table and links to the decision
run, the challenger version and the drift report, and waits (no worker slot held) in the UI's *Required actions*.
**Approve** moves `champion` (`promote_approved`); **Reject**, or no answer within
`promotion.approval_timeout_hours`, keeps the champion (`keep_champion`). Who answered and when is recorded on the
challenger version and the decision run. A challenger kept out by the verdict asks nobody.
"""

from __future__ import annotations

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from _alerts import notify_promotion
from _schedule import parsed_config, partition_day, timetable
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
    """The retraining DAG of one model (with the approval tasks when its config requires approval)."""
    promotion = parsed_config(model.config).promotion
    approval_required = promotion.approval == "required"
    approval_timeout_hours = promotion.approval_timeout_hours

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
            decides nor alerts again. With approval required, a promotion is recorded and waits for `approve`."""
            from pipelines.promotion import evaluate_and_promote as decide
            from pipelines.registry import alert_once, connect

            context = get_current_context()
            config = run_config(model, context)
            day, reason = partition_day(context), context["params"]["reason"]
            registry = connect(config)
            hold = config.promotion.approval == "required"
            with stderr_to_log():
                decision = decide(
                    config, day, challenger_version, reason, run_key=context["run_id"], registry=registry, hold=hold
                )
            if hold and decision.promoted:
                return {**decision.as_dict(), **_request(config, registry, decision, day)}
            alert_once(registry, decision.mlflow_run_id, lambda: notify_promotion(config, context, decision.as_dict()))
            return {**decision.as_dict(), "awaiting_approval": False}

        decided = evaluate_and_promote(train_challenger())
        if approval_required:
            _approval(decided)

    def _request(config, registry, decision, day) -> dict:
        """The approval request's subject and body, with links to the decision run, the version and the report."""
        from mlops_links import drift_report_url, mlflow_url

        from pipelines.approval import approval_request, drift_run_of

        experiment, drift_run = registry.experiment_id, drift_run_of(registry, config, day)
        links = {
            "Challenger version in MLflow": mlflow_url(decision.as_dict()),
            "Decision run in MLflow": mlflow_url(
                {"experiment_id": experiment, "mlflow_run_id": decision.mlflow_run_id}
            ),
            f"Drift report of {day}": drift_report_url(
                {"report_url": "-", "experiment_id": experiment, "mlflow_run_id": drift_run}
            ),
        }
        subject, body = approval_request(decision, links)
        return {"awaiting_approval": True, "approval_subject": subject, "approval_body": body}

    def _approval(decided) -> None:
        """evaluate -> (a promotion waits) approve -> promote_approved, or keep_champion on reject or timeout."""
        from datetime import timedelta

        from airflow.providers.standard.operators.hitl import ApprovalOperator

        @task.short_circuit
        def awaiting_approval(decision: dict) -> bool:
            """Only a promotion verdict asks a person; a challenger kept out was settled already."""
            return bool(decision["awaiting_approval"])

        xcom = "ti.xcom_pull(task_ids='evaluate_and_promote')"
        approve = ApprovalOperator(
            task_id="approve",
            subject="{{ " + xcom + "['approval_subject'] }}",
            body="{{ " + xcom + "['approval_body'] }}",
            defaults="Reject",  # what a timeout answers
            response_timeout=timedelta(hours=approval_timeout_hours),
            on_success_callback=_keep_answer,
        )

        def settle() -> dict:
            """The held decision (evaluate's) applied as `approve` answered."""
            from pipelines.approval import answer_of, settle_approval
            from pipelines.promotion_record import Decision
            from pipelines.registry import alert_once, connect

            context = get_current_context()
            config, day = run_config(model, context), partition_day(context)
            registry = connect(config)
            decision = context["ti"].xcom_pull(task_ids="evaluate_and_promote")
            held = Decision(**{k: v for k, v in decision.items() if k in Decision.__dataclass_fields__})
            answer = answer_of(context["ti"].xcom_pull(task_ids="approve", key=ANSWER))
            applied = settle_approval(config, registry, held, answer, day)
            alert_once(registry, held.mlflow_run_id, lambda: notify_promotion(config, context, applied.as_dict()))
            return {**applied.as_dict(), "approval": answer.outcome, "approved_by": answer.by}

        @task(multiple_outputs=False, pool=REGISTRY_POOL)
        def promote_approved() -> dict:
            """Approved: move `champion` to the challenger; record who approved and when. (Skipped on reject.)"""
            return settle()

        @task(multiple_outputs=False, pool=REGISTRY_POOL, trigger_rule="all_skipped")
        def keep_champion() -> dict:
            """Rejected, or not answered in time (promote_approved skipped): the champion stays; record who
            rejected (or the timeout) and when."""
            return settle()

        awaiting_approval(decided) >> approve >> promote_approved() >> keep_champion()

    retraining()


ANSWER = "answer"  # the approve task's XCom holding the answer


def _keep_answer(context) -> None:
    """The answer (option, who, when) as an XCom of its own: on Reject the ApprovalOperator skips what follows it
    and Airflow then pushes no return value, so the task that keeps the champion would not learn who rejected."""
    summary = context["task"].hitl_summary
    answer = {key: summary.get(key) for key in ("chosen_options", "responded_by_user", "responded_at")}
    context["ti"].xcom_push(ANSWER, answer)


for_each_model(build)
