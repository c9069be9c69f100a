"""Our CBPE and DLE against NannyML's own (the oracle, a test dependency: requirements-test.txt), day by day, on
synthetic days with covariate shift and no concept drift: fitted on the same reference, they give the same estimates.

CBPE: the same isotonic calibration and expected confusion matrix, so accuracy agrees exactly. NannyML's ROC AUC is
the trapezoid under the expected ROC curve, which counts each row paired with itself, half of p(1 - p); ours is the
exact expected Mann-Whitney statistic (test_estimated_performance.py), without those pairs. The two differ by that
term alone, sum(p(1 - p)) / 2 / (P N) (P the expected positives, N the negatives): ~1e-4 on 3000 rows, and asserted
to that (NannyML rounds its curve to 5 decimals). NannyML also calibrates only when calibration lowers the reference's
expected calibration error; these scores are miscalibrated on purpose, so it does here as we always do.

DLE: both fit a gradient-boosted model of each row's loss from the features and the prediction, NannyML LightGBM on
the whole reference, we scikit-learn's histogram booster cross-fitted on its halves: two models, so agreement within
3 % of NannyML's estimate (seen: at most 1.2 %), while the days' realized metric moves by 30 %. Both stay within 10 % of
the realized metric; both fall short by 6-8 % on the day shifted furthest, where rows leave the reference's range of
x0 and the noise keeps growing: boosted trees extrapolate flat, NannyML's as ours. The intervals are not compared:
NannyML's is its estimate +- 3 sampling errors from reference chunks, ours is simulated (the realized metric has to
fall in ours, for CBPE; test_loss_estimation.py checks DLE's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from pipelines.estimated_performance import calibrated, estimate, fit_calibration
from pipelines.loss_estimation import estimate_loss, fit_loss_model, row_loss

pytestmark = [
    pytest.mark.unit,
    # NannyML's advice for its thresholds (from reference chunks, not compared here): these have four
    pytest.mark.filterwarnings("ignore:The resulting number of chunks is too low:UserWarning"),
]

REFERENCE_DAYS, DAY_ROWS = 4, 3000
SHIFTS = [(0.0, 1.0), (0.6, 0.8), (-0.5, 0.9), (0.3, 0.6), (1.2, 0.7)]  # each day's feature mean and sd


@pytest.fixture(scope="module")
def nml():
    """NannyML, imported here (heavy). Its import loads any .env file above its site-packages (the compose stack's
    secrets, when a user has one): kept out of this process's environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHON_DOTENV_DISABLED", "1")
        return pytest.importorskip("nannyml", reason="the estimators' oracle: `make test-deps` installs it")


def _day(index: int, n: int, frame: dict[str, np.ndarray]) -> pd.DataFrame:
    """One day's rows, timestamped through that day (NannyML chunks by day, as the performance table does)."""
    start = pd.Timestamp("2026-03-01") + pd.Timedelta(days=index)
    return pd.DataFrame({"timestamp": start + pd.to_timedelta(np.linspace(0, 86_000, n), unit="s"), **frame})


def _classification_day(index: int, mean: float, sd: float, n: int) -> pd.DataFrame:
    """A model that knows P(y=1 | x) = sigmoid(2x) up to a monotone squash (uncalibrated: the map has to fix it);
    labels from that truth, so only the rows move (covariate shift)."""
    rng = np.random.default_rng(100 + index)
    known = 1 / (1 + np.exp(-2 * rng.normal(mean, sd, n)))
    scores = known**1.7
    labels = (rng.random(n) < known).astype(int)
    return _day(index, n, {"y_pred_proba": scores, "y_pred": (scores >= 0.5).astype(int), "y_true": labels})


def _by_day(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [day for _, day in frame.groupby(frame["timestamp"].dt.date)]


@pytest.fixture(scope="module")
def classification(nml):
    reference = pd.concat([_classification_day(i, 0.0, 1.0, 1000) for i in range(REFERENCE_DAYS)], ignore_index=True)
    days = [_classification_day(REFERENCE_DAYS + i, m, sd, DAY_ROWS) for i, (m, sd) in enumerate(SHIFTS)]
    cbpe = nml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="y_true",
        metrics=["roc_auc", "accuracy"],
        timestamp_column_name="timestamp",
        chunk_period="D",
    ).fit(reference)
    analysis = pd.concat(days, ignore_index=True).drop(columns="y_true")
    theirs = cbpe.estimate(analysis).filter(period="analysis").to_df()
    assert cbpe.needs_calibration and len(theirs) == len(days)
    return fit_calibration(reference["y_true"].to_numpy(), reference["y_pred_proba"].to_numpy()), days, theirs


