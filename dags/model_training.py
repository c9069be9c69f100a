"""
### Model training

Trains the configured model (an sklearn `Pipeline`: preprocessing + `model.estimator`) on the last
`training.window_days` days of labeled features, ending on the run's day, and registers it in MLflow under
`model.name`. The MLflow run holds params, holdout metrics, signature, input example, the training window, a data
hash and a reference sample of the training features for drift checks.

It bootstraps a model: the version it registers becomes the `champion`. Once a champion exists it skips and says
so, because every later version must go through the challenger gate of `retraining__<model>` (which also holds the
weekly schedule, `schedule.retraining_cron`): a version nothing evaluates or aliases is never registered.

Manual only (`make bootstrap`, the demo, or a trigger), one per config file (`model_training__<model>`); a day
before `schedule.start_date` fails. **Params**: `date` (last day of the training window), `reason`, `labels_as_of`
(labels arrive late: train with those known by this day instead of the window's last day).
"""

from __future__ import annotations

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from _schedule import partition_day
from _support import PARAMS, Model, champion_version, for_each_model, model_dag, run_config, stderr_to_log


def build(model: Model) -> None:
    """The model_training DAG of one model."""

    @model_dag(
        model,
        "model_training",
        schedule=None,  # manual: bootstraps the first champion; scheduled training is `retraining`
        params={
            **PARAMS,
            "reason": Param("bootstrap", type="string", title="Reason", description="Recorded on the MLflow run."),
            "labels_as_of": Param(
                None,
                type=["null", "string"],
                format="date",
                title="Labels known by",
                description="Train with the labels known by the end of this day (YYYY-MM-DD); empty means the run's"
                " day. A bootstrap over history passes its last day: every label up to then is known when it runs.",
            ),
        },
        tags=["training"],
        doc=__doc__,
    )
    def model_training():
        @task(multiple_outputs=False)
        def train() -> dict:
            """Fit, evaluate on the newest holdout rows, log to MLflow and register the first champion."""
            from datetime import date

            from pipelines.registry import connect
            from pipelines.training import train_and_register

            context = get_current_context()
            config, day = run_config(model, context), partition_day(context)
            config.schedule.require_day(day)
            registry = connect(config)
            champion = champion_version(config, registry)
            if champion is not None:
                raise AirflowSkipException(
                    f"{config.model.name!r} already has 'champion' version {champion}: new versions go"
                    f" through the challenger gate, trigger {model.dag_id('retraining')}"
                )
            as_of = context["params"].get("labels_as_of")
            with stderr_to_log():
                return train_and_register(
                    config,
                    day,
                    reason=context["params"]["reason"],
                    as_of=date.fromisoformat(as_of) if as_of else None,
                    registry=registry,
                ).as_dict()

        train()

    model_training()


for_each_model(build)
