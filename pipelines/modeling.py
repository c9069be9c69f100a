"""The model: preprocessing + the configured estimator as one sklearn Pipeline, and its metrics.

Training and scoring both pass frames through :func:`model_input`, so the model always sees the same dtypes
whichever stage (or worker process) feeds it.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.config import CLASSIFICATION_METRICS, REGRESSION_METRICS, Config, ConfigError


def estimator_class(dotted: str) -> type:
    """Import ``package.module.Class``; a bad path is a config error naming ``model.estimator``."""
    module_name, _, class_name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.estimator: cannot import {dotted!r}: {exc}") from exc


def build_preprocess(config: Config) -> ColumnTransformer:
    """Impute + scale numbers, impute + one-hot categories (unseen categories are ignored): dense float output."""
    features = config.dataset.features
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    numerical = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer(
        [("num", numerical, features.numbers), ("cat", categorical, features.categorical)], remainder="drop"
    )


def build_model(config: Config) -> Any:
    """An unfitted model with sklearn's fit/predict/predict_proba on DataFrames, whatever the flavor.

    sklearn: ``Pipeline(preprocess, estimator)``; torch: a ``TabularNet`` module that carries the same preprocessing.
    """
    assert config.model.estimator is not None
    cls = estimator_class(config.model.estimator)
    try:
        if config.model.flavor == "torch":
            return cls(build_preprocess(config), task=config.task, **config.model.params)
        return Pipeline([("preprocess", build_preprocess(config)), ("model", cls(**config.model.params))])
    except TypeError as exc:
        raise ConfigError(f"model.params: {exc}") from exc


def model_input(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The feature columns with the dtypes the pipeline was fitted on.

    Float numbers, object categories, NaN for missing.
    """
    features = config.dataset.features
    numbers = frame[features.numbers].astype("float64")
    categories = frame[features.categorical].astype(object).where(frame[features.categorical].notna(), np.nan)
    return pd.concat([numbers, categories], axis=1)


def metric_value(name: str, y: Any, score: Any) -> float:
    """One metric from true values and the model's output (the positive-class probability for classification)."""
    y, score = np.asarray(y), np.asarray(score, dtype=np.float64)
    if name == "roc_auc":
        return float(metrics.roc_auc_score(y, score))
    if name == "average_precision":
        return float(metrics.average_precision_score(y, score))
    if name == "log_loss":
        return float(metrics.log_loss(y, score, labels=[0, 1]))
    if name == "accuracy":
        return float(metrics.accuracy_score(y, (score >= 0.5).astype(int)))
    if name == "f1":
        return float(metrics.f1_score(y, (score >= 0.5).astype(int), zero_division=0))
    if name == "rmse":
        return float(np.sqrt(metrics.mean_squared_error(y, score)))
    if name == "mae":
        return float(metrics.mean_absolute_error(y, score))
    if name == "r2":
        return float(metrics.r2_score(y, score))
    raise ValueError(f"unknown metric {name!r}")


def model_output(model: Any, x: pd.DataFrame, task: str) -> np.ndarray:
    """What metrics are computed from: the positive-class probability, or the regression prediction."""
    return model.predict_proba(x)[:, 1] if task == "classification" else np.asarray(model.predict(x), dtype=np.float64)


def score_metric(config: Config, y: Any, output: Any) -> float:
    return metric_value(config.model.metric, y, output)


def evaluate(model: Any, x: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Holdout metrics for the task; metrics undefined on this data (one class only) are left out."""
    output = model_output(model, x, task)
    names = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if task == "classification" and y.nunique() < 2:
        names = {"accuracy": True, "f1": True}
    return {name: metric_value(name, y, output) for name in names}


def unresamplable(config: Config, y: np.ndarray) -> str | None:
    """Why a bootstrap interval of the metric over ``y`` is undefined, known before any resample is drawn: too few
    rows, one class only, or a class so rare that at least one of the ``promotion.bootstrap`` resamples is expected
    to miss it (a resample of n rows misses a class of share p with probability (1 - p)^n), and a classification
    metric is undefined on a resample holding one class. None when the bootstrap may go ahead."""
    n = len(y)
    if n < 2:
        return f"{n} row(s), too few to resample"
    if config.task != "classification":
        return None
    _, counts = np.unique(np.asarray(y), return_counts=True)
    if len(counts) < 2:
        return f"all {n} rows hold one class, where {config.model.metric} is undefined"
    single = float(sum((1 - c / n) ** n for c in counts))  # disjoint events: a resample can miss only one class
    expected = single * config.promotion.bootstrap
    if expected < 1:
        return None
    return (
        f"the rarest class has {counts.min()} of {n} rows, so a resample holds a single class with probability"
        f" {single:.1%} (~{expected:.0f} of {config.promotion.bootstrap} resamples), where {config.model.metric} is"
        " undefined"
    )


def resampled_metric(name: str, y: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`metric_value` of many resamples of the same rows at once: a function of the resamples' counts (a
    ``(resamples, rows)`` array saying how often each row was drawn) returning one value per resample.

    The paired bootstrap computes the metric on hundreds of resamples. sklearn's metric functions, one call per
    materialised resample, cost ~5-10 ms each on a few thousand rows and were most of a day's drift check; a
    resample is a weighting of the original rows, so each metric here is a weighted sum over the rows, sorted once
    (ROC AUC as the Mann-Whitney statistic over groups of tied scores, average precision at each distinct threshold).
    ``tests/pipelines/test_modeling.py`` holds every metric equal to sklearn's on random resamples with ties. A
    classification metric of a resample holding one class is NaN.
    """
    y, score = np.asarray(y, dtype=np.float64), np.asarray(score, dtype=np.float64)
    n = len(y)
    if name == "rmse":
        return lambda counts: np.sqrt(counts @ (score - y) ** 2 / n)
    if name == "mae":
        return lambda counts: counts @ np.abs(score - y) / n
    if name == "r2":
        return functools.partial(_r2, y, score)
    if name == "roc_auc":
        order = np.argsort(score, kind="stable")
        return functools.partial(_roc_auc, y[order], _group_starts(score[order]), order)
    if name == "average_precision":
        order = np.argsort(-score, kind="stable")
        return functools.partial(_average_precision, y[order], _group_starts(score[order]), order)
    if name == "log_loss":
        eps = np.finfo(np.float64).eps
        p = np.clip(score, eps, 1 - eps)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        return _classification(y, lambda counts: counts @ loss / n)
    if name == "accuracy":
        correct = ((score >= 0.5) == (y == 1)).astype(np.float64)
        return _classification(y, lambda counts: counts @ correct / n)
    if name == "f1":
        predicted = (score >= 0.5).astype(np.float64)
        hits = predicted * y

        def f1(counts: np.ndarray) -> np.ndarray:
            denominator = counts @ predicted + counts @ y
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(denominator > 0, 2 * (counts @ hits) / denominator, 0.0)  # zero_division=0

        return _classification(y, f1)
    raise ValueError(f"unknown metric {name!r}")


def _classification(y: np.ndarray, metric: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``metric``, NaN for a resample holding one class (where a classification metric is undefined)."""

    def guarded(counts: np.ndarray) -> np.ndarray:
        positives = counts @ y
        one_class = (positives == 0) | (positives == len(y))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(one_class, np.nan, metric(counts))

    return guarded


def _group_starts(ranked: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in a sorted array."""
    return np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])