def test_our_cbpe_gives_nannymls_accuracy(classification):
    calibration, days, theirs = classification
    for day, nannyml in zip(days, theirs[("accuracy", "value")], strict=True):
        ours = estimate("accuracy", day["y_pred_proba"].to_numpy(), calibration, 200, 0.95, seed=0)
        assert ours.value == pytest.approx(nannyml, abs=1e-9)
        assert ours.ci_low <= accuracy_score(day["y_true"], day["y_pred"]) <= ours.ci_high


def test_our_cbpe_gives_nannymls_roc_auc_less_the_rows_paired_with_themselves(classification):
    calibration, days, theirs = classification
    for day, nannyml in zip(days, theirs[("roc_auc", "value")], strict=True):
        scores = day["y_pred_proba"].to_numpy()
        ours = estimate("roc_auc", scores, calibration, 200, 0.95, seed=0)
        p = calibrated(calibration, scores)
        self_pairs = (p * (1 - p)).sum() / 2 / (p.sum() * (1 - p).sum())
        assert 5e-5 < self_pairs < 5e-4  # the only difference, small but seen
        assert nannyml - ours.value == pytest.approx(self_pairs, abs=2e-5)
        assert ours.ci_low <= roc_auc_score(day["y_true"], scores) <= ours.ci_high


def _regression_day(index: int, shift: float, n: int) -> pd.DataFrame:
    """Two features and a region; the noise grows with |x0| and in the north, so where the rows are decides the
    error. Covariate shift moves x0 and the region mix; y given the features never changes."""
    rng = np.random.default_rng(200 + index)
    x0, x1 = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    north = rng.random(n) < 0.3 + 0.2 * np.tanh(shift)
    noise = rng.normal(0.0, 1.0, n) * (0.3 + 0.5 * np.abs(x0) + 0.8 * north)
    region = pd.Categorical(np.where(north, "north", "south"), categories=["north", "south"])
    return _day(index, n, {"x0": x0, "x1": x1, "region": region, "y_true": 2.0 * x0 - x1 + noise})


FEATURES = ["x0", "x1", "region"]


@pytest.fixture(scope="module")
def regression(nml):
    """A linear champion fitted on its training days; NannyML's DLE and our loss models fitted on the same
    reference (the champion's holdout), then estimating each shifted day."""
    train = _regression_day(0, 0.0, 4000)
    champion = LinearRegression().fit(train[["x0", "x1"]], train["y_true"])

    def predicted(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(y_pred=champion.predict(frame[["x0", "x1"]]))

    reference = predicted(pd.concat([_regression_day(1 + i, 0.0, 1000) for i in range(REFERENCE_DAYS)]))
    reference = reference.reset_index(drop=True)
    days = [predicted(_regression_day(10 + i, shift, DAY_ROWS)) for i, shift in enumerate([0.0, 0.5, 1.0, -0.8])]
    dle = nml.DLE(
        feature_column_names=FEATURES,
        y_pred="y_pred",
        y_true="y_true",
        metrics=["mae", "rmse"],
        timestamp_column_name="timestamp",
        chunk_period="D",
        hyperparameters={"verbosity": -1},  # LightGBM's own log lines, not its model
    ).fit(reference)
    analysis = pd.concat(days, ignore_index=True).drop(columns="y_true")
    theirs = dle.estimate(analysis).filter(period="analysis").to_df()
    ours = {
        metric: fit_loss_model(
            metric, reference[FEATURES], reference["y_pred"].to_numpy(), reference["y_true"].to_numpy(), ["region"]
        )
        for metric in ("mae", "rmse")
    }
    assert len(theirs) == len(days)
    return ours, days, theirs


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_our_dle_gives_nannymls_estimate(regression, metric):
    models, days, theirs = regression
    realized = []
    for day, nannyml in zip(days, theirs[(metric, "value")], strict=True):
        prediction = day["y_pred"].to_numpy()
        ours = estimate_loss(metric, models[metric], day[FEATURES], prediction, 0.95)
        loss = row_loss(metric, day["y_true"].to_numpy(), prediction).mean()
        realized.append(np.sqrt(loss) if metric == "rmse" else loss)
        assert abs(ours.value - nannyml) <= 0.03 * nannyml, (ours.value, nannyml)
        assert abs(ours.value - realized[-1]) <= 0.1 * realized[-1]
        assert abs(nannyml - realized[-1]) <= 0.1 * realized[-1]
    assert max(realized) > 1.25 * min(realized)  # the shift moves the metric: agreeing on a constant proves nothing
