from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from pipelines import registry, storage
from pipelines.errors import DataError
from pipelines.features import extract_features
from pipelines.scoring import score_day
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register

START = date(2026, 10, 1)
DAY = date(2026, 10, 4)
COLUMNS = [
    "customer_id",
    "prediction",
    "probability",
    "model_name",
    "model_version",
    "model_run_id",
    "run_id",
    "logical_date",
    "scored_at",
]


@pytest.fixture
def trained(config):
    for i in range(4):
        extract_features(config, START + timedelta(days=i))
    return train_and_register(config, DAY - timedelta(days=1))


def test_every_feature_row_is_scored_once_with_the_champion(config, trained, dask_client):
    result = score_day(config, DAY, "run-1", dask_client)
    features = Lake.from_config(config).read(Table.FEATURES, DAY)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert result.rows_in == result.rows_scored == len(features) == len(predictions) == 592
    assert list(predictions.columns) == COLUMNS
    assert sorted(predictions["customer_id"]) == sorted(features["customer_id"])
    assert predictions["probability"].between(0, 1).all()
    assert set(predictions["prediction"]) <= {0, 1}
    assert (predictions["prediction"] == (predictions["probability"] >= 0.5)).all()
    assert set(predictions["model_version"]) == {trained.version} and set(predictions["run_id"]) == {"run-1"}
    assert set(predictions["model_run_id"]) == {trained.run_id}
    assert set(predictions["logical_date"]) == {DAY.isoformat()}
    fs, path = storage.filesystem(result.predictions_url)
    assert len(fs.ls(path)) == 3  # one output file per row group (partition_rows=250)


def test_rerun_gives_the_same_predictions_and_no_duplicates(config, trained, dask_client):
    score_day(config, DAY, "run-1", dask_client)
    first = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    score_day(config, DAY, "run-2", dask_client)
    second = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    stable = ["customer_id", "prediction", "probability", "model_version"]
    pd.testing.assert_frame_equal(first[stable], second[stable])
    assert set(second["run_id"]) == {"run-2"}


def test_a_promotion_is_picked_up_by_the_next_run(config, trained, dask_client):
    score_day(config, DAY, "run-1", dask_client)
    second = train_and_register(config, DAY - timedelta(days=1))
    registry.connect(config).set_registered_model_alias(config.model.name, registry.CHAMPION, second.version)
    score_day(config, DAY, "run-2", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert set(predictions["model_version"]) == {second.version}


def test_empty_partition_scores_zero_rows(config, trained, dask_client):
    empty = date(2030, 1, 1)
    extract_features(config.model_copy(update={"quality": config.quality.model_copy(update={"min_rows": 0})}), empty)
    result = score_day(config, empty, "run-1", dask_client)
    assert result.rows_in == result.rows_scored == 0
    assert Lake.from_config(config).read(Table.PREDICTIONS, empty).empty


def test_missing_feature_partition_is_named(config, trained, dask_client):
    with pytest.raises(DataError, match=r"features/date=2030-02-02 does not exist; run feature_extraction"):
        score_day(config, date(2030, 2, 2), "run-1", dask_client)


def test_no_champion_is_a_clear_error(config, dask_client):
    extract_features(config, DAY)
    with pytest.raises(registry.RegistryError, match="no 'champion' alias"):
        score_day(config, DAY, "run-1", dask_client)
    assert not Lake.from_config(config).exists(Table.PREDICTIONS, DAY)


def test_regression_trains_and_scores_through_the_same_path(tmp_path, raw_data, dask_client):
    from conftest import write_config

    from pipelines.config import load_config

    config = load_config(
        write_config(
            tmp_path,
            raw_data,
            task="regression",
            model={
                "name": "credit_risk_score",
                "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                "metric": "rmse",
            },
        )
    )
    for i in range(4):
        extract_features(config, START + timedelta(days=i))
    trained = train_and_register(config, DAY - timedelta(days=1))
    assert trained.metric == "rmse" and 0 < trained.metric_value < 1
    result = score_day(config, DAY, "run-r", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert result.rows_scored == len(predictions) == 592
    assert "probability" not in predictions.columns and predictions["prediction"].dtype == "float64"
