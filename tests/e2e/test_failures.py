"""Failures a retry cannot fix get exactly one try when Airflow runs the DAG, and say what is wrong."""

from __future__ import annotations

from datetime import date

import pendulum
import pytest
from airflow.models.dagrun import DagRun
from dag_runs import load_dags, run_dag

pytestmark = pytest.mark.e2e


def test_scoring_a_day_without_features_fails_once_naming_the_partition(airflow_db, config_file, capfd, monkeypatch):
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    day = date(2031, 3, 4)  # no feature partition for this day
    capfd.readouterr()
    state = run_dag(load_dags(), "batch_scoring__credit_default", day, date=day.isoformat())
    log = capfd.readouterr().out  # dag.test() runs the task in this process; its log goes to stdout

    assert state == "failed"
    (run,) = DagRun.find(dag_id="batch_scoring__credit_default", logical_date=pendulum.datetime(2031, 3, 5, tz="UTC"))
    tis = [ti for ti in run.get_task_instances() if ti.task_id == "score"]
    assert [(ti.state, ti.try_number, ti.max_tries) for ti in tis] == [("failed", 1, 2)]  # 2 retries left, unused
    assert "Retry policy decision" in log and "action=fail" in log
    assert (
        f"pipelines.errors.DataError: feature partition {config_file.parent}/lake/features/date=2031-03-04"
        " does not exist; run feature_extraction for 2031-03-04 first" in log
    )
