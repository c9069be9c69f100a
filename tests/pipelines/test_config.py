from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError, config_path, load_config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, mutate) -> Path:
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    mutate(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_demo_config_loads_and_resolves_paths_against_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    config = load_config(REPO / "include/config/demo.yaml")
    assert config.dataset.source == f"{tmp_path}/data/raw/*.parquet"
    assert config.storage.root == f"{tmp_path}/data/lake/credit_default"
    assert config.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns.db"
    assert config.dataset.features.numerical[:2] == ["income", "age"]
    assert config.greater_is_better


def test_env_selects_config_and_overrides_tracking_uri(monkeypatch, tmp_path):
    path = _write(tmp_path, lambda c: None)
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert config_path() == path
    assert load_config().tracking_uri == "http://127.0.0.1:5999"


def test_s3_paths_are_left_alone(tmp_path):
    def to_s3(c):
        c["dataset"]["source"] = "s3://bucket/raw/*.csv"
        c["storage"]["root"] = "s3://bucket/lake"

    config = load_config(_write(tmp_path, to_s3))
    assert config.dataset.source == "s3://bucket/raw/*.csv"
    assert config.storage.root == "s3://bucket/lake"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["dataset"].pop("key"), "dataset.key: Field required"),
        (lambda c: c.update(task="ranking"), "task: Input should be 'classification' or 'regression'"),
        (lambda c: c["model"].update(metric="rmse"), "model.metric 'rmse' is not a classification metric"),
        (lambda c: c["model"].update(estimator="not a path"), "model.estimator: Value error"),
        (lambda c: c["training"].update(window_days=0), "training.window_days"),
        (lambda c: c["storage"].update(bucket="x"), "storage.bucket: Extra inputs are not permitted"),
        (
            lambda c: c["dataset"]["features"].update(numerical=[], categorical=[], aggregates=[], derived={}),
            "dataset.features",
        ),
        (lambda c: c["dataset"]["checks"].update(unknown={"min": 0}), "checks name columns that are not features"),
        (lambda c: c["dataset"]["features"]["numerical"].append("customer_id"), "may not also be features"),
        (lambda c: c["monitoring"].update(segments=["income"]), "monitoring.segments ['income'] are not in"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, mutate, key):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)


def _declare(config: dict, **aggregate) -> None:
    config["dataset"]["history"] = {
        "payments": {
            "source": "data/payments/*.parquet",
            "entity": "customer_id",
            "event_time": "paid_at",
            "numerical": ["amount"],
            "categorical": ["status"],
        }
    }
    spec = {"name": "paid", "table": "payments", "column": "amount", "functions": ["sum"], "windows": [30]}
    config["dataset"]["features"]["aggregates"] = [{**spec, **aggregate}]


def test_declared_features_load_with_their_names_and_resolved_history(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))

    def declare(c):
        _declare(c, functions=["count", "mean"], windows=[7, 90], where="amount > 0")
        c["dataset"]["features"]["derived"] = {"paid_share": "paid_mean_90d / income"}

    features = load_config(_write(tmp_path, declare)).dataset.features
    assert features.computed == ["paid_count_7d", "paid_count_90d", "paid_mean_7d", "paid_mean_90d", "paid_share"]
    assert features.numbers[-5:] == features.computed and features.raw[0] == "income"
    history = load_config(_write(tmp_path, declare)).dataset.history["payments"]
    assert history.source == f"{tmp_path}/data/payments/*.parquet" and history.on == "customer_id"


@pytest.mark.parametrize(
    ("aggregate", "derived", "message"),
    [
        ({"table": "pay"}, {}, r"features\.aggregates\.0\.table: unknown history table 'pay'"),
        ({"column": "amont"}, {}, r"features\.aggregates\.0\.column: unknown column 'amont'"),
        ({"column": "status"}, {}, r"features\.aggregates\.0\.column: \['sum'\] need a numerical column"),
        ({"functions": ["median"]}, {}, r"dataset\.features\.aggregates\.0\.functions\.0: Input should be 'count'"),
        ({"where": "amount > limit"}, {}, r"features\.aggregates\.0\.where: unknown name\(s\) \['limit'\]"),
        ({"where": "__import__('os').system('x')"}, {}, r"features\.aggregates\.0\.where: .* is not an allowed call"),
        ({}, {"ratio": "paid_sum_7d / income"}, r"features\.derived\.ratio: unknown name\(s\) \['paid_sum_7d'\]"),
        ({}, {"income": "paid_sum_30d * 2"}, r"feature names declared twice .*: \['income'\]"),
    ],
)
def test_a_declared_feature_naming_something_unknown_fails_with_the_file_and_key(tmp_path, aggregate, derived, message):
    def declare(c):
        _declare(c, **aggregate)
        c["dataset"]["features"]["derived"] = derived

    with pytest.raises(ConfigError, match=r"config\.yaml") as error:
        load_config(_write(tmp_path, declare))
    assert __import__("re").search(message, str(error.value)), str(error.value)
