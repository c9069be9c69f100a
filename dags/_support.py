"""Wiring shared by the DAG files: the assets, default arguments, Params, and how a run maps to a partition day.

Kept light on purpose (no pandas, MLflow or Dask here): the DAG processor imports it on every parse.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, Param, RetryAction, RetryRule

REGISTRY_POOL = "mlops_registry"  # one slot: promotions and rollbacks never overlap
FEATURES = Asset(name="mlops.features")
PREDICTIONS = Asset(name="mlops.predictions")

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
    "config": Param(
        None,
        type=["null", "string"],
        title="Config file",
        description="YAML config to run with; empty means MLOPS_CONFIG or include/config/demo.yaml.",
    ),
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


def config_arg(context: Any) -> str | None:
    return context["params"].get("config")


def run_config(context: Any, overridable: Any = ()) -> Any:
    """The validated config for this run, with the run's non-empty ``monitoring.*`` Params applied on top."""
    from pipelines.config import MonitoringConfig, load_config

    config = load_config(config_arg(context))
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
