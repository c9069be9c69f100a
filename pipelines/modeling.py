"""The model: preprocessing + the configured estimator as one sklearn Pipeline, and its metrics.

Training and scoring both pass frames through :func:`model_input`, so the model always sees the same dtypes
whichever stage (or worker process) feeds it.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.config import Config, ConfigError


def estimator_class(dotted: str) -> type[BaseEstimator]:
    """Import ``package.module.Class``; a bad path is a config error naming ``model.estimator``."""
    module_name, _, class_name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.estimator: cannot import {dotted!r}: {exc}") from exc


def build_pipeline(config: Config) -> Pipeline:
    """Impute + scale numbers, impute + one-hot categories (unseen categories are ignored), then the estimator."""
    features = config.dataset.features
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    numerical = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer(
        [("num", numerical, features.numerical), ("cat", categorical, features.categorical)], remainder="drop"
    )
    try:
        estimator = estimator_class(config.model.estimator)(**config.model.params)
    except TypeError as exc:
        raise ConfigError(f"model.params: {exc}") from exc
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def model_input(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The feature columns with the dtypes the pipeline was fitted on: float numbers, object categories, NaN for missing."""
    features = config.dataset.features
    numbers = frame[features.numerical].astype("float64")
    categories = frame[features.categorical].astype(object).where(frame[features.categorical].notna(), np.nan)
    return pd.concat([numbers, categories], axis=1)


def evaluate(model: Pipeline, x: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Holdout metrics for the task; metrics undefined on this data (one class only) are left out."""
    if task == "regression":
        predicted = model.predict(x)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "r2": float(metrics.r2_score(y, predicted)),
        }
    probability = model.predict_proba(x)[:, 1]
    predicted = (probability >= 0.5).astype(int)
    result: dict[str, Any] = {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "f1": float(metrics.f1_score(y, predicted, zero_division=0)),
    }
    if y.nunique() == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(y, probability))
        result["average_precision"] = float(metrics.average_precision_score(y, probability))
        result["log_loss"] = float(metrics.log_loss(y, probability, labels=[0, 1]))
    return result
