"""The three DAGs run for real with ``dag.test()`` (Airflow metadata DB, MLflow SQLite registry, Dask workers)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import BundleDagBag
from mlflow.tracking import MlflowClient

from pipelines import storage
from pipelines.config import load_config
from pipelines.features import FEATURES, QUARANTINE
from pipelines.scoring import PREDICTIONS

DAGS = Path(__file__).resolve().parents[2] / "dags"
START = date(2026, 10, 1)


@pytest.fixture(scope="module")
def dags(airflow_db):
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    assert bag.import_errors == {}
    return bag.dags


def _run(dags, dag_id: str, day: date, **conf) -> str:
    logical = pendulum.datetime(day.year, day.month, day.day, tz="UTC").add(days=1)
    dag_run = dags[dag_id].test(logical_date=logical, run_conf=conf or None)
    return str(getattr(dag_run.state, "value", dag_run.state))


def test_features_training_scoring_chain(dags, config_file, monkeypatch):
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    config = load_config(config_file)
    days = [START + timedelta(days=i) for i in range(4)]

    for day in days[:3]:
        assert _run(dags, "feature_extraction", day) == "success"
    assert _run(dags, "model_training", days[2], date=days[2].isoformat(), reason="e2e") == "success"
    assert _run(dags, "feature_extraction", days[3]) == "success"
    assert _run(dags, "batch_scoring", days[3], config=str(config_file)) == "success"

    for day in days:
        valid = storage.count_rows(storage.partition_url(config.storage.root, FEATURES, day))
        quarantined = storage.count_rows(storage.partition_url(config.storage.root, QUARANTINE, day))
        assert (valid, quarantined) == (592, 8)
    client = MlflowClient(config.tracking_uri)
    champion = client.get_model_version_by_alias(config.model.name, "champion")
    assert str(champion.version) == "1"
    assert champion.tags["window_start"] == "2026-10-01" and champion.tags["window_end"] == "2026-10-03"
    assert client.get_run(champion.run_id).data.tags["reason"] == "e2e"

    predictions = storage.read_partition(config.storage.root, PREDICTIONS, days[3])
    assert len(predictions) == 592 and predictions["customer_id"].is_unique
    assert set(predictions["model_version"]) == {"1"}
    assert predictions["run_id"].str.startswith("manual__").all()
    assert {"customer_id", "prediction", "probability", "model_name", "logical_date", "scored_at"} <= set(predictions)

    # Rerunning a day through Airflow replaces its partitions: same rows, no duplicates.
    assert _run(dags, "feature_extraction", days[3]) == "success"
    assert _run(dags, "batch_scoring", days[3]) == "success"
    again = storage.read_partition(config.storage.root, PREDICTIONS, days[3])
    assert sorted(again["customer_id"]) == sorted(predictions["customer_id"])


def test_bad_config_fails_the_run(dags, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: {}\n")
    assert _run(dags, "feature_extraction", START, config=str(broken)) == "failed"
