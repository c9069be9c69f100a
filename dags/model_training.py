"""
### Model training

Trains the configured model (an sklearn `Pipeline`: preprocessing + `model.estimator`) on the last
`training.window_days` days of labeled features, ending on the run's day, and registers it in MLflow under
`model.name`. The MLflow run holds params, holdout metrics, signature, input example, the training window, a data
hash and a reference sample of the training features for drift checks.

The first version ever registered gets the `champion` alias; later versions are registered without it (promotion
is decided elsewhere, on current data).

Runs on `schedule.training_cron` (weekly by default; null: manual only) and on manual trigger; a day before
`schedule.start_date` fails. **Params**: `config`, `date` (last day of the training window), `reason`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from _schedule import dag_start, timetable
from _support import DEFAULT_ARGS, PARAMS, partition_day, run_config, stderr_to_log


@dag(
    schedule=timetable("training_cron"),
    start_date=dag_start(),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        **PARAMS,
        "reason": Param("scheduled", type="string", title="Reason", description="Recorded on the MLflow run."),
    },
    tags=["mlops", "training"],
    doc_md=__doc__,
)
def model_training():
    @task(multiple_outputs=False)
    def train() -> dict:
        """Fit, evaluate on the newest holdout rows, log to MLflow and register a new version."""
        from pipelines.training import train_and_register

        context = get_current_context()
        config, day = run_config(context), partition_day(context)
        config.schedule.require_day(day)
        with stderr_to_log():
            return train_and_register(config, day, reason=context["params"]["reason"]).as_dict()

    train()


model_training()
