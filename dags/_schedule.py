"""The DAGs' dates and cadences, from the config's ``schedule`` section (read at parse time: YAML + pydantic only),
the day partitions that carry the chain, and the one rule mapping a run to its partition day.

The chain is keyed by Airflow's partitioned assets: ``feature_extraction`` runs on a
:class:`~airflow.sdk.CronPartitionTimetable` whose partition key is the day it extracts (``YYYY-MM-DD``), every day it
publishes emits a features event with that key, and ``batch_scoring`` and ``drift_monitoring`` run once per key on a
:class:`~airflow.sdk.PartitionedAssetTimetable`. The scheduler creates one run per key it receives, whatever
``max_active_runs`` is, so no day is lost or merged into another's run (plain asset events are: apache/airflow#56050).

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
from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    CronPartitionTimetable,
    PartitionedAssetTimetable,
    StartOfDayMapper,
)

FLOOR = date(2000, 1, 1)
DAY_KEY = "%Y-%m-%d"  # the partition key of a day, as the lake names it (date=YYYY-MM-DD)


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


def extraction_timetable(path: str) -> CronPartitionTimetable:
    """Runs at ``schedule.extraction_cron``, each for the day before its tick, keyed by that day.

    ``run_offset=-1`` keys the run at D+1's tick with D, the day that has just ended; ``airflow backfill create``
    enumerates the ticks from ``--from-date`` to ``--to-date`` (both inclusive, at the cron's time of day) and keys
    each with its own day.
    """
    cron = schedule_config(path).extraction_cron
    return CronPartitionTimetable(cron, timezone="UTC", run_offset=-1, key_format=DAY_KEY)


def per_day(asset: Asset) -> PartitionedAssetTimetable:
    """One run per day key of ``asset``'s events. The day mapper passes a day key through unchanged, gives the run
    its ``partition_date`` (the grid's partition filters use it) and rejects a key that is not a day."""
    return PartitionedAssetTimetable(assets=asset, default_partition_mapper=StartOfDayMapper(input_format=DAY_KEY))


def partition_day(context: Any) -> date:
    """The one rule mapping a run to a day: its partition key, else the ``date`` Param, else the last full day before
    the interval's end.

    Scheduled, backfilled and asset-triggered runs of the chain carry the day as their ``partition_key``, and so
    does a run triggered with one (the UI's "Partition key" field, the REST API's ``partition_key``). A run without
    one (``airflow dags trigger`` or ``dags test`` with ``--conf '{"date": ...}'``, ``dag.test()``, the DAGs that
    are not partitioned) takes the ``date`` Param; a run that names both must name the same day. Without either, a
    daily data-interval run for ``[D, D+1)`` gives D, and a manual or trigger-timetable run (empty interval) at time
    T gives the day before T, the same day a scheduled run at T would have processed.
    """
    key = getattr(context.get("dag_run"), "partition_key", None)
    requested = context["params"].get("date")
    if key and requested and key != requested:
        from pipelines.errors import ConfigError  # no dependencies: cheap

        raise ConfigError(
            f"the run's partition key is {key} but its date Param is {requested}: a run processes one day "
            "(leave the date Param empty, or trigger without a partition key)"
        )
    if key or requested:
        return date.fromisoformat(key or requested)
    anchor = context.get("data_interval_end") or context.get("logical_date") or context["dag_run"].run_after
    return (anchor.astimezone(UTC) - timedelta(days=1)).date()


def run_of_days(context: Any) -> list[date]:
    """The days a run processes: its day (:func:`partition_day`) through the ``through`` Param, oldest first; its day
    alone when ``through`` is empty (every scheduled, backfilled and asset-triggered run).

    A run of days is how history is loaded at data speed (``make bootstrap``): each day is still validated,
    published, scored, checked and recorded as its own run would do it, but Airflow's fixed cost of a run and its
    task instances is paid once per run of days, not once per day.
    """
    first, through = partition_day(context), context["params"].get("through")
    if not through:
        return [first]
    last = date.fromisoformat(through)
    if last < first:
        from pipelines.errors import ConfigError

        raise ConfigError(f"the through Param ({last}) is before the run's day ({first}): a run of days runs forward")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
