"""Estimated performance of a regression model while labels are pending: direct loss estimation (DLE).

A regression prediction carries no probability to calibrate, so CBPE has nothing to work with. DLE learns the
champion's error instead: a small model (scikit-learn's ``HistGradientBoostingRegressor``) of the row's loss
(absolute error for MAE, squared error for RMSE) from the row's features and the champion's prediction, fitted on
the champion's holdout, where the labels are known. On a scored day the mean of its predicted losses is the
estimated MAE (the square root of it, the RMSE), from the features and predictions alone.

The loss model is fitted twice, each half of the holdout predicting the other (cross-fitting), and averaged: the
out-of-fold residuals say how far a row's loss strays from its prediction, and so how far the day's mean loss may
stray from the estimate. The interval (at ``promotion.confidence``) holds the day's sampling noise (residual sd /
sqrt(day's rows)) and the loss model's own error (residual sd / sqrt(holdout rows)); a normal interval on the mean
loss, mapped through the square root for RMSE.

Its limit, in its own words: it assumes the relation between features and target holds. It sees covariate shift
(more rows where the model errs more), not concept drift (the same rows now with other targets): there only the
realized metric catches it. R² is not estimated (it needs the day's target variance, which only labels give).

Why not NannyML's DLE at run time: its weight (see :mod:`pipelines.estimated_performance`); NannyML fits LightGBM,
scikit-learn's histogram booster is the same kind of model and already installed. NannyML's DLE is the oracle of
tests/pipelines/test_estimation_oracle.py: fitted on the same reference, the two estimates of each shifted day agree
within 3 % (two different boosters; seen: 1.2 %).

The holdout is stored with the model version (``loss_estimation/holdout.parquet``) and the loss model fitted from it
once per version and process, as CBPE refits its calibration: no pickled model in the store.
"""

from __future__ import annotations

import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from pipelines.estimated_performance import Estimate

HOLDOUT_ARTIFACT = "loss_estimation/holdout.parquet"
ESTIMATED = ("mae", "rmse")  # the metrics DLE estimates here
HOLDOUT_ROWS = 20_000  # holdout rows kept with the model version, sampled beyond that
PREDICTION = "__prediction"  # the champion's prediction, an input of the loss model
TARGET = "__target"
MAX_CATEGORIES = 250  # the booster's categorical features take at most 255 bins: rarer values count as missing


