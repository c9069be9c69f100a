from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from lakes import START, extract_and_train
from mlflow.tracking import MlflowClient

from pipelines.config import ConfigError
from pipelines.features import extract_features
from pipelines.storage import Lake, Table
from pipelines.training import REFERENCE_ARTIFACT, train_and_register
from pipelines.validation import DataError


@pytest.mark.integration
def test_first_version_is_champion_and_later_ones_are_not(config):
    extract_and_train(config, 4)
    later = START + timedelta(days=9)  # every label of the window has arrived by then
    first = train_and_register(config, START + timedelta(days=3), as_of=later)
    second = train_and_register(config, START + timedelta(days=3), reason="manual", as_of=later)
    on_time = train_and_register(config, START + timedelta(days=3))  # labels known by the window's last day

    client = MlflowClient(config.tracking_uri)
    assert (first.version, first.champion_version) == ("1", "1")
    assert (second.version, second.champion_version) == ("2", "1")
    # delayed labels: on day 4, days 1-4 have about 1, 2/3, 1/3 and 0 of their labels (1 to 3 days late)
    assert 0.4 < (on_time.n_train + on_time.n_holdout) / (4 * 592) < 0.6
    assert str(client.get_model_version_by_alias(config.model.name, "champion").version) == "1"
    assert (first.window_start, first.window_end) == ("2026-10-01", "2026-10-04")
    assert first.n_train + first.n_holdout == 4 * 592
    assert 0.5 < first.metric_value <= 1.0

    run = client.get_run(first.run_id)
    assert (run.data.tags["kind"], run.data.tags["model_name"]) == ("training", config.model.name)
    assert run.data.tags["window_start"] == "2026-10-01" and len(run.data.tags["data_hash"]) == 64
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.source.type"] == "LOCAL"  # as a fluent run's
    assert run.data.tags["data_hash"] == client.get_run(second.run_id).data.tags["data_hash"]
    assert run.data.params["estimator"] == config.model.estimator
    assert {"holdout_roc_auc", "holdout_accuracy", "holdout_log_loss"} <= set(run.data.metrics)
    assert client.get_run(second.run_id).data.tags["reason"] == "manual"
    version = client.get_model_version(config.model.name, "1")
    assert float(version.tags["holdout_roc_auc"]) == pytest.approx(first.metric_value, abs=1e-6)
    assert version.run_id == first.run_id and version.source.startswith("models:/m-")  # the logged model
    assert client.get_logged_model(version.source.removeprefix("models:/")).tags["mlflow.modelVersions"] == (
        f'[{{"name": "{config.model.name}", "version": 1}}]'
    )  # the Logged Models page links the version, as when MLflow registers it

    mlflow.set_tracking_uri(config.tracking_uri)
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=on_time.run_id, artifact_path=REFERENCE_ARTIFACT)
    )
    # every row of the window, labeled or not (about half are by day 4): the population the model serves
    assert len(reference) == min(config.training.reference_rows, 4 * 592) > on_time.n_train + on_time.n_holdout
    assert {*config.dataset.features.all, "prediction", "probability"} <= set(reference.columns)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{config.model.name}/1")).read_text()
    assert "scikit-learn==1.9.1" in requirements.split() and "torch" not in requirements  # stated, not inferred
    model = mlflow.sklearn.load_model(f"models:/{config.model.name}@champion")
    assert model.predict_proba(reference[config.dataset.features.all]).shape == (len(reference), 2)


@pytest.mark.integration
def test_window_only_uses_its_days(config):
    extract_and_train(config, 6)
    result = train_and_register(
        config.model_copy(update={"training": config.training.model_copy(update={"window_days": 2})}),
        START + timedelta(days=5),
        as_of=START + timedelta(days=9),
    )
    assert (result.window_start, result.window_end) == ("2026-10-05", "2026-10-06")
    assert result.n_train + result.n_holdout == 2 * 592

    # "What data trained this version": the run names the features table's Delta version it read, and reading the
    # table at it gives exactly the training rows' days, whatever was written since.
    lake = Lake.from_config(config)
    trained_on = int(MlflowClient(config.tracking_uri).get_run(result.run_id).data.tags["features_delta_version"])
    extract_features(config, START + timedelta(days=6))
    window = [START + timedelta(days=4), START + timedelta(days=5)]
    lake.write(Table.FEATURES, window[1], lake.read(Table.FEATURES, window[1]).head(10))  # a day rewritten since
    assert lake.version(Table.FEATURES) > trained_on
    assert lake.days(Table.FEATURES, version=trained_on) == [START + timedelta(days=i) for i in range(6)]
    assert len(lake.read_days(Table.FEATURES, window, version=trained_on)) == result.n_train + result.n_holdout
    assert len(lake.read_days(Table.FEATURES, window)) == 592 + 10


