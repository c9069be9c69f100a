"""The first scheduled runs after unpausing, before any model exists: they skip and say why, they do not fail."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from dag_runs import load_dags
from lakes import write_config


@pytest.mark.e2e
def test_retraining_without_a_champion_skips(airflow_db, config_file, monkeypatch):
    from airflow.models.dagrun import DagRun

    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    ran = load_dags()["retraining__credit_default"].test(
        logical_date=datetime.now(UTC), run_conf={"date": "2026-10-05"}
    )
    (run,) = DagRun.find(dag_id="retraining__credit_default", run_id=ran.run_id)
    assert str(getattr(run.state, "value", run.state)) == "success"
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"train_challenger": "skipped", "evaluate_and_promote": "skipped"}


@pytest.mark.e2e
def test_extraction_waits_for_a_day_whose_data_has_not_landed_then_extracts_it(
    airflow_db, raw_data, tmp_path, monkeypatch
):
    """Unpausing starts the run for the newest day, whose files may not be there yet: the sensor waits (rescheduling,
    its worker slot free) and the day is extracted once its file lands; nothing fails in between."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from pipelines.config import load_config
    from pipelines.storage import Lake, Table

    shutil.copytree(raw_data, tmp_path / "data")
    config_file = write_config(tmp_path, tmp_path / "data", schedule={"source_poke_minutes": 0.05})
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    today = datetime.now(UTC).date()
    arriving = pd.read_parquet(sorted((raw_data / "raw").glob("*.parquet"))[0])
    shift = pd.Timestamp(today, tz="UTC") - arriving["event_time"].min().floor("D")
    arriving = arriving.assign(event_time=arriving["event_time"] + shift)
    arriving = arriving[arriving["event_time"].dt.date == today]

    def land_once_waiting() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with create_session() as session:
                states = session.scalars(
                    select(TaskInstance.state).where(TaskInstance.task_id == "wait_for_source")
                ).all()
            if "up_for_reschedule" in [str(s) for s in states]:
                staged = tmp_path / "data" / "raw" / "arriving.tmp"
                arriving.to_parquet(staged, index=False)
                staged.rename(staged.with_suffix(".parquet"))  # lands whole, as an upload's final rename does
                return
            time.sleep(0.5)

    lander = threading.Thread(target=land_once_waiting, daemon=True)
    lander.start()
    ran = load_dags()["feature_extraction__credit_default"].test(
        logical_date=datetime.now(UTC), run_conf={"date": today.isoformat()}
    )
    lander.join(timeout=5)

    assert (tmp_path / "data" / "raw" / "arriving.parquet").exists(), "the sensor never waited"
    assert str(getattr(ran.state, "value", ran.state)) == "success"
    assert {ti.task_id: str(ti.state) for ti in ran.get_task_instances()} == {
        "wait_for_source": "success",
        "days_to_extract": "success",
        "extract": "success",
        # no materialize: raw features only, nothing for an online store
    }
    lake = Lake.from_config(load_config(config_file))
    assert len(lake.read(Table.FEATURES, today)) + len(lake.read(Table.QUARANTINE, today)) == len(arriving) > 0
