"""Direct loss estimation on synthetic regression data: the estimated MAE and RMSE track the realized ones under
covariate shift (rows moving to where the model errs more), and cannot see concept drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from pipelines.loss_estimation import estimate_loss, fit_loss_model, row_loss

pytestmark = pytest.mark.unit


def _rows(n: int, shift: float, seed: int, concept_drift: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Two features and a region; the noise grows with x0 and in the north, so where the rows are decides the
    error. Covariate shift moves x0 (and the region mix); concept drift changes y for the same rows."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(shift, 1.0, n)
    x1 = rng.normal(0.0, 1.0, n)
    north = rng.random(n) < 0.3 + 0.2 * np.tanh(shift)
    region = np.where(north, "north", "south").astype(object)
    noise = rng.normal(0.0, 1.0, n) * (0.3 + 0.5 * np.abs(x0) + 0.8 * north)
    y = 2.0 * x0 - x1 + noise + (1.5 * x1 + 1.0 if concept_drift else 0.0)
    return pd.DataFrame({"x0": x0, "x1": x1, "region": region}), y


@pytest.fixture(scope="module")
def champion():
    """A linear champion fitted on the reference, and its loss models (MAE, RMSE) fitted on a holdout."""
    train, y_train = _rows(4000, 0.0, seed=1)
    model = LinearRegression().fit(train[["x0", "x1"]], y_train)
    holdout, y_holdout = _rows(4000, 0.0, seed=2)
    prediction = model.predict(holdout[["x0", "x1"]])
    losses = {m: fit_loss_model(m, holdout, prediction, y_holdout, ["region"], seed=0) for m in ("mae", "rmse")}
    return model, losses


def _realized(metric: str, y: np.ndarray, prediction: np.ndarray) -> float:
    loss = row_loss(metric, y, prediction).mean()
    return float(np.sqrt(loss) if metric == "rmse" else loss)


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_the_estimate_tracks_the_realized_metric_under_covariate_shift(champion, metric):
    model, losses = champion
    errors, realized_range = [], []
    for seed, shift in enumerate([0.0, 0.5, 1.0, -0.8], start=11):
        rows, y = _rows(3000, shift, seed)
        prediction = model.predict(rows[["x0", "x1"]])
        found = estimate_loss(metric, losses[metric], rows, prediction, confidence=0.95)
        realized = _realized(metric, y, prediction)
        assert found.ci_low <= realized <= found.ci_high, (shift, found, realized)
        errors.append(abs(found.value - realized) / realized)
        realized_range.append(realized)
    assert max(realized_range) > 1.25 * min(realized_range)  # the shift moves the metric: there is something to track
    assert max(errors) < 0.05, errors


def test_concept_drift_is_invisible_to_it(champion):
    model, losses = champion
    rows, y = _rows(3000, 0.0, seed=5, concept_drift=True)
    prediction = model.predict(rows[["x0", "x1"]])
    found = estimate_loss("mae", losses["mae"], rows, prediction, confidence=0.95)
    stable_rows, stable_y = _rows(3000, 0.0, seed=6)
    stable = _realized("mae", stable_y, model.predict(stable_rows[["x0", "x1"]]))
    assert _realized("mae", y, prediction) > 1.5 * stable  # the model got much worse
    assert found.value == pytest.approx(stable, rel=0.05)  # by its own lights, nothing changed


def test_an_unseen_category_and_no_estimate_say_so(champion):
    model, losses = champion
    rows, _ = _rows(50, 0.0, seed=7)
    rows["region"] = "atlantis"  # never in the holdout: read as missing, not an error
    found = estimate_loss("mae", losses["mae"], rows, model.predict(rows[["x0", "x1"]]), 0.95)
    assert np.isfinite(found.value) and found.ci_low < found.value < found.ci_high
    assert estimate_loss("mae", None, rows, np.zeros(50), 0.95).note.startswith("no loss-estimation holdout")
    r2 = estimate_loss("r2", losses["mae"], rows, np.zeros(50), 0.95)
    assert r2.note == "r2 is not estimated (DLE here: mae, rmse)"
