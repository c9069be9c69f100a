"""CBPE on synthetic scores: the estimate tracks the realized metric under covariate shift (and its interval holds
it), and cannot see concept drift; the expected ROC AUC is sklearn's on the expected labels' draws."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from pipelines.estimated_performance import estimate, expected_metric, fit_calibration

pytestmark = pytest.mark.unit


def _rows(n: int, mean: float, sd: float, seed: int, concept_drift: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a model that knows P(y=1 | x) = sigmoid(2x) up to a monotone squash; labels from the truth (under
    concept drift, from sigmoid(-x): the same rows now behave otherwise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, sd, n)
    known = 1 / (1 + np.exp(-2 * x))
    truth = 1 / (1 + np.exp(x)) if concept_drift else known
    scores = known**1.7  # uncalibrated on purpose: the isotonic map has to fix it
    return (rng.random(n) < truth).astype(int), scores


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
def test_the_estimate_tracks_the_realized_metric_under_covariate_shift(metric):
    calibration = fit_calibration(*_rows(4000, 0.0, 1.0, seed=1))  # the champion's holdout
    realized = {"roc_auc": roc_auc_score, "accuracy": lambda y, s: accuracy_score(y, s >= 0.5)}[metric]
    errors = []
    for seed, (mean, sd) in enumerate([(0.0, 1.0), (0.6, 0.8), (-0.5, 0.9), (0.3, 0.6)], start=11):
        y, scores = _rows(3000, mean, sd, seed)
        found = estimate(metric, scores, calibration, resamples=200, confidence=0.95, seed=0)
        assert found.ci_low <= realized(y, scores) <= found.ci_high, (mean, sd, found, realized(y, scores))
        errors.append(abs(found.value - realized(y, scores)))
    assert max(errors) < 0.03, errors


def test_concept_drift_is_invisible_to_it():
    calibration = fit_calibration(*_rows(4000, 0.0, 1.0, seed=1))
    y, scores = _rows(3000, 0.0, 1.0, seed=2, concept_drift=True)
    found = estimate("roc_auc", scores, calibration, resamples=200, confidence=0.95, seed=0)
    assert roc_auc_score(y, scores) < 0.3 and found.value > 0.7  # still "fine" by its own lights


def test_expected_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities():
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(400), 2)  # ties
    probability = np.clip(scores + rng.normal(0, 0.1, 400), 0, 1)
    drawn = [roc_auc_score(rng.random(400) < probability, scores) for _ in range(400)]
    assert expected_metric("roc_auc", scores, probability) == pytest.approx(np.mean(drawn), abs=0.005)


def test_no_estimate_says_why():
    assert estimate("roc_auc", np.ones(5), None, 50, 0.95, 0).note == "no calibration stored with the model version"
    calibration = fit_calibration(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert estimate("log_loss", np.ones(5), calibration, 50, 0.95, 0).note.startswith("log_loss is not estimated")
