"""Estimated performance while labels are pending: confidence-based performance estimation (CBPE).

A scored day's realized metric is known only as its labels arrive, days later. CBPE estimates it on the day of
scoring from the scores alone: the champion's scores are calibrated (an isotonic map fitted at training on the
champion's holdout, where labels are known), and a calibrated score is the expected label, so the confusion matrix
and the ROC curve have expected values over the day's rows. Its interval is where the realized metric would fall if
the calibration holds, with the calibration's own error: ``monitoring.estimate_resamples`` times the map is refitted
on a bootstrap of the holdout and the day's labels are drawn as Bernoulli(its probabilities); the percentile
interval at ``promotion.confidence``.

Its limit, in its own words: it assumes the relation between features and target holds (a calibrated score stays
a probability). It sees covariate shift (more rows where the model is unsure), not concept drift (the same rows
now defaulting differently): there only the realized metric catches it.

Why not NannyML's CBPE at run time: NannyML 0.13.1 installs beside the lock, but brings ~1.1 GB to every image and
worker that scores (xgboost and NCCL through FLAML, lightgbm, kaleido, gcsfs) and a usage-telemetry client, for an
estimator of ~60 lines here. It is the oracle instead: tests/pipelines/test_estimation_oracle.py fits NannyML's CBPE
(a test dependency, requirements-test.txt) on the same reference and asserts the same accuracy per day, and the same
ROC AUC less one term: NannyML's trapezoid under the expected ROC curve counts each row paired with itself (half of
p(1 - p), ~1e-4 on 3,000 rows), the exact expected statistic here does not. ROC AUC and accuracy are estimated;
other metrics have no estimate (regression: :mod:`pipelines.loss_estimation`).
"""

from __future__ import annotations

import json
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_ARTIFACT = "calibration/calibration.json"
ESTIMATED = ("roc_auc", "accuracy")  # the metrics CBPE estimates here


HOLDOUT_ROWS = 20_000  # holdout pairs kept with the calibration (its bootstrap), sampled beyond that


def fit_calibration(y: np.ndarray, scores: np.ndarray, seed: int = 42) -> dict[str, list[float]]:
    """An isotonic map from scores to the share of positives (its knots), with the holdout it was fitted on (at most
    ``HOLDOUT_ROWS`` pairs), so the interval can include the map's own uncertainty; JSON, stored with the model."""
    y, scores = np.asarray(y, float), np.asarray(scores, float)
    if len(y) > HOLDOUT_ROWS:
        keep = np.random.default_rng(seed).choice(len(y), HOLDOUT_ROWS, replace=False)
        y, scores = y[keep], scores[keep]
    knots = _isotonic(y, scores)
    return {**knots, "holdout_y": y.tolist(), "holdout_scores": scores.tolist()}


def _isotonic(y: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
    return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def calibrated(calibration: dict[str, list[float]], scores: np.ndarray) -> np.ndarray:
    return np.interp(np.asarray(scores, float), calibration["x"], calibration["y"])


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(scores)


def _auc(labels: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``labels`` (0/1 or expected labels in [0, 1]) for scores with these average ranks:
    the Mann-Whitney statistic, weighted by the labels."""
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    rank_sum = labels @ ranks
    # with expected labels the pairs of a row with itself count p(1-p)/2: subtracted as the exact statistic does
    own = (labels * (1 - labels)).sum(axis=-1) / 2 if labels.dtype.kind == "f" else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - positives * (positives + 1) / 2 - own) / (positives * negatives)


def expected_metric(metric: str, scores: np.ndarray, probability: np.ndarray) -> float | None:
    """The metric's expected value when each row is positive with its calibrated ``probability`` (None: not
    estimated for this metric)."""
    if metric == "roc_auc":
        return float(_auc(probability.astype(float), _average_ranks(scores)))
    if metric == "accuracy":
        return float(np.where(scores >= 0.5, probability, 1 - probability).mean())
    return None


def simulated_interval(
    metric: str, scores: np.ndarray, calibration: dict[str, Any], resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the realized metric: each of ``resamples`` draws refits the calibration on a bootstrap
    of its holdout (the map's own error) and draws the day's labels as Bernoulli(that map's probabilities)."""
    maps = refitted_maps(calibration, resamples, seed)
    probability = np.stack([np.interp(scores, x, y) for x, y in maps])  # (resamples, rows)
    labels = (np.random.default_rng([seed, len(scores)]).random(probability.shape) < probability).astype(np.float64)
    drawn = _auc(labels, _average_ranks(scores)) if metric == "roc_auc" else (labels == (scores >= 0.5)).mean(axis=1)
    drawn = drawn[np.isfinite(drawn)]
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(drawn, tail)), float(np.percentile(drawn, 100 - tail))


