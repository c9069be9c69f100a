"""What a frame of rows gets from a model, apart from where the rows come from: checked input, the model's
predictions with failing rows isolated, and the stable key hash that samples the prediction log.

Shared by batch scoring (:mod:`pipelines.scoring`, on Dask) and online serving (:mod:`pipelines.serving`), so a row
gets the same answer, or the same error, on both paths. Pure numpy and pandas: the server's scoring child imports
this and nothing of Dask or MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.contract import DUPLICATE, RowContract
from pipelines.errors import StageLost

HASH_BUCKETS = 10_000


def key_hashes(keys: pd.Series) -> np.ndarray:
    """Stable 64-bit key hashes (the same in every process and run): for sampling and duplicate detection."""
    values = keys.to_numpy(dtype=object)
    if keys.isna().any() or keys.dtype != object:
        values = keys.astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(values, categorize=False)  # keys are (nearly) unique: factorizing first only costs


def in_sample(hashes: np.ndarray, rate: float) -> np.ndarray:
    """The same key is always in or out of the prediction log, whichever run or worker scores it."""
    return (hashes % HASH_BUCKETS) < round(rate * HASH_BUCKETS)


def checked_input(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, pd.Series]:
    """Model input for every row, and a reason for each row that breaks the row contract (:mod:`pipelines.contract`).

    Reason strings are built for the failing rows only.
    """
    x, problems = RowContract.of(config.dataset).model_input(frame)
    names = list(problems)
    matrix = np.column_stack([problems[n] for n in names]) if names else np.zeros((len(frame), 0), bool)
    bad = np.flatnonzero(matrix.any(axis=1))
    reasons = pd.Series(
        {int(row): "; ".join(n for n, hit in zip(names, matrix[row], strict=True) if hit) for row in bad}, dtype=object
    )
    return x, reasons


def _predict(model: Any, x: pd.DataFrame, task: str) -> pd.DataFrame:
    if x.empty:
        columns = ["prediction", "probability"] if task == "classification" else ["prediction"]
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}, index=x.index)
    if task == "classification":
        probability = model.predict_proba(x)[:, 1]
        return pd.DataFrame(
            {"prediction": model.classes_[(probability >= 0.5).astype(int)], "probability": probability}, index=x.index
        )
    return pd.DataFrame({"prediction": np.asarray(model.predict(x), dtype=np.float64)}, index=x.index)


def predict_isolating(model: Any, x: pd.DataFrame, task: str) -> tuple[pd.DataFrame, pd.Series]:
    """Predictions for the rows that can be scored and an error for each row that cannot.

    The whole batch is tried once (a model is deterministic: the same rows would fail again); if it fails, each
    half is tried on its own, down to single rows. A lost stage of a sharded model is no fault of the rows: raised.
    """
    try:
        return _predict(model, x, task), pd.Series(dtype=object)
    except StageLost:
        raise
    except Exception as exc:  # noqa: BLE001 (any model error: isolate the rows that cause it)
        error = f"{type(exc).__name__}: {exc}"
    if len(x) == 1:
        return _predict(model, x.iloc[:0], task), pd.Series({x.index[0]: error}, dtype=object)
    middle = len(x) // 2
    parts = [predict_isolating(model, half, task) for half in (x.iloc[:middle], x.iloc[middle:])]
    return pd.concat([p[0] for p in parts]), pd.concat([p[1] for p in parts])


def predict_frame(
    frame: pd.DataFrame, model: Any, config: Config, duplicates: tuple[int, ...] = ()
) -> tuple[pd.DataFrame, pd.Series]:
    """Predictions (prediction, + probability) of the rows that can be scored, and a reason for each row that cannot.

    The part of scoring that batch and online serving share, so a row gets the same answer (or the same error) on
    both paths: checked input, the model with failing rows isolated, non-finite predictions rejected. Nothing
    else, because the server calls it once per dynamic batch and its fixed cost is request latency.
    """
    x, reasons = checked_input(frame, config)
    for position in duplicates:
        reasons[position] = f"{config.dataset.key}: {DUPLICATE} (first seen in an earlier row group)"
    usable = x.drop(index=reasons.index) if len(reasons) else x
    predicted, failures = predict_isolating(model, usable, config.task)
    values = predicted.select_dtypes("number")
    finite = np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1) if len(values.columns) else True
    if np.all(finite) and failures.empty and reasons.empty:  # the usual case, without the bookkeeping below
        return predicted, reasons
    non_finite = predicted.index[~finite]
    failures = pd.concat(
        [failures, pd.Series("model returned a non-finite prediction", index=non_finite, dtype=object)]
    )
    return predicted.drop(index=non_finite), pd.concat([reasons, failures]).sort_index()
