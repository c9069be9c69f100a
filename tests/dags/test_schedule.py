"""The DAGs' start date and crons come from the config's ``schedule`` section; the chain's runs are keyed by day."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import Asset
from airflow.serialization.encoders import coerce_to_core_timetable
from airflow.timetables.base import TimeRestriction
from lakes import REPO, write_config

sys.path.insert(0, str(REPO / "dags"))
from _schedule import FLOOR, dag_start, extraction_timetable, per_day, timetable


@pytest.mark.unit
def test_start_and_crons_come_from_the_config(tmp_path: Path):
    path = str(
        write_config(
            tmp_path,
            tmp_path,
            schedule={"start_date": "1995-05-01", "extraction_cron": "0 6 * * *", "retraining_cron": None},
        )
    )
    assert dag_start(path) == pendulum.datetime(1995, 5, 1, tz="UTC")  # earlier than the floor: the config's
    assert extraction_timetable(path).expression == "0 6 * * *"
    assert timetable("retraining_cron", path) is None  # triggered/manual only

    demo = str(REPO / "include/config/demo.yaml")  # starts 2026-10-01: Airflow's start stays at the floor
    assert dag_start(demo) == pendulum.datetime(FLOOR.year, FLOOR.month, FLOOR.day, tz="UTC")
    assert extraction_timetable(demo).expression == "0 0 * * *"
    assert timetable("retraining_cron", demo).expression == "0 3 * * 1"


def _utc(*parts: int) -> pendulum.DateTime:
    return pendulum.datetime(*parts, tz="UTC")


@pytest.mark.unit
@pytest.mark.parametrize("cron", ["0 0 * * *", "0 6 * * *"])
def test_extraction_runs_are_keyed_by_the_day_they_extract(tmp_path: Path, cron: str):
    """As the scheduler computes them (the core timetable): the run at D+1's tick is keyed D, the day that has just
    ended; a backfill from D to E keys one run per day, D and E included, as `airflow backfill create` lists them."""
    path = str(write_config(tmp_path, tmp_path, schedule={"extraction_cron": cron}))
    core = coerce_to_core_timetable(extraction_timetable(path))
    tick = _utc(2026, 10, 2, int(cron.split()[1]))
    restriction = TimeRestriction(earliest=_utc(2000, 1, 1), latest=None, catchup=True)
    last = core.next_dagrun_info_v2(last_dagrun_info=None, restriction=restriction)
    scheduled = last
    while scheduled.run_after < tick:
        scheduled = core.next_dagrun_info_v2(last_dagrun_info=scheduled, restriction=restriction)
    assert (scheduled.run_after, scheduled.partition_key) == (tick, "2026-10-01")

    backfill = core.iter_partition_dagrun_infos(earliest=_utc(2026, 10, 1), latest=_utc(2026, 10, 3, 23, 59))
    assert [info.partition_key for info in backfill] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert core.resolve_partition_date("2026-10-01") == datetime(2026, 10, 1, tzinfo=UTC)  # a manual run's key


@pytest.mark.unit
def test_scoring_and_drift_runs_take_the_day_key_of_their_event():
    """The day mapper passes a day key through, dates the run with it (the grid filters by partition date), and
    refuses what is not a day, so a mis-keyed event starts no run."""
    core = coerce_to_core_timetable(per_day(Asset(name="mlops.features.m")))
    mapper = core.get_partition_mapper(name="mlops.features.m")
    assert mapper.to_downstream("2026-10-01") == "2026-10-01"
    assert core.resolve_partition_date("2026-10-01") == datetime(2026, 10, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        mapper.to_downstream("2026-10-01T00:00:00")
