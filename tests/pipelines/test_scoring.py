from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines import registry
from pipelines.errors import DataError
from pipelines.features import extract_features
from pipelines.scoring import plan_pieces, score_day, score_days
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register

pytestmark = pytest.mark.integration

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


@pytest.fixture(scope="module")
def lake(build_lake):
    """Four extracted days, shared by the tests that do not change the registry (each scores what it then reads, and
    a rerun replaces a day's partitions)."""
    return build_lake(4)


@pytest.fixture(scope="module")
def trained(lake):
    """The champion, trained on the three days before ``DAY``."""
    return train_and_register(lake, DAY - timedelta(days=1))


def test_every_feature_row_is_scored_once_with_the_champion(lake, trained, dask_client):
    result = score_day(lake, DAY, "run-1", dask_client)
    features = Lake.from_config(lake).read(Table.FEATURES, DAY)
    predictions = Lake.from_config(lake).read(Table.PREDICTIONS, DAY)
    assert result.rows_in == result.rows_scored == len(features) == len(predictions) == 592
    assert list(predictions.columns) == COLUMNS
    assert sorted(predictions["customer_id"]) == sorted(features["customer_id"])
    assert predictions["probability"].between(0, 1).all()
    assert set(predictions["prediction"]) <= {0, 1}
    assert (predictions["prediction"] == (predictions["probability"] >= 0.5)).all()
    assert set(predictions["model_version"]) == {trained.version} and set(predictions["run_id"]) == {"run-1"}
    assert set(predictions["model_run_id"]) == {trained.run_id}
    assert set(predictions["logical_date"]) == {DAY.isoformat()}
    assert len(Lake.from_config(lake).files(Table.PREDICTIONS, DAY)) == 3  # one file per row group (250 rows)
    assert Lake.from_config(lake).count_rows(Table.DEAD_LETTER, DAY) == 0  # scored: in every output, if with no rows


def test_scoring_reads_the_days_files_from_the_log_only(lake, trained, dask_client):
    """Pieces come from the features table's files of the day in its log: a stray file in the day's folder (an
    uncommitted leftover) and a broken file of another day are never opened."""
    features = Lake.from_config(lake)
    stray = Path(features.partition(Table.FEATURES, DAY)) / "stray.parquet"
    stray.write_bytes(b"not parquet, and in no version")
    other = Path(features.files(Table.FEATURES, DAY - timedelta(days=1))[0])
    intact = other.read_bytes()
    other.write_bytes(b"broken")
    try:
        pieces = plan_pieces(features, DAY, ["customer_id"])
        result = score_day(lake, DAY, "run-pushdown", dask_client)
    finally:
        other.write_bytes(intact)
        stray.unlink()
    assert {p.url for p in pieces} == set(features.files(Table.FEATURES, DAY)) and len(pieces) == 3
    assert result.rows_scored == 592


def test_rerun_gives_the_same_predictions_and_no_duplicates(lake, trained, dask_client):
    score_day(lake, DAY, "run-1", dask_client)
    first = Lake.from_config(lake).read(Table.PREDICTIONS, DAY)
    score_day(lake, DAY, "run-2", dask_client)
    second = Lake.from_config(lake).read(Table.PREDICTIONS, DAY)
    stable = ["customer_id", "prediction", "probability", "model_version"]
    pd.testing.assert_frame_equal(first[stable], second[stable])
    assert set(second["run_id"]) == {"run-2"}


def test_a_run_of_days_publishes_each_day_as_a_run_per_day_would(build_lake, dask_client):
    """All days' row groups go to the cluster at once (the first day alone while the output tables are new); each
    day is published on its own, in order, exactly as one run per day publishes it. A day that fails its check
    leaves the days before it published and none after it."""
    config = build_lake(4, DAY - timedelta(days=1))
    days = [DAY - timedelta(days=k) for k in (2, 1, 0)]
    lake = Lake.from_config(config)
    results = score_days(config, days, "run-days", dask_client)
    assert [r.day for r in results] == [d.isoformat() for d in days]
    together = lake.read_days(Table.PREDICTIONS, days, ["customer_id", "probability", "logical_date"])
    for day, result in zip(days, results, strict=True):
        assert result.rows_in == result.rows_scored == lake.count_rows(Table.FEATURES, day)
        assert lake.commits(Table.PREDICTIONS)[day].version >= 0
    for day in days:
        score_day(config, day, f"run-{day}", dask_client)
    one_by_one = lake.read_days(Table.PREDICTIONS, days, ["customer_id", "probability", "logical_date"])
    pd.testing.assert_frame_equal(together, one_by_one)
    broken = Lake(lake.root).files(Table.FEATURES, days[1])[0]
    intact = Path(broken).read_bytes()
    Path(broken).write_bytes(b"broken")
    versions = {day: lake.commits(Table.PREDICTIONS)[day].version for day in days}
    try:
        with pytest.raises(DataError, match="cannot read Parquet file"):
            score_days(config, days, "run-broken", dask_client)
    finally:
        Path(broken).write_bytes(intact)
    commits = lake.commits(Table.PREDICTIONS)
    assert [commits[day].version > versions[day] for day in days] == [False, False, False]  # planned first: none
    with pytest.raises(DataError, match=r"features/date=2030-02-02 does not exist"):
        score_days(config, [days[0], date(2030, 2, 2)], "run-missing", dask_client)
    assert lake.commits(Table.PREDICTIONS)[days[0]].version == versions[days[0]]


