"""Drift detection triggers retraining, the better challenger is promoted, and a rollback restores the champion.

All through the real DAGs with ``dag.test()``: Evidently computes the drift, MLflow holds the aliases, Airflow
records the triggered retraining run that ``drift_monitoring`` creates.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from airflow.models.dagrun import DagRun
from dag_runs import load_dags, run_dag
from lakes import evidently_verdicts, write_config
from mlflow.tracking import MlflowClient

from pipelines import registry
from pipelines.config import load_config

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)


def _aliases(config) -> dict[str, str]:
    client = registry.connect(config)
    refs = {
        alias: registry.alias_version(client, config.model.name, alias) for alias in ("champion", "previous_champion")
    }
    return {alias: ref.version for alias, ref in refs.items() if ref}


def _plugin_links(dag_ids: list[str]) -> dict:
    """Each task instance's links as the API server computes them, through the plugin Airflow loaded."""
    import sys

    from airflow import plugins_manager
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    links = {link.name: link for link in plugins_manager.get_global_operator_extra_links()}
    assert {"MLflow", "Drift report"} <= set(links), sys.path
    found: dict = {}
    with create_session() as session:
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id.in_(dag_ids))):
            found[(ti.dag_id, ti.task_id)] = {name: link.get_link(None, ti_key=ti.key) for name, link in links.items()}
    return found


def test_drift_triggers_retraining_promotion_and_rollback(airflow_db, tmp_path, raw_data, monkeypatch):
    config_file = write_config(
        tmp_path,
        raw_data,
        training={"window_days": 3},
        monitoring={"sample_rate": 1.0, "window_days": 2, "drift_share_threshold": 0.15, "metric_drop_threshold": 0.1},
        promotion={"bootstrap": 100},
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    dags = load_dags()
    config = load_config(config_file)
    days = [START + timedelta(days=i) for i in range(10)]
    for day in days:
        assert run_dag(dags, "feature_extraction__credit_default", day) == "success"
    assert run_dag(dags, "model_training__credit_default", days[2], date=days[2].isoformat()) == "success"

    # A stable day: the check runs, nothing is triggered.
    for day in days[3:5]:
        assert run_dag(dags, "batch_scoring__credit_default", day) == "success"
    assert run_dag(dags, "drift_monitoring__credit_default", days[4]) == "success"
    assert DagRun.find(dag_id="retraining__credit_default") == []

    # Drifted days: the check starts the retraining DAG with its reason.
    for day in days[7:9]:
        assert run_dag(dags, "batch_scoring__credit_default", day) == "success"
    assert run_dag(dags, "drift_monitoring__credit_default", days[8]) == "success"
    report = Path(config.storage.root) / "reports" / f"date={days[8].isoformat()}" / "drift_summary.json"
    verdicts = {column: v["drifted"] for column, v in json.loads(report.read_text())["columns"].items()}
    assert verdicts == {column: v["drifted"] for column, v in evidently_verdicts(config, days[8]).items()}
    triggered = DagRun.find(dag_id="retraining__credit_default")
    assert len(triggered) == 1
    conf = triggered[0].conf
    assert conf["date"] == days[8].isoformat() and "drift share" in conf["reason"]

    # Run what was triggered: the challenger (trained on drifted data) beats the champion on the newest day.
    assert _aliases(config) == {"champion": "1"}
    assert run_dag(dags, "retraining__credit_default", logical=triggered[0].logical_date, **conf) == "success"
    assert _aliases(config) == {"champion": "2", "previous_champion": "1"}
    tags = MlflowClient(config.tracking_uri).get_model_version(config.model.name, "2").tags
    assert tags["decision.promoted"] == "True" and "drift share" in tags["decision.trigger"]

    # History is not rewritten: checking day 8 again under the new champion (as a backlog would) changes nothing.
    seen = report.read_text()
    assert run_dag(dags, "drift_monitoring__credit_default", days[8]) == "success"
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    drift_runs = client.search_runs([experiment], f"tags.kind = 'drift' and tags.day = '{days[8].isoformat()}'")
    assert [run.data.tags["model_version"] for run in drift_runs] == ["1"] and report.read_text() == seen

    # The plugin's buttons on those task instances point at the promoted version and at the drift run's report.
    links = _plugin_links(["retraining__credit_default", "drift_monitoring__credit_default"])
    assert links[("retraining__credit_default", "evaluate_and_promote")]["MLflow"].endswith(
        "/#/models/credit_default/versions/2"
    )
    assert "/runs/" in links[("drift_monitoring__credit_default", "check")]["Drift report"]

    assert run_dag(dags, "model_rollback__credit_default", days[8], reason="e2e rollback") == "success"
    assert _aliases(config) == {"champion": "1", "previous_champion": "2"}
