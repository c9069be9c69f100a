"""
### Model rollback

Sets the `champion` alias back to the version holding `previous_champion` (the two swap, so a second rollback
undoes the first), and records who/why as tags on both versions and as an MLflow run `rollback-...`.
The same operation from a shell: `python -m pipelines.promotion rollback --reason "..."`.

Manual only. **Params**: `reason` (required).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from _schedule import dag_start
from _support import REGISTRY_POOL, Model, models, run_config


def build(model: Model) -> None:
    """The model_rollback DAG of one model."""

    @dag(
        dag_id=model.dag_id("model_rollback"),
        schedule=None,
        start_date=dag_start(model.config),
        catchup=False,
        max_active_runs=1,
        default_args=model.default_args,
        params={
            "reason": Param(type="string", minLength=3, title="Reason", description="Why roll back; recorded."),
        },
        tags=["mlops", "registry"],
        doc_md=__doc__,
    )
    def model_rollback():
        @task(multiple_outputs=False, pool=REGISTRY_POOL)
        def rollback() -> dict:
            """champion <- previous_champion, recorded."""
            from pipelines.promotion import rollback as roll_back

            context = get_current_context()
            return roll_back(run_config(model, context), context["params"]["reason"]).as_dict()

        rollback()

    model_rollback()


for _model in models():
    build(_model)
