from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lakes import write_config

from pipelines import storage
from pipelines.config import Config, load_config
from pipelines.features import FEATURES, QUARANTINE, extract_features
from pipelines.validation import REASON, DataError

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 2)


@pytest.fixture
def config(tmp_path: Path, raw_data: Path) -> Config:
    """The test config without an MLflow store: extraction never touches one."""
    return load_config(write_config(tmp_path, raw_data, mlflow_store=False))


def _events(n: int = 6, day: date = DAY) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": [f"K{i}" for i in range(n)],
            "event_time": [start + pd.Timedelta(hours=i) for i in range(n)],
            "income": rng.uniform(20_000, 90_000, n),
            "age": rng.uniform(20, 70, n).round(),
            "debt_ratio": rng.uniform(0, 1, n),
            "credit_utilization": rng.uniform(0, 1, n),
            "num_late_payments": rng.integers(0, 3, n).astype(float),
            "loan_amount": rng.uniform(1000, 20000, n),
            "tenure_months": rng.integers(1, 200, n).astype(float),
            "num_accounts": rng.integers(1, 8, n).astype(float),
            "region": ["north"] * n,
            "employment_type": ["salaried"] * n,
            "product": ["auto"] * n,
        }
    )


def _config(tmp_path: Path, source: str):
    raw = tmp_path / "src"
    (raw / "labels").mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path, raw, mlflow_store=False)
    text = path.read_text().replace(str(raw / "raw" / "*.parquet"), source)
    path.write_text(text)
    return load_config(path)


def test_demo_day_counts_add_up_and_late_rows_are_selected_by_event_time(config, raw_data):
    result = extract_features(config, DAY)
    features = storage.read_partition(config.storage.root, FEATURES, DAY)
    quarantine = storage.read_partition(config.storage.root, QUARANTINE, DAY)
    assert result.rows_in == result.rows_valid + result.rows_quarantined == 600
    assert (len(features), len(quarantine)) == (result.rows_valid, result.rows_quarantined) == (592, 8)
    assert features["event_time"].dt.date.eq(DAY).all()
    assert features["customer_id"].is_unique
    late = pd.read_parquet(raw_data / "raw" / "events-2026-10-03.parquet")
    late_keys = set(late.loc[late["event_time"].dt.date == DAY, "customer_id"].dropna())
    assert late_keys and late_keys <= set(features["customer_id"]) | set(quarantine["customer_id"].dropna())
    reasons = " ".join(quarantine[REASON])
    for expected in ("not_nullable", "field_uniqueness", "greater_than_or_equal_to", "finite"):
        assert expected in reasons


def test_rerun_replaces_partitions_without_duplicates(config):
    extract_features(config, DAY)
    first = storage.read_partition(config.storage.root, FEATURES, DAY)
    extract_features(config, DAY)
    second = storage.read_partition(config.storage.root, FEATURES, DAY)
    pd.testing.assert_frame_equal(first, second)
    fs, path = storage.filesystem(storage.partition_url(config.storage.root, FEATURES, DAY))
    assert len(fs.ls(path)) == 1
    assert not fs.exists(f"{config.storage.root}/{FEATURES}/_staging") or not fs.ls(
        f"{config.storage.root}/{FEATURES}/_staging"
    )


def test_csv_source_with_wrong_types_quarantines_those_rows(tmp_path):
    frame = _events(6).astype({"income": object, "age": object})
    frame.loc[1, "income"] = "unknown"
    frame.loc[2, "age"] = "forty"
    frame.loc[3, "credit_utilization"] = np.inf
    frame.loc[4, "credit_utilization"] = np.nan  # missing is allowed, the model imputes it
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv" / "events.csv", index=False)
    config = _config(tmp_path, str(tmp_path / "csv" / "*.csv"))
    result = extract_features(config, DAY)
    quarantine = storage.read_partition(config.storage.root, QUARANTINE, DAY)
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (6, 3, 3)
    assert sorted(quarantine["customer_id"]) == ["K1", "K2", "K3"]
    assert quarantine.set_index("customer_id").loc["K1", REASON].startswith("income: coerce_dtype")


def test_undated_rows_are_quarantined_not_dropped(tmp_path):
    frame = _events(4).astype({"event_time": object})
    frame.loc[0, "event_time"] = "not a time"
    frame.loc[1, "event_time"] = None
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv" / "events.csv", index=False)
    config = _config(tmp_path, str(tmp_path / "csv" / "*.csv"))
    result = extract_features(config, DAY)
    undated = pd.read_parquet(f"{config.storage.root}/{QUARANTINE}/undated/events.csv.parquet")
    assert (result.rows_in, result.undated, len(undated)) == (2, 2, 2)
    assert result.rows_in + result.undated == len(frame)


def test_empty_day_publishes_empty_partitions(config):
    result = extract_features(config, date(2030, 1, 1))
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (0, 0, 0)
    assert storage.read_partition(config.storage.root, FEATURES, date(2030, 1, 1)).empty


def test_missing_column_names_file_and_column(tmp_path):
    (tmp_path / "pq").mkdir()
    _events(5).drop(columns=["region"]).to_parquet(tmp_path / "pq" / "events.parquet")
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    with pytest.raises(DataError, match=r"events.parquet: configured column\(s\) \['region'\] not found \(5 rows"):
        extract_features(config, DAY)


def test_source_without_files_is_an_error(tmp_path):
    config = _config(tmp_path, str(tmp_path / "nothing" / "*.parquet"))
    with pytest.raises(DataError, match="matches no files"):
        extract_features(config, DAY)


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "pq").mkdir()
    (tmp_path / "pq" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    with pytest.raises(DataError, match=r"cannot read source file .*broken\.parquet"):
        extract_features(config, DAY)
    assert not storage.partition_exists(config.storage.root, FEATURES, DAY)
