"""The DAGs' start date and crons come from the config's ``schedule`` section."""

from __future__ import annotations

import sys
from pathlib import Path

import pendulum
import pytest
from lakes import REPO, write_config

sys.path.insert(0, str(REPO / "dags"))
from _schedule import FLOOR, dag_start, timetable


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
    assert timetable("extraction_cron", path).expression == "0 6 * * *"
    assert timetable("retraining_cron", path) is None  # triggered/manual only

    demo = str(REPO / "include/config/demo.yaml")  # starts 2026-10-01: Airflow's start stays at the floor
    assert dag_start(demo) == pendulum.datetime(FLOOR.year, FLOOR.month, FLOOR.day, tz="UTC")
    assert timetable("extraction_cron", demo).expression == "0 0 * * *"
    assert timetable("retraining_cron", demo).expression == "0 3 * * 1"