@pytest.mark.integration
def test_no_features_in_window_is_an_error(config):
    with pytest.raises(DataError, match="no feature partitions between 2026-09-24 and 2026-09-30"):
        train_and_register(config, date(2026, 9, 30))


@pytest.mark.integration
def test_too_few_labeled_rows_is_an_error(config):
    extract_and_train(config, 1)
    strict = config.model_copy(update={"training": config.training.model_copy(update={"min_rows": 5000})})
    with pytest.raises(DataError, match=r"only 592 labeled rows .* training\.min_rows is 5000"):
        train_and_register(strict, START, as_of=START + timedelta(days=3))
    with pytest.raises(DataError, match=r"only 0 labeled rows .* \(labels known by 2026-10-01\)"):
        train_and_register(strict, START)  # none of the day's labels has arrived by its end


@pytest.mark.integration
def test_unknown_estimator_is_a_config_error(config):
    extract_and_train(config, 1)
    bad = config.model_copy(update={"model": config.model.model_copy(update={"estimator": "sklearn.nope.Model"})})
    with pytest.raises(ConfigError, match=r"model\.estimator: cannot import 'sklearn\.nope\.Model'"):
        train_and_register(bad, START, as_of=START + timedelta(days=3))


@pytest.mark.integration
def test_a_scheduled_retraining_skips_when_no_day_was_labeled_since_the_data_already_used(build_lake):
    from pipelines.performance import holdout_days
    from pipelines.retrain_gate import scheduled_retraining_skip

    config = build_lake(10, START + timedelta(days=2))  # the champion's window ends on day 2
    day = START + timedelta(days=9)
    newest = holdout_days(config, day)[-1]
    assert newest > START + timedelta(days=2) and scheduled_retraining_skip(config, day) is None
    MlflowClient(config.tracking_uri).set_model_version_tag(
        config.model.name, "1", "decision.holdout", f"{newest}..{newest}"
    )  # a challenger was judged on the newest labeled day already
    assert scheduled_retraining_skip(config, day) == (
        f"no day labeled since {newest} (the newest labeled day is {newest}): a challenger would be trained and "
        "judged on data already used"
    )


@pytest.mark.integration
def test_the_run_records_its_feature_definitions_and_a_changed_one_trains_on_recomputed_days(tmp_path, raw_data):
    import yaml
    from lakes import declared_features, write_config, write_payments

    from pipelines import lineage
    from pipelines.config import load_config

    payments = write_payments(raw_data, tmp_path / "payments")
    path = write_config(tmp_path, raw_data, dataset=declared_features(payments))
    config = load_config(path)
    first = extract_and_train(config, 2, START + timedelta(days=1))
    raw = yaml.safe_load(path.read_text())
    raw["dataset"]["features"]["aggregates"][0]["windows"] = [7, 30, 90]  # a definition changed since
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(raw))
    changed = load_config(tmp_path / "changed.yaml")
    second = train_and_register(changed, START + timedelta(days=1))

    client = MlflowClient(config.tracking_uri)
    for result, used, recomputed in ((first, config, "0"), (second, changed, "2")):
        tags = client.get_run(result.run_id).data.tags
        expected = lineage.definitions_hash(used)
        assert tags["feature_definitions"] == expected and tags["recomputed_days"] == recomputed
        assert client.get_model_version(config.model.name, result.version).tags["feature_definitions"] == expected
        record = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/{lineage.RECORD_ARTIFACT}")
        assert record["definitions_hash"] == expected and record["definitions"]["features"] == used.dataset.features.all
        files = record["history_files"]["payments"]
        assert files and all(url.startswith(str(payments)) for url in files)
        assert tags["history.payments"] == lineage.files_hash(files)
    assert lineage.definitions_hash(config) != lineage.definitions_hash(changed)
    mlflow.set_tracking_uri(config.tracking_uri)
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=second.run_id, artifact_path=REFERENCE_ARTIFACT)
    )
    assert reference["paid_sum_90d"].notna().all()  # trained on the recomputed columns, not stale ones
    assert first.n_train + first.n_holdout == second.n_train + second.n_holdout