def _r2(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    mean = counts @ y / len(y)
    residual = counts @ (score - y) ** 2
    total = np.sum(counts * (y - mean[:, None]) ** 2, axis=1)  # exactly 0 for a constant target
    with np.errstate(divide="ignore", invalid="ignore"):  # sklearn's force_finite: a constant target gives 1 or 0
        return np.where(total > 0, 1 - residual / total, np.where(residual == 0, 1.0, 0.0))


def _roc_auc(y: np.ndarray, starts: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows sorted by score, in groups of tied scores: a positive beats the negatives of lower groups and ties half
    of its own group's (the area under sklearn's trapezoidal ROC curve). Without ties (most probabilities) every
    group is one row, and the sums over groups are skipped: ~40% of the metric's time."""
    weights = counts[:, order]
    if len(starts) == len(y):
        positive = weights * y
        negative = weights - positive
        below = np.cumsum(negative, axis=1) - negative
        total_positive, total_negative = positive.sum(axis=1), negative.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = np.einsum("ij,ij->i", positive, below + negative / 2) / (total_positive * total_negative)
        return np.where((total_positive == 0) | (total_negative == 0), np.nan, auc)
    positive = np.add.reduceat(weights * y, starts, axis=1)
    negative = np.add.reduceat(weights * (1 - y), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative
    total_positive, total_negative = positive.sum(axis=1), negative.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.sum(positive * (below + negative / 2), axis=1) / (total_positive * total_negative)
    return np.where((total_positive == 0) | (total_negative == 0), np.nan, auc)


def _average_precision(y: np.ndarray, starts: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows sorted by falling score, in groups of tied scores (one threshold each): a group's positives add their
    share of recall at the precision of every row down to the group's end."""
    weights = counts[:, order]
    positive = np.add.reduceat(weights * y, starts, axis=1)
    drawn = np.add.reduceat(weights, starts, axis=1)
    total_positive = positive.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.cumsum(positive, axis=1) / np.cumsum(drawn, axis=1)
        ap = np.nansum(positive * precision, axis=1) / total_positive
    one_class = (total_positive == 0) | (total_positive == drawn.sum(axis=1))
    return np.where(one_class, np.nan, ap)


def paired_bootstrap(
    config: Config, statistic: Callable[[np.ndarray], np.ndarray], rows: int
) -> tuple[float, float, int]:
    """Percentile interval of ``statistic`` over resamples of ``rows`` rows drawn with replacement, every output of a
    row kept with it (``scipy.stats.bootstrap`` over the row numbers, as its own paired mode does),
    ``promotion.bootstrap`` resamples at ``promotion.confidence``, seeded with ``training.seed``; and how many
    resamples left it undefined (NaN: a classification metric of a resample holding one class; the caller says in
    words why it has no interval).

    ``statistic`` takes the resamples' counts, ``(resamples, rows)``: how often each row was drawn
    (:func:`resampled_metric`). Resamples are drawn in batches of at most ~20 million draws, bounding memory.
    """
    from scipy import stats  # not at import time: scoring workers import this module and never bootstrap

    def of_draws(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = drawn.reshape(-1, rows)
        counts = np.empty(batch.shape)
        for resample, draws in enumerate(batch):  # a row at a time: no temporary the size of the batch
            counts[resample] = np.bincount(draws, minlength=rows)
        return statistic(counts)

    resamples = config.promotion.bootstrap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # the NaN case is reported by the caller
        result = stats.bootstrap(
            (np.arange(rows),),
            of_draws,
            vectorized=True,
            n_resamples=resamples,
            batch=max(1, 20_000_000 // max(rows, 1)),
            confidence_level=config.promotion.confidence,
            method="percentile",
            rng=np.random.default_rng(config.training.seed),
        )
    undefined = int(np.isnan(result.bootstrap_distribution).sum())
    return float(result.confidence_interval.low), float(result.confidence_interval.high), undefined
