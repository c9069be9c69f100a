"""What the chain's partitions cannot express: a day's predictions are checked for drift once, and after the
days before it in its window.

The chain runs on Airflow's partitioned assets (``dags/_schedule.py``): every predictions event for day D starts
one ``drift_monitoring`` run keyed D, so rescoring a day checks it again and no day is lost. A run that no new
predictions started (a manual trigger, a cleared run) must not check predictions that were already checked: the
champion may have changed since, and past reports and MLflow drift runs record what was seen then. So each drift
run is tagged ``predictions`` with the predictions it checked (the scoring run that wrote them and when, as written
in the predictions themselves: no clocks compared), and a day is due exactly when its current predictions are not
the recorded ones.

Partitions carry no order: a backfill extracts several days at once, and a later day that finishes first is scored
and checked first, its drift window missing the day before it (scored moments later). A check therefore waits for
the earlier days of its window that are extracted but not scored yet (:func:`unscored_in_window`), bounded by
``monitoring.window_wait_minutes`` (a day whose scoring fails for good must not hold the checks after it forever).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipelines.config import Config
from pipelines.errors import InvariantError
from pipelines.registry import Registry, RunKind, Tag, connect
from pipelines.storage import Lake, Table

if TYPE_CHECKING:
    from pipelines.monitoring import DriftResult


def predictions_written(config: Config, day: date) -> str | None:
    """Which write of the day's predictions the lake holds: ``"<scoring run id> <scoring time>"``, columns every
    prediction row carries (a cleared and rerun scoring run keeps its id, not its time); None without predictions."""
    lake = Lake.from_config(config)
    if not lake.exists(Table.PREDICTIONS, day):
        return None
    written = lake.read(Table.PREDICTIONS, day, columns=["run_id", "scored_at"]).drop_duplicates()
    if written.empty:
        return None
    if len(written) > 1:  # one scoring run writes a day whole; two would be a broken publish
        runs = written.to_dict("records")
        raise InvariantError(f"predictions of {day} come from {len(runs)} scoring runs, not one: {runs}")
    run_id, scored_at = written.iloc[0]
    return f"{run_id} {scored_at.isoformat()}"


def already_checked(config: Config, day: date, registry: Registry | None = None) -> bool:
    """Whether a drift run of the model records the day's current predictions (one search, of that day's runs)."""
    written = predictions_written(config, day)
    if written is None:
        return False
    registry = registry or connect(config)
    tags = {Tag.MODEL_NAME: config.model.name, Tag.DAY: day.isoformat(), Tag.PREDICTIONS: written}
    return bool(registry.find_runs(RunKind.DRIFT, **tags))


def check_predictions(config: Config, day: date, registry: Registry | None = None, render: bool = True) -> DriftResult:
    """The day's drift check (:func:`pipelines.monitoring.check_drift`, its report drawn now or, ``render`` False,
    later), its run tagged with the predictions it checked. They are read before the check: predictions rewritten
    during it are not the ones recorded, so their own event's run checks them. A skipped check logs no run and
    records nothing."""
    from pipelines.monitoring import check_drift

    registry = registry or connect(config)
    written = predictions_written(config, day)
    result = check_drift(config, day, registry, render=render)
    if result.mlflow_run_id and written is not None:
        registry.set_tags(result.mlflow_run_id, {Tag.PREDICTIONS: written})
    return result


def unscored_in_window(config: Config, days: list[date]) -> list[date]:
    """The days a check of ``days`` should wait for: extracted, not scored, before the last of ``days`` and inside
    the first one's window (``monitoring.window_days``), and not before the first day ever scored (the first
    training window is extracted and never scored). Two reads of the tables' logs."""
    lake = Lake.from_config(config)
    scored = set(lake.days(Table.PREDICTIONS))
    if not scored or not days:
        return []
    first = max(min(days) - timedelta(days=config.monitoring.window_days - 1), min(scored))
    return unscored(lake.days(Table.FEATURES), scored, first, max(days), set(days))


def unscored(extracted: list[date], scored: set[date], first: date, last: date, own: set[date]) -> list[date]:
    """Of the extracted days from ``first`` up to (not including) ``last``, those not scored and not the run's own.
    Pure."""
    return [d for d in extracted if first <= d < last and d not in scored and d not in own]