def row_loss(metric: str, y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Each row's share of the metric: absolute error for MAE, squared error for RMSE (the mean before the root)."""
    error = np.asarray(y, np.float64) - np.asarray(prediction, np.float64)
    return np.abs(error) if metric == "mae" else error**2


@dataclass(frozen=True)
class LossModel:
    """The loss model of one version and metric: the two cross-fitted boosters, the holdout's categories (so a day's
    rows are encoded as the holdout's were) and the spread of the out-of-fold residuals."""

    metric: str
    models: tuple[Any, Any]
    categories: dict[str, list[str]]
    residual_sd: float
    holdout_rows: int

    def predict(self, features: pd.DataFrame, prediction: np.ndarray) -> np.ndarray:
        """Each row's expected loss (clipped at 0: a loss is never negative)."""
        frame = _encoded(features, prediction, self.categories)
        return np.clip(np.mean([m.predict(frame) for m in self.models], axis=0), 0.0, None)


def _encoded(features: pd.DataFrame, prediction: np.ndarray, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Numbers as floats, categories as pandas categoricals of the holdout's values (others missing), and the
    champion's prediction as a column: the booster reads categoricals from their dtype."""
    frame = features.reset_index(drop=True).copy()
    for column, values in categories.items():
        frame[column] = pd.Categorical(frame[column].astype(object).where(frame[column].notna()), categories=values)
    numbers = [c for c in frame.columns if c not in categories]
    frame[numbers] = frame[numbers].astype(np.float64)
    frame[PREDICTION] = np.asarray(prediction, np.float64)
    return frame


def fit_loss_model(
    metric: str, features: pd.DataFrame, prediction: np.ndarray, y: np.ndarray, categorical: list[str], seed: int = 42
) -> LossModel:
    """The loss model fitted on a holdout (features, the champion's prediction, the true target): two boosters, each
    fitted on one half and scoring the other (the out-of-fold residuals give the interval's spread)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if metric not in ESTIMATED:
        raise ValueError(f"{metric} is not estimated (DLE here: {', '.join(ESTIMATED)})")
    categories = {
        c: [str(v) for v in features[c].dropna().astype(str).value_counts().index[:MAX_CATEGORIES]] for c in categorical
    }
    frame = _encoded(features, prediction, categories)
    loss = row_loss(metric, y, prediction)
    halves = np.random.default_rng(seed).permutation(len(frame)) % 2 == 0
    models, residuals = [], np.empty(len(frame))
    for fit_on in (halves, ~halves):
        booster = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.1, categorical_features="from_dtype", random_state=seed
        )
        booster.fit(frame[fit_on], loss[fit_on])
        residuals[~fit_on] = loss[~fit_on] - np.clip(booster.predict(frame[~fit_on]), 0.0, None)
        models.append(booster)
    return LossModel(metric, (models[0], models[1]), categories, float(np.std(residuals)), len(frame))


def estimate_loss(
    metric: str, model: LossModel | None, features: pd.DataFrame, prediction: np.ndarray, confidence: float
) -> Estimate:
    """DLE's estimate of ``metric`` (MAE or RMSE) on rows with these features and predictions, with its interval;
    NaN and why when it has none."""
    nan = float("nan")
    if model is None:
        return Estimate(nan, nan, nan, "no loss-estimation holdout stored with the model version")
    if metric not in ESTIMATED:
        return Estimate(nan, nan, nan, f"{metric} is not estimated (DLE here: {', '.join(ESTIMATED)})")
    if len(features) < 2:
        return Estimate(nan, nan, nan, f"{len(features)} scored rows")
    mean = float(model.predict(features, prediction).mean())
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = z * model.residual_sd * np.sqrt(1 / len(features) + 1 / model.holdout_rows)
    low, high = max(0.0, mean - spread), mean + spread
    if metric == "rmse":
        return Estimate(float(np.sqrt(mean)), float(np.sqrt(low)), float(np.sqrt(high)))
    return Estimate(mean, low, high)


def holdout_frame(features: pd.DataFrame, prediction: np.ndarray, y: np.ndarray, seed: int = 42) -> pd.DataFrame:
    """What is stored with a version for its loss model: the holdout's features, prediction and target (at most
    ``HOLDOUT_ROWS`` rows, sampled)."""
    frame = features.reset_index(drop=True).assign(
        **{PREDICTION: np.asarray(prediction, np.float64), TARGET: np.asarray(y, np.float64)}
    )
    if len(frame) > HOLDOUT_ROWS:
        frame = frame.sample(n=HOLDOUT_ROWS, random_state=seed).reset_index(drop=True)
    return frame


def log_loss_holdout(registry: Any, run_id: str, features: pd.DataFrame, prediction: np.ndarray, y: Any) -> None:
    """Store the holdout a version's loss model is fitted from with the version's run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
        holdout_frame(features, prediction, np.asarray(y)).to_parquet(path, index=False)
        registry.log_artifact(run_id, path, str(Path(HOLDOUT_ARTIFACT).parent))


def load_loss_model(
    registry: Any, model_name: str, version: str, metric: str, categorical: list[str], seed: int = 42
) -> LossModel | None:
    """The loss model of a version, fitted from the holdout stored with its run, or None (no holdout stored, several
    versions, or a metric DLE does not estimate). Fitted once per version and kept for as long as ``registry``."""
    if "," in version or metric not in ESTIMATED:
        return None
    held = _MODELS.setdefault(registry, {})
    if (model_name, version, metric) not in held:
        run_id = registry.version(model_name, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = registry.download_artifact(str(run_id), HOLDOUT_ARTIFACT, Path(tmp))
            except FileNotFoundError:
                held[model_name, version, metric] = None
            else:
                frame = pd.read_parquet(path)
                prediction, y = frame.pop(PREDICTION).to_numpy(), frame.pop(TARGET).to_numpy()
                held[model_name, version, metric] = fit_loss_model(metric, frame, prediction, y, categorical, seed)
    return held[model_name, version, metric]


_MODELS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str], LossModel | None]] = weakref.WeakKeyDictionary()
