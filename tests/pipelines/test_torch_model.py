"""The PyTorch model: regression as well as classification, in memory and through training, registry and scoring."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

DAY = date(2026, 10, 4)


def _net(task: str, **params):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from pipelines.torch_model import TabularNet

    preprocess = ColumnTransformer([("num", StandardScaler(), ["x"]), ("cat", OneHotEncoder(), ["group"])])
    return TabularNet(preprocess, task=task, hidden=(16,), lr=0.03, batch_size=64, **params)


@pytest.mark.unit
def test_regression_learns_in_target_units():
    """The target is standardised for training and mapped back: predictions come out in the target's own units."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(-1, 1, 300), "group": rng.choice(["a", "b"], 300)})
    y = pd.Series(1000 + 300 * frame["x"] + np.where(frame["group"] == "b", 200, 0) + rng.normal(0, 5, 300))
    net = _net("regression", epochs=30).fit(frame, y)
    predicted = net.predict(frame)
    assert predicted.dtype == np.float64 and predicted.shape == (300,)
    assert np.sqrt(np.mean((predicted - y) ** 2)) < 0.1 * y.std()


@pytest.mark.unit
def test_classification_needs_two_classes():
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "group": ["a", "b", "a"]})
    with pytest.raises(ValueError, match=r"TabularNet classifies two classes, got \[0, 1, 2\]"):
        _net("classification", epochs=1).fit(frame, pd.Series([0, 1, 2]))


@pytest.mark.integration
def test_torch_regression_trains_registers_and_scores(build_lake, dask_client):
    import mlflow

    from pipelines.scoring import score_day
    from pipelines.storage import Lake, Table
    from pipelines.training import train_and_register

    config = build_lake(
        4,
        task="regression",
        model={"name": "risk_torch", "flavor": "torch", "estimator": None, "metric": "rmse", "params": {"epochs": 5}},
    )
    trained = train_and_register(config, DAY - timedelta(days=1))
    assert (trained.metric, trained.version) == ("rmse", "1") and 0 < trained.metric_value < 1
    info = mlflow.models.get_model_info(f"models:/risk_torch/{trained.version}")
    assert "pytorch" in info.flavors

    result = score_day(config, DAY, "run-torch-r", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY)
    assert result.rows_scored == len(predictions) == 592 and result.device == "cpu"
    assert "probability" not in predictions.columns and predictions["prediction"].dtype == "float64"
    assert predictions["prediction"].nunique() > 100 and predictions["prediction"].between(-1, 2).all()