def test_a_promotion_is_picked_up_by_the_next_run(build_lake, dask_client):
    config = build_lake(4, DAY - timedelta(days=1))  # a registry of its own: this test moves the champion
    score_day(config, DAY, "run-1", dask_client)
    second = train_and_register(config, DAY - timedelta(days=1))
    registry.connect(config).set_alias(config.model.name, registry.CHAMPION, second.version)
    score_day(config, DAY, "run-2", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert set(predictions["model_version"]) == {second.version}


def test_empty_partition_scores_zero_rows(lake, trained, dask_client):
    empty = date(2030, 1, 1)
    extract_features(lake.model_copy(update={"quality": lake.quality.model_copy(update={"min_rows": 0})}), empty)
    result = score_day(lake, empty, "run-1", dask_client)
    assert result.rows_in == result.rows_scored == 0
    assert Lake.from_config(lake).read(Table.PREDICTIONS, empty).empty


def test_missing_feature_partition_is_named(lake, trained, dask_client):
    with pytest.raises(DataError, match=r"features/date=2030-02-02 does not exist; run feature_extraction"):
        score_day(lake, date(2030, 2, 2), "run-1", dask_client)


def test_no_champion_is_a_clear_error(config, dask_client):
    extract_features(config, DAY)
    with pytest.raises(registry.RegistryError, match="no 'champion' alias"):
        score_day(config, DAY, "run-1", dask_client)
    assert not Lake.from_config(config).exists(Table.PREDICTIONS, DAY)


def test_a_champion_is_never_scored_with_definitions_other_than_its_own(lake, trained, dask_client):
    from pipelines import lineage
    from pipelines.errors import DefinitionMismatch

    features = lake.dataset.features
    dropped = features.model_copy(update={"numerical": features.numerical[:-1]})  # one raw feature fewer
    changed = lake.model_copy(update={"dataset": lake.dataset.model_copy(update={"features": dropped})})
    before = Lake.from_config(lake).version(Table.PREDICTIONS)
    with pytest.raises(DefinitionMismatch) as refused:
        score_day(changed, DAY, "run-changed", dask_client)
    own, current = lineage.definitions_hash(lake), lineage.definitions_hash(changed)
    assert f"champion {lake.model.name} v{trained.version} was trained with feature definitions {own}" in str(
        refused.value
    )
    assert f"the config's definitions are {current}" in str(refused.value) and own != current
    assert Lake.from_config(lake).version(Table.PREDICTIONS) == before  # nothing scored, nothing published


def test_regression_trains_and_scores_through_the_same_path(build_lake, dask_client):
    config = build_lake(
        4,
        task="regression",
        model={
            "name": "credit_risk_score",
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "metric": "rmse",
        },
    )
    trained = train_and_register(config, DAY - timedelta(days=1))
    assert trained.metric == "rmse" and 0 < trained.metric_value < 1
    result = score_day(config, DAY, "run-r", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert result.rows_scored == len(predictions) == 592
    assert "probability" not in predictions.columns and predictions["prediction"].dtype == "float64"

    # the day's performance row has DLE's estimate of the RMSE from the day of scoring, before any label arrives
    from pipelines.performance import update_performance

    [row] = update_performance(config, DAY)
    assert row.labeled_rows == 0 and row.estimated_note == ""
    assert row.estimated_ci_low < row.estimated_value < row.estimated_ci_high
    [later] = update_performance(config, DAY + timedelta(days=3))  # every label in: the realized RMSE
    assert later.estimated_value == row.estimated_value and later.value == pytest.approx(row.estimated_value, rel=0.1)


def test_workers_keep_models_of_two_registries_apart(lake, trained, build_lake, dask_client):
    """Two MLflow stores each hold a ``credit_default`` v1; a worker that loaded one must not serve it for the other."""
    score_day(lake, DAY, "run-hgb", dask_client)
    prior = build_lake(
        4,
        DAY - timedelta(days=1),
        model={"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}},
    )
    score_day(prior, DAY, "run-prior", dask_client)
    constant = Lake.from_config(prior).read(Table.PREDICTIONS, DAY)
    varied = Lake.from_config(lake).read(Table.PREDICTIONS, DAY)
    assert set(constant["model_version"]) == set(varied["model_version"]) == {"1"}
    assert constant["probability"].nunique() == 1 and varied["probability"].nunique() > 100
