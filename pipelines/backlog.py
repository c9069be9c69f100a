"""Which days still need scoring or a drift check, read from the lake and the registry, not from asset events.

Under the scheduler, asset events can be lost: with ``max_active_runs=1``, events that arrive while a run is queued
are never consumed (apache/airflow#56050), so a backfill of three days could score one. The lake and the MLflow
store are the record of what was done, so each asset-triggered run reconciles from them:

- a day is **due for scoring** when its feature partition was written after its predictions (or has none);
- a day is **due for a drift check** when its predictions were written after the last drift check of that day
  (or it has none). A check is never repeated for predictions already checked, whichever model is champion now,
  so a backlog never re-checks old days against today's champion and the record of what was seen stays as it was.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from pipelines.config import Config
from pipelines.storage import Lake, Table

log = logging.getLogger(__name__)


def _modified_at(info: dict[str, Any]) -> float | None:
    """Modification time (epoch seconds) from an fsspec info dict: local disks say ``mtime``, S3 ``LastModified``."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if value is not None else None


def partition_written_at(config: Config, table: Table, day: date) -> float | None:
    """When the day's partition of ``table`` was last written (its newest file), or None when it does not exist."""
    lake = Lake.from_config(config)
    fs, path = lake.fs(lake.partition(table, day))
    if not fs.exists(path):
        return None
    infos = fs.find(path, detail=True).values() or [fs.info(path)]
    times = [t for t in map(_modified_at, infos) if t is not None]
    return max(times) if times else None


def stale(written: dict[date, float | None], done: dict[date, float]) -> list[date]:
    """Days written after they were last processed, or never processed, oldest first (times in epoch seconds)."""
    return sorted(day for day, at in written.items() if day not in done or (at is not None and at > done[day]))


def due_for_scoring(config: Config) -> list[date]:
    """Days whose features were written after their predictions (or that have none), oldest first."""
    days = Lake.from_config(config).days(Table.FEATURES)
    scored = {day: partition_written_at(config, Table.PREDICTIONS, day) for day in days}
    written = {day: partition_written_at(config, Table.FEATURES, day) for day in days}
    return stale(written, {day: at for day, at in scored.items() if at is not None})


def last_drift_checks(config: Config) -> dict[date, float]:
    """Per day, when its newest drift check started (epoch seconds), from the MLflow runs ``check_drift`` logs."""
    from pipelines.registry import RunKind, Tag, connect

    checks: dict[date, float] = {}
    for run in connect(config).find_runs(RunKind.DRIFT, **{Tag.MODEL_NAME: config.model.name}):
        day = date.fromisoformat(run.tags[Tag.DAY])
        checks[day] = max(run.start_time / 1000, checks.get(day, 0.0))
    return checks


def due_for_drift_check(config: Config, days: list[date] | None = None) -> list[date]:
    """Of ``days`` (default: every scored day), those whose predictions are newer than their last drift check."""
    scored = Lake.from_config(config).days(Table.PREDICTIONS)
    wanted = [day for day in scored if days is None or day in days]
    checks = last_drift_checks(config)
    due = stale({day: partition_written_at(config, Table.PREDICTIONS, day) for day in wanted}, checks)
    for day in sorted(set(wanted) - set(due)):
        log.info("drift for %s was checked after its predictions were written: not checking it again", day)
    return due
