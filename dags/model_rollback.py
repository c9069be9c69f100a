"""
### Model rollback

Sets the `champion` alias back to the version holding `previous_champion` (the two swap, so a second rollback
undoes the first), and records who/why as tags on both versions and as an MLflow run `rollback-...`.
The same operation from a shell: `python -m pipelines.promotion rollback --reason "..."`.

Manual only. **Params**: `reason` (required).
"""

from __future__ import annotations

from airflow.sdk import Param, get_current_context, task

from _support import REGISTRY_POOL, Model, for_each_model, model_dag, run_config


def build(model: Model) -> None:
    """The model_rollback DAG of one model."""

    @model_dag(
        model,
        "model_rollback",
        schedule=None,
        params={
            "reason": Param(type="string", minLength=3, title="Reason", description="Why roll back; recorded."),
        },
        tags=["registry"],
        doc=__doc__,
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


for_each_model(build)
