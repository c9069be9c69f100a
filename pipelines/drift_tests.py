"""Drift statistics with Evidently: per-column verdicts on every row, the share of drifted features, missing values.

The verdicts are Evidently's own (its test pick, its thresholds), computed per column without building a whole
report: the report is rendered on a sample for people to look at (:mod:`pipelines.drift_report`), while every
verdict the retraining gate reads uses all rows. Evidently drops NaNs before its tests, so a jump in missing values
is checked here too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import FeatureSpec


def missing_alerts(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], threshold: float
) -> dict[str, float]:
    """Columns whose missing share rose by more than ``threshold`` over the reference: column -> rise."""
    rises = current[columns].isna().mean() - reference[columns].isna().mean()
    return {c: float(v) for c, v in rises.items() if v > threshold}


@dataclass(frozen=True)
class DriftAssessment:
    """The numbers and flags a drift check reports, decided from per-column verdicts and the two frames."""

    drift_share: float  # share of the tested feature columns that drifted (the model output is not counted)
    drifted_columns: list[str]
    missing: dict[str, float]  # column -> rise of its missing share over the reference (1.0: all missing now)
    reason: str


def columns_to_test(
    current: pd.DataFrame, features: FeatureSpec, output: str
) -> tuple[list[str], list[str], list[str]]:
    """Numerical (with the model output) and categorical columns to test, and the feature columns entirely missing
    in ``current`` (no drift test can run on them; they are flagged as missing instead)."""
    empty = [c for c in features.all if current[c].isna().all()]
    numerical = [c for c in features.numbers if c not in empty] + [output]
    categorical = [c for c in features.categorical if c not in empty]
    return numerical, categorical, empty


def assess_drift(
    verdicts: dict[str, dict[str, Any]],
    output: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: FeatureSpec,
    empty: list[str],
    missing_threshold: float,
) -> DriftAssessment:
    """Drift share over the tested features, the drifted ones, and missing-value alerts (pure: no I/O)."""
    tested = [c for c in verdicts if c != output]
    drifted = sorted(c for c in tested if verdicts[c]["drifted"])
    missing = missing_alerts(reference, current, features.all, missing_threshold)
    for column in empty:
        missing.setdefault(column, 1.0)
    reason = f"{len(drifted)} of {len(tested)} columns drifted" + (f"; all missing: {empty}" if empty else "")
    return DriftAssessment(len(drifted) / max(1, len(tested)), drifted, missing, reason)


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    output: str | None = None,
) -> Any:
    """One Evidently DataDriftPreset report over the given columns (Evidently picks each column's test).

    Built as the pipeline decides: the preset's dataset-drift verdict uses ``drift_share`` (pass the configured
    ``monitoring.drift_share_threshold``; 0.5 is Evidently's default), and the model ``output``, when named, gets its
    own ``ValueDrift`` outside the preset, so the report's drifted-columns share counts the features only, as the
    pipeline's drift share does.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = [*numerical, *categorical]
    features = [c for c in columns if c != output]
    metrics: list[Any] = [DataDriftPreset(columns=features, drift_share=drift_share)]
    if output is not None:
        metrics.append(ValueDrift(column=output))
    return Report(metrics).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def import_evidently() -> None:
    """Import Evidently's report and tests in this thread, before threads use them: Evidently's modules import each
    other in a cycle, and a first import from two threads at once fails on it (``cannot import name``)."""
    import evidently.legacy.calculations.stattests.registry
    import evidently.presets  # noqa: F401


def select_test(reference: pd.Series, current: pd.Series, feature_type: Any) -> Any:
    """The test Evidently picks for a column, asked without hashing every current value twice.

    Evidently's pick (``_get_default_stattest``) depends on the reference (its size, its values) and, of the current
    values, only on how many distinct values both samples hold together, compared with 2 and 5. So it is asked with
    the current column's distinct values in place of its rows, or with none once the reference alone holds more than
    5 (more current values cannot change the pick): the same answer, for a fraction of the work on a large window.
    """
    from evidently.legacy.calculations.stattests.registry import get_stattest

    many = reference.head(1000).nunique() > 5 or reference.nunique() > 5  # the head settles it for most columns
    distinct = current.iloc[:0] if many else pd.Series(current.unique())
    return get_stattest(reference, distinct, feature_type, None)


def column_drift(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, Any]:
    """One column's drift with the test Evidently would pick for it (its own selection and implementation).

    Missing values (and infinities, for numbers) are dropped first, as Evidently does; that is why missing shares
    are checked separately.
    """
    from evidently.legacy.core import ColumnType

    feature_type = ColumnType.Numerical if kind == "num" else ColumnType.Categorical
    reference, current = _valid(reference, kind), _valid(current, kind)
    test = select_test(reference, current, feature_type)
    result = test(reference, current, feature_type, None)
    return {
        "score": float(result.drift_score),
        "threshold": float(result.actual_threshold),
        "method": test.display_name,
        "drifted": bool(result.drifted),
        "rows": len(current),  # tested: all of the window's non-missing values, not the report's sample
    }


def _valid(values: pd.Series, kind: str) -> pd.Series:
    if kind == "num":
        values = values.astype("float64", copy=False)
        finite = np.isfinite(values.to_numpy())
        return values if finite.all() else values[finite]
    return values.dropna()


def drift_verdicts(
    reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-column verdicts, the columns tested in parallel threads (one per core).

    Columns are independent, and the tests' heavy parts (sorting, hashing, histograms in NumPy and pandas) release
    the GIL, so threads use every core without copying the window into worker processes.
    """
    import_evidently()
    kinds = {**{c: "num" for c in numerical}, **{c: "cat" for c in categorical}}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="drift") as pool:
        futures = {c: pool.submit(column_drift, reference[c], current[c], k) for c, k in kinds.items()}
        return {c: future.result() for c, future in futures.items()}


def column_verdicts(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's drift score, the method's threshold and whether it calls the column drifted."""
    verdicts: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        score, threshold, method = float(metric["value"]), float(config["threshold"]), config.get("method", "")
        p_value = "p_value" in method.replace("-", "_").lower()
        drifted = score < threshold if p_value else score >= threshold
        verdicts[config["column"]] = {"score": score, "threshold": threshold, "method": method, "drifted": drifted}
    return verdicts