def refitted_maps(calibration: dict[str, Any], resamples: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The calibration refitted on ``resamples`` bootstraps of its holdout (knots of each map): they depend on the
    model version's holdout alone, so they are fitted once per version and process and reused for every scored day
    (refitting them per day was most of a day's estimate)."""
    holdout_y = np.asarray(calibration["holdout_y"], dtype=np.float64)
    holdout_scores = np.asarray(calibration["holdout_scores"], dtype=np.float64)
    key = (holdout_y.tobytes(), holdout_scores.tobytes(), resamples, seed)
    if key not in _MAPS:
        rng = np.random.default_rng(seed)
        maps = []
        for _ in range(resamples):
            rows = rng.integers(0, len(holdout_y), len(holdout_y))
            knots = _isotonic(holdout_y[rows], holdout_scores[rows])
            maps.append((np.asarray(knots["x"]), np.asarray(knots["y"])))
        while len(_MAPS) >= 4:  # a few versions at a time (a retraining's challenger beside the champion)
            _MAPS.pop(next(iter(_MAPS)))
        _MAPS[key] = maps
    return _MAPS[key]


_MAPS: dict[tuple[bytes, bytes, int, int], list[tuple[np.ndarray, np.ndarray]]] = {}


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    note: str = ""


def estimate(
    metric: str,
    scores: np.ndarray,
    calibration: dict[str, Any] | None,
    resamples: int,
    confidence: float,
    seed: int,
) -> Estimate:
    """CBPE's estimate of ``metric`` on rows with these scores, and its interval; NaN and why when it has none."""
    nan = float("nan")
    if calibration is None:
        return Estimate(nan, nan, nan, "no calibration stored with the model version")
    if metric not in ESTIMATED:
        return Estimate(nan, nan, nan, f"{metric} is not estimated (CBPE here: {', '.join(ESTIMATED)})")
    scores = np.asarray(scores, float)
    if len(scores) < 2:
        return Estimate(nan, nan, nan, f"{len(scores)} scored rows")
    probability = calibrated(calibration, scores)
    value = expected_metric(metric, scores, probability)
    low, high = simulated_interval(metric, scores, calibration, resamples, confidence, seed)
    return Estimate(float(value), low, high)


def log_calibration(registry: Any, run_id: str, y: np.ndarray, scores: np.ndarray) -> None:
    """Fit the calibration on a model's holdout and store it with the model's run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(CALIBRATION_ARTIFACT).name
        path.write_text(json.dumps(fit_calibration(np.asarray(y), np.asarray(scores))))
        registry.log_artifact(run_id, path, str(Path(CALIBRATION_ARTIFACT).parent))


def load_calibration(registry: Any, model_name: str, version: str) -> dict[str, list[float]] | None:
    """The calibration stored with a model version's run, or None (a version trained before it was stored, or a
    day scored by several versions). Kept for as long as ``registry`` (a run of days estimates every day with one
    connection; a version's artifact never changes)."""
    if "," in version:
        return None
    held = _CALIBRATIONS.setdefault(registry, {})
    if (model_name, version) not in held:
        run_id = registry.version(model_name, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = registry.download_artifact(str(run_id), CALIBRATION_ARTIFACT, Path(tmp))
            except FileNotFoundError:
                held[model_name, version] = None
            else:
                held[model_name, version] = json.loads(Path(path).read_text())
    return held[model_name, version]


_CALIBRATIONS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], dict[str, Any] | None]] = (
    weakref.WeakKeyDictionary()
)
