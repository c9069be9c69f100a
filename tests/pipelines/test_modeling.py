"""The vectorised metrics of the bootstrap against sklearn's, resample by resample, and the bootstrap's intervals
against scipy's one-resample-at-a-time bootstrap over sklearn's metrics (what it replaced): equal."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from lakes import with_section
from scipy import stats

from pipelines.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from pipelines.modeling import metric_value, paired_bootstrap, resampled_metric

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)


def _counts(rows: np.ndarray, n: int) -> np.ndarray:
    """How often each row is drawn in each resample."""
    return np.stack([np.bincount(r, minlength=n) for r in rows]).astype(np.float64)


def _classification(n: int) -> tuple[np.ndarray, np.ndarray]:
    y = (RNG.random(n) < 0.3).astype(int)
    score = np.clip(0.3 * y + RNG.random(n) * 0.7, 0, 1)
    return y, np.round(score, 2)  # rounded: many tied scores


@pytest.mark.parametrize("name", sorted(CLASSIFICATION_METRICS))
def test_each_classification_metric_equals_sklearns_on_every_resample(name):
    y, score = _classification(400)
    rows = RNG.integers(0, len(y), (60, len(y)))
    rows[0] = np.flatnonzero(y == 0)[0]  # a resample holding one class: undefined
    values = resampled_metric(name, y, score)(_counts(rows, len(y)))
    assert np.isnan(values[0])
    expected = [metric_value(name, y[r], score[r]) for r in rows[1:]]
    np.testing.assert_allclose(values[1:], expected, rtol=1e-12, atol=1e-12)


def test_roc_auc_without_tied_scores_equals_sklearns_on_every_resample():
    """Untied scores take the ROC AUC's path without groups of ties."""
    y, score = _classification(400)
    score = score + RNG.random(len(y)) * 1e-3  # every score its own
    rows = RNG.integers(0, len(y), (60, len(y)))
    rows[0] = np.flatnonzero(y == 1)[0]
    values = resampled_metric("roc_auc", y, score)(_counts(rows, len(y)))
    assert len(np.unique(score)) == len(y) and np.isnan(values[0])
    expected = [metric_value("roc_auc", y[r], score[r]) for r in rows[1:]]
    np.testing.assert_allclose(values[1:], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REGRESSION_METRICS))
def test_each_regression_metric_equals_sklearns_on_every_resample(name):
    y = RNG.normal(size=300)
    prediction = np.round(y + RNG.normal(scale=0.5, size=300), 1)
    rows = RNG.integers(0, len(y), (40, len(y)))
    expected = [metric_value(name, y[r], prediction[r]) for r in rows]
    np.testing.assert_allclose(resampled_metric(name, y, prediction)(_counts(rows, len(y))), expected, rtol=1e-12)


def test_r2_of_a_constant_target_is_sklearns_finite_stand_in():
    """sklearn's force_finite: 1 for a perfect prediction, 0 otherwise (its own float mean of 300 equal values can
    miss the value by an ulp and return -4e30 instead; the counts here are exact)."""
    y, prediction = np.array([2.5, 1.0, 2.5]), np.array([2.5, 1.0, 3.0])
    counts = np.array([[2.0, 0.0, 1.0], [3.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(
        resampled_metric("r2", y, prediction)(counts), [0.0, 1.0, metric_value("r2", y, prediction)]
    )


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision", "log_loss", "f1"])
def test_the_bootstrap_interval_equals_one_resample_at_a_time_over_sklearn(demo, metric):
    config = with_section(demo, "model", metric=metric)
    y, champion = _classification(500)
    challenger = np.clip(champion + RNG.normal(scale=0.05, size=500), 0, 1)

    def gain(y_, champion_, challenger_):
        return metric_value(metric, y_, challenger_) - metric_value(metric, y_, champion_)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = stats.bootstrap(
            (y, champion, challenger),
            gain,
            paired=True,
            vectorized=False,
            n_resamples=config.promotion.bootstrap,
            confidence_level=config.promotion.confidence,
            method="percentile",
            rng=np.random.default_rng(config.training.seed),
        ).confidence_interval
    of_challenger, of_champion = resampled_metric(metric, y, challenger), resampled_metric(metric, y, champion)
    low, high, undefined = paired_bootstrap(config, lambda counts: of_challenger(counts) - of_champion(counts), len(y))
    assert undefined == 0
    assert (low, high) == pytest.approx((slow.low, slow.high), abs=1e-12)
