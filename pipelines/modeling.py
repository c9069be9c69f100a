"""The model: preprocessing + the configured estimator as one sklearn Pipeline, and its metrics.

Training and scoring both pass frames through :func:`model_input`, so the model always sees the same dtypes
whichever stage (or worker process) feeds it.
"""

from __future__ import annotations

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
        [("num", numerical, features.numerical), ("cat", categorical, features.categorical)], remainder="drop"
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
    numbers = frame[features.numerical].astype("float64")
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


def paired_bootstrap(
    config: Config, statistic: Callable[..., float], y: np.ndarray, *outputs: np.ndarray
) -> tuple[float, float, int]:
    """Percentile interval of ``statistic(y, *outputs)`` over rows resampled together (``scipy.stats.bootstrap``,
    paired), ``promotion.bootstrap`` resamples at ``promotion.confidence``, seeded with ``training.seed``; and how
    many resamples left it undefined. A classification metric is undefined on a resample holding one class: such a
    resample counts as NaN, and the caller says in words why it has no interval."""
    from scipy import stats  # not at import time: scoring workers import this module and never bootstrap

    one_class_undefined = config.task == "classification"

    def guarded(y_: np.ndarray, *outputs_: np.ndarray) -> float:
        if one_class_undefined and len(np.unique(y_)) < 2:
            return float("nan")
        return statistic(y_, *outputs_)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # the NaN case is reported by the caller
        result = stats.bootstrap(
            (np.asarray(y), *(np.asarray(o, dtype=np.float64) for o in outputs)),
            guarded,
            paired=True,
            vectorized=False,
            n_resamples=config.promotion.bootstrap,
            confidence_level=config.promotion.confidence,
            method="percentile",
            rng=np.random.default_rng(config.training.seed),
        )
    undefined = int(np.isnan(result.bootstrap_distribution).sum())
    return float(result.confidence_interval.low), float(result.confidence_interval.high), undefined
