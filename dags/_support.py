"""Wiring shared by the DAG files: the models they are generated for, their assets, default arguments, Params, the
one ``@dag`` they are all built with, and the champion check of the tasks that need one.

Every DAG file loops over :func:`models` (Airflow's dynamic-DAG pattern) and builds one DAG per config file, with
the model name in the DAG id and in the asset names, and the config path baked into the tasks: a run can never be
pointed at another model's config, and one model's events never start another model's DAGs.

Kept light on purpose (no pandas, MLflow or Dask here): the DAG processor imports it on every parse.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, Param, RetryAction, RetryRule, dag
from airflow.sdk.exceptions import AirflowSkipException

from _alerts import FailureAlert
from _schedule import dag_start

# One slot shared by every model: promotions and rollbacks never overlap. They take seconds, so serializing them
# across models costs little, and one pool needs no per-model setup (a missing pool would make tasks wait forever).
REGISTRY_POOL = "mlops_registry"
CONFIG_GLOB = "include/config/*.yaml"


@dataclass(frozen=True)
class Model:
    """One config file and the model it names: the unit the DAGs are generated for."""

    name: str
    config: str  # absolute path, baked into every task of the model's DAGs

    def dag_id(self, base: str) -> str:
        """``feature_extraction`` -> ``feature_extraction__credit_default``."""
        return f"{base}__{self.name}"

    @property
    def features(self) -> Asset:
        return Asset(name=f"mlops.features.{self.name}")

    @property
    def predictions(self) -> Asset:
        return Asset(name=f"mlops.predictions.{self.name}")

    @property
    def default_args(self) -> dict[str, Any]:
        """:data:`DEFAULT_ARGS` plus the alert sent when a task of this model's DAGs fails for good."""
        return {**DEFAULT_ARGS, "on_failure_callback": [FailureAlert(self.config)]}

    def load(self) -> Any:
        """The validated config, read when a task runs (the DAG processor only reads name and schedule)."""
        from pipelines.config import load_config

        return load_config(self.config)


def config_files() -> list[Path]:
    """The configs to generate DAGs for: ``MLOPS_CONFIG`` alone when it is set (a single-model deployment, e.g.
    the compose stack), else every file matching ``MLOPS_CONFIGS`` (default ``include/config/*.yaml``, relative
    paths against ``MLOPS_HOME``)."""
    from pipelines.config import config_path, project_home

    if os.environ.get("MLOPS_CONFIG"):
        return [config_path()]
    pattern = os.environ.get("MLOPS_CONFIGS") or CONFIG_GLOB
    if Path(pattern).is_absolute():
        return sorted(Path(pattern).parent.glob(Path(pattern).name))
    return sorted(project_home().glob(pattern))


def models() -> list[Model]:
    """One :class:`Model` per config file; two files naming the same model fail the parse, naming both."""
    from _schedule import parsed_config

    found: dict[str, Model] = {}
    for file in config_files():
        name = parsed_config(str(file)).model.name
        if name in found:
            raise ValueError(f"{file} and {found[name].config} both define model {name!r}: DAG ids would collide")
        found[name] = Model(name=name, config=str(file))
    return list(found.values())


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mlops",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    # Bad input, bad config, a missing model or a broken invariant: retrying cannot fix it, so fail at once.
    "retry_policy": ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=[  # pipelines.errors has no dependencies: resolving these at parse time stays cheap
                    "pipelines.errors.ConfigError",
                    "pipelines.errors.DataError",
                    "pipelines.errors.RegistryError",
                    "pipelines.errors.InvariantError",
                ],
                action=RetryAction.FAIL,
                reason="bad input, config or registry state, or a broken invariant: a retry would fail the same way",
            )
        ]
    ),
}


def _day_param(title: str, description: str) -> Param:
    """An optional day (YYYY-MM-DD) in the trigger form: a date picker, empty by default."""
    return Param(None, type=["null", "string"], format="date", title=title, description=description)


PARAMS: dict[str, Param] = {
    "date": _day_param(
        "Partition day",
        "Day to process (YYYY-MM-DD), for a run without a partition key; empty means the run's partition key,"
        " else the day that ended with the run's data interval.",
    ),
}

THROUGH: dict[str, Param] = {
    "through": _day_param(
        "Through (a run of days)",
        "Last day of a run of days (YYYY-MM-DD): every day from the run's day to this one, each processed and"
        " recorded as its own run would be (make bootstrap loads history this way); empty means the run's day.",
    ),
}


def model_dag(
    model: Model,
    base: str,
    *,
    schedule: Any,
    tags: list[str],
    doc: str | None,
    params: dict[str, Param] = PARAMS,
    max_active_runs: int = 1,
) -> Callable:
    """The ``@dag`` decorator of one model's DAG ``base``: every DAG of the project shares its id scheme, start date
    (:func:`_schedule.dag_start`), default arguments, the ``mlops`` tag, no catchup, and the file's docstring."""
    return dag(
        dag_id=model.dag_id(base),
        schedule=schedule,
        start_date=dag_start(model.config),
        catchup=False,
        max_active_runs=max_active_runs,
        default_args=model.default_args,
        params=params,
        tags=["mlops", *tags],
        doc_md=doc,
    )


def for_each_model(build: Callable[[Model], None]) -> None:
    """Build a DAG file's DAG once per model (Airflow's dynamic-DAG pattern)."""
    for model in models():
        build(model)


def scoring_queue(model: Model) -> dict[str, str]:
    """The ``queue`` argument of the model's scoring task: ``gpu`` where the task starts GPU Dask workers itself
    (:func:`pipelines.queues.scoring_queue`), else none, which is Airflow's default queue."""
    from _schedule import parsed_config
    from pipelines.queues import scoring_queue as queue_for

    queue = queue_for(parsed_config(model.config))
    return {"queue": queue} if queue else {}


def champion_version(config: Any, registry: Any = None) -> str | None:
    """The version holding the model's ``champion`` alias, or None before the first training (``registry``: the
    task's :class:`pipelines.registry.Registry`, else one is connected)."""
    from pipelines.registry import CHAMPION, connect

    champion = (registry or connect(config)).alias(config.model.name, CHAMPION)
    return champion.version if champion is not None else None


def skip_without_champion(model: Model, config: Any, consequence: str, registry: Any = None) -> None:
    """Skip the task (not fail it: nothing is wrong) while the model has no champion, saying what follows."""
    if champion_version(config, registry) is None:
        raise AirflowSkipException(
            f"no 'champion' version of {config.model.name!r} yet: {consequence}"
            f" (run {model.dag_id('model_training')} to register the first)"
        )


def run_config(model: Model, context: Any, overridable: Any = ()) -> Any:
    """The model's validated config, with the run's non-empty ``monitoring.*`` Params applied on top."""
    from pipelines.config import MonitoringConfig

    config = model.load()
    overrides = {name: context["params"][name] for name in overridable if context["params"].get(name) is not None}
    if overrides:
        monitoring = MonitoringConfig.model_validate({**config.monitoring.model_dump(), **overrides})
        config = config.model_copy(update={"monitoring": monitoring})
    return config


class _LogLines(io.TextIOBase):
    """A text stream that logs each non-empty line it is given at INFO."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.logger.info(line)
        return len(text)


@contextlib.contextmanager
def stderr_to_log() -> Iterator[None]:
    """Log what libraries print to stderr at INFO: Airflow records a task's raw stderr as ERROR lines.

    MLflow prints some notices straight to stderr (``eprint``, e.g. while logging a model), so training tasks showed
    them as red errors.
    """
    with contextlib.redirect_stderr(_LogLines(logging.getLogger("task.stderr"))):
        yield
