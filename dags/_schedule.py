"""The DAGs' dates and cadences, from the config's ``schedule`` section (read at parse time: YAML + pydantic only),
and the one rule mapping a run to its partition day.

Airflow creates no task instance for a run whose logical date is before the DAG's ``start_date``, and reports such
a run as a success: `airflow dags test feature_extraction__credit_default 2018-03-01` would "succeed" having
done nothing. So the DAGs' own ``start_date`` stays far back (:data:`FLOOR`, or the configured start if that is
earlier), every run gets its tasks, and the tasks refuse a day before ``schedule.start_date`` with a message. With
``catchup=False`` the scheduler still starts with the latest interval; history is loaded with
``airflow backfill create`` or ``make bootstrap``.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable

FLOOR = date(2000, 1, 1)


@lru_cache(maxsize=64)
def _parsed(path: str, modified: float) -> Any:
    """Cached per file version: the six DAG files of one parse read each YAML once."""
    from pipelines.config import load_config  # yaml + pydantic: cheap, and Airflow has pydantic loaded already

    return load_config(path)


def parsed_config(path: str) -> Any:
    """The validated config at ``path``, as the DAG processor sees it now."""
    file = Path(path)
    return _parsed(path, file.stat().st_mtime if file.is_file() else 0.0)


def schedule_config(path: str) -> Any:
    """The ``schedule`` section of the config at ``path``."""
    return parsed_config(path).schedule


def dag_start(path: str) -> pendulum.DateTime:
    """Airflow's start_date: far enough back that no run is silently empty (the tasks enforce the real start)."""
    configured = schedule_config(path).start_date
    first = min(FLOOR, configured) if configured else FLOOR
    return pendulum.datetime(first.year, first.month, first.day, tz="UTC")


def timetable(field: str, path: str) -> CronDataIntervalTimetable | None:
    """A data-interval timetable for the cron in ``schedule.<field>``; None (manual only) when it is null."""
    cron = getattr(schedule_config(path), field)
    return CronDataIntervalTimetable(cron, timezone="UTC") if cron else None


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
