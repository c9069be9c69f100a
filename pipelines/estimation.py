"""The estimated metric of some scored rows, by the task's method: CBPE for classification
(:mod:`pipelines.estimated_performance`), direct loss estimation for regression (:mod:`pipelines.loss_estimation`).

One entry point for the performance table's day, window and segment rows, so each asks the same question the same
way; the model version's calibration or loss model is loaded (and fitted) once per version and registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.estimated_performance import Estimate, estimate, load_calibration
from pipelines.loss_estimation import estimate_loss, load_loss_model
from pipelines.modeling import model_input
from pipelines.monitoring import output_column


def features_needed(config: Config) -> list[str]:
    """The feature columns an estimate reads beside the model's output: the model's inputs for regression (the
    loss model reads them), none for classification (CBPE reads the scores alone)."""
    return config.dataset.features.all if config.task == "regression" else []


def estimate_rows(config: Config, registry: Any, version: str, rows: pd.DataFrame) -> Estimate:
    """The metric's estimate and interval on ``rows`` (the model's output, and :func:`features_needed`) scored by
    ``version``; NaN and why when there is none (several versions, nothing stored with the version, a metric the
    method does not estimate)."""
    nan = float("nan")
    if "," in version:
        return Estimate(nan, nan, nan, f"scored by several versions ({version}): no one model's estimate")
    output = rows[output_column(config)].to_numpy(dtype=np.float64)
    metric, seed, confidence = config.model.metric, config.training.seed, config.promotion.confidence
    if config.task == "classification":
        calibration = load_calibration(registry, config.model.name, version)
        return estimate(metric, output, calibration, config.monitoring.estimate_resamples, confidence, seed)
    categorical = config.dataset.features.categorical
    model = load_loss_model(registry, config.model.name, version, metric, categorical, seed)
    return estimate_loss(metric, model, model_input(rows, config), output, confidence)
