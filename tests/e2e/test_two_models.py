"""Two configs in one deployment: two independent sets of DAGs, each with its own assets, lake and registry entry.

A model's asset events queue only that model's downstream DAGs, its runs write only its own lake, and its
`model_training` bootstraps a champion once (later versions must pass `retraining`'s challenger gate).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from airflow.models.asset import AssetEvent, AssetModel, PartitionedAssetKeyLog
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from dag_runs import load_dags, run_dag
from lakes import write_config
from mlflow.tracking import MlflowClient
from sqlalchemy import select, update

from pipelines.config import load_config
from pipelines.registry import CHAMPION, connect
from pipelines.storage import Lake, Table

START = date(2026, 10, 1)
BASES = ("feature_extraction", "model_training", "batch_scoring", "drift_monitoring", "retraining", "model_rollback")


def _asset_traffic(model: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Assets that received events from this model's DAGs, and the runs those events queued: (DAG, partition key)."""
    with create_session() as session:
        emitted = set(
            session.scalars(
                select(AssetModel.name)
                .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
                .where(AssetEvent.source_dag_id.like(f"%__{model}"))
            )
        )
        queued = set(
            session.execute(
                select(PartitionedAssetKeyLog.target_dag_id, PartitionedAssetKeyLog.target_partition_key)
                .join(AssetModel, PartitionedAssetKeyLog.asset_id == AssetModel.id)
                .where(AssetModel.name.in_(emitted or {""}))
            ).tuples()
        )
    return emitted, queued


@pytest.mark.e2e
def test_two_configs_make_two_independent_chains(
    airflow_db, tmp_path: Path, raw_data: Path, monkeypatch, scheduler_address
):
    configs = tmp_path / "include" / "config"
    configs.mkdir(parents=True)
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        write_config(tmp_path / name, raw_data, model={"name": name, "params": {"max_iter": 20}}).rename(
            configs / f"{name}.yaml"
        )
    monkeypatch.setenv("MLOPS_CONFIGS", str(configs / "*.yaml"))
    dags = load_dags()
    assert set(dags) == {f"{base}__{model}" for base in BASES for model in ("alpha", "beta")}
    alpha, beta = (load_config(configs / f"{name}.yaml") for name in ("alpha", "beta"))

    days = [START + timedelta(days=i) for i in range(3)]
    assert run_dag(dags, "feature_extraction__alpha", days[0]) == "success"  # also writes every DAG to the DB
    with create_session() as session:  # the scheduler queues only unpaused consumers: unpause both models' scoring
        session.execute(update(DagModel).where(DagModel.dag_id.like("batch_scoring__%")).values(is_paused=False))
    for day in days[1:]:
        assert run_dag(dags, "feature_extraction__alpha", day) == "success"
    emitted, queued = _asset_traffic("alpha")
    assert emitted == {"mlops.features.alpha"}  # beta's scoring never starts; alpha's once per day
    assert queued == {("batch_scoring__alpha", day.isoformat()) for day in days[1:]}

    # trained on day 3's window: labels arrive 1 to 3 days late, so by day 2 too few had (197 < training.min_rows)
    assert run_dag(dags, "model_training__alpha", days[2], date=days[2].isoformat(), reason="e2e") == "success"
    assert run_dag(dags, "batch_scoring__alpha", days[2]) == "success"
    assert Lake.from_config(alpha).count_rows(Table.PREDICTIONS, days[2]) == 592
    assert not Path(beta.storage.root).exists()  # nothing of alpha's lands in beta's lake
    beta_store = MlflowClient(
        beta.tracking_uri, registry_uri=beta.tracking_uri
    )  # beta's store exists (a copy of an empty one) but stays empty
    assert (
        beta_store.search_registered_models() == []
        and beta_store.search_experiments(filter_string="name != 'Default'") == []
    )

    # A second model_training run would register a version nothing evaluates: it skips, the champion stays.
    assert run_dag(dags, "model_training__alpha", days[2], date=days[2].isoformat()) == "success"
    (again,) = [r for r in DagRun.find(dag_id="model_training__alpha") if r.conf.get("reason") != "e2e"]
    assert [str(ti.state) for ti in again.get_task_instances()] == ["skipped"]
    assert connect(alpha).alias("alpha", CHAMPION).version == "1"
