"""The first scheduled runs after unpausing, before any model exists: they skip and say why, they do not fail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dag_runs import load_dags


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
