"""The three DAGs run for real with ``dag.test()`` (Airflow metadata DB, MLflow SQLite registry, Dask workers)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dag_runs import load_dags, run_dag
from mlflow.tracking import MlflowClient

from pipelines.config import load_config
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)


def test_features_training_scoring_chain(airflow_db, config_file, monkeypatch):
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    dags = load_dags()  # parsed per test: in-process dag.test() can leave one run's conf in the params
    config = load_config(config_file)
    days = [START + timedelta(days=i) for i in range(4)]

    for day in days[:3]:
        assert run_dag(dags, "feature_extraction__credit_default", day) == "success"
    assert run_dag(dags, "model_training__credit_default", days[2], date=days[2].isoformat(), reason="e2e") == "success"
    assert run_dag(dags, "feature_extraction__credit_default", days[3]) == "success"
    assert run_dag(dags, "batch_scoring__credit_default", days[3]) == "success"

    for day in days:
        valid = Lake.from_config(config).count_rows(Table.FEATURES, day)
        quarantined = Lake.from_config(config).count_rows(Table.QUARANTINE, day)
        assert (valid, quarantined) == (592, 8)
    client = MlflowClient(config.tracking_uri)
    champion = client.get_model_version_by_alias(config.model.name, "champion")
    assert str(champion.version) == "1"
    assert champion.tags["window_start"] == "2026-10-01" and champion.tags["window_end"] == "2026-10-03"
    assert client.get_run(champion.run_id).data.tags["reason"] == "e2e"

    predictions = Lake.from_config(config).read(Table.PREDICTIONS, days[3])
    assert len(predictions) == 592 and predictions["customer_id"].is_unique
    assert set(predictions["model_version"]) == {"1"}
    assert predictions["run_id"].str.startswith("manual__").all()
    assert {"customer_id", "prediction", "probability", "model_name", "logical_date", "scored_at"} <= set(predictions)

    # Rerunning a day through Airflow replaces its partitions: same rows, no duplicates.
    assert run_dag(dags, "feature_extraction__credit_default", days[3]) == "success"
    assert run_dag(dags, "batch_scoring__credit_default", days[3]) == "success"
    again = Lake.from_config(config).read(Table.PREDICTIONS, days[3])
    assert sorted(again["customer_id"]) == sorted(predictions["customer_id"])


def test_torch_model_through_the_same_dags(airflow_db, tmp_path, raw_data, monkeypatch, scheduler_address):
    from lakes import write_config

    config_file = write_config(
        tmp_path,
        raw_data,
        model={"name": "credit_torch", "flavor": "torch", "estimator": None, "params": {"epochs": 3}},
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    dags = load_dags()
    config = load_config(config_file)
    days = [START + timedelta(days=i) for i in range(3)]
    for day in days:
        assert run_dag(dags, "feature_extraction__credit_torch", day) == "success"
    # day 3's window: labels arrive 1 to 3 days late, so by day 2 too few had (197 < training.min_rows)
    assert run_dag(dags, "model_training__credit_torch", days[2], date=days[2].isoformat()) == "success"
    assert run_dag(dags, "batch_scoring__credit_torch", days[2]) == "success"

    champion = MlflowClient(config.tracking_uri).get_model_version_by_alias("credit_torch", "champion")
    assert "pytorch" in __import__("mlflow").models.get_model_info(f"models:/credit_torch/{champion.version}").flavors
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, days[2])
    assert len(predictions) == 592 and predictions["probability"].between(0, 1).all()
