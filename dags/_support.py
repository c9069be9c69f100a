"""Wiring shared by the DAG files: the models they are generated for, their assets, default arguments, Params, and
how a run maps to a partition day.

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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, Param, RetryAction, RetryRule

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
        from _alerts import FailureAlert  # imports this module: deferred

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

PARAMS: dict[str, Param] = {
    "date": Param(
        None,
        type=["null", "string"],
        format="date",
        title="Partition day",
        description="Day to process (YYYY-MM-DD); empty means the day that ended with the run's data interval.",
    ),
}


def partition_day(context: Any) -> date:
    """The one rule mapping a run to a day: the ``date`` Param, else the last full day before the interval's end.

    A daily data-interval run for ``[D, D+1)`` gives D; a manual or trigger-timetable run (empty interval) at time
    T gives the day before T, which is the same day a scheduled run at T would have processed.
    """
    requested = context["params"].get("date")
    if requested:
        return date.fromisoformat(requested)
    anchor = context.get("data_interval_end") or context.get("logical_date") or context["dag_run"].run_after
    return (anchor.astimezone(UTC) - timedelta(days=1)).date()


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

    MLflow prints its registration notices ("Successfully registered model ...") straight to stderr, so every
    training task showed them as red errors.
    """
    with contextlib.redirect_stderr(_LogLines(logging.getLogger("task.stderr"))):
        yield
