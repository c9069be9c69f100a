"""The first scheduled runs after unpausing, before any model exists: they skip and say why, they do not fail."""

from __future__ import annotations

from datetime import date

import pytest
from dag_runs import load_dags, run_dag


@pytest.mark.e2e
def test_retraining_without_a_champion_skips(airflow_db, config_file, monkeypatch):
    from airflow.models.dagrun import DagRun

    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    day = date(2026, 10, 5)
    assert run_dag(load_dags(), "retraining", day) == "success"
    run = DagRun.find(dag_id="retraining")[-1]
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"train_challenger": "skipped", "evaluate_and_promote": "skipped"}
