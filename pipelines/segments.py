"""Segments: the drift share and the realized metric per value of a categorical feature (``monitoring.segments``).

A global number hides a segment that got worse: a region whose applicants changed, or whose defaults the model
now misses, moves the overall figures by its share only. Each value of each configured segment column is checked
on its own rows against the reference's rows of the same value; a value with too few rows (``monitoring.min_rows``)
is listed with its count and no figure, never judged on a handful of rows. The drift and metric functions are pure;
:func:`labeled_segment_metrics` reads the lake for the retrain trigger (the newest labeled day's rows).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.drift_tests import drift_verdicts
from pipelines.modeling import metric_value
from pipelines.records import defined


def values_of(frame: pd.DataFrame, column: str) -> list[str]:
    """The segment column's values present in ``frame`` (missing values are not a segment), sorted."""
    return sorted(str(v) for v in frame[column].dropna().unique())


def rows_of(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    return frame[frame[column].astype(object).astype(str).eq(value) & frame[column].notna()]


def segment_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    segments: list[str],
    min_rows: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per segment column and value: the window's rows, the reference's, and the share of the other features that
    drifted between the two (Evidently's verdicts, as for the whole window), or a note when either side has fewer
    than ``min_rows`` rows."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for column in segments:
        others = [c for c in categorical if c != column]
        found[column] = {}
        for value in values_of(current, column):
            now, then = rows_of(current, column, value), rows_of(reference, column, value)
            entry: dict[str, Any] = {"rows": len(now), "reference_rows": len(then)}
            if min(len(now), len(then)) < min_rows:
                entry.update(drift_share=None, drifted_columns=[], note=f"fewer than {min_rows} rows on a side")
            else:
                verdicts = drift_verdicts(then, now, numerical, others)
                drifted = sorted(c for c, v in verdicts.items() if v["drifted"])
                entry.update(drift_share=len(drifted) / max(1, len(verdicts)), drifted_columns=drifted)
            found[column][value] = entry
    return found


def metric_by_segment(
    config: Config, labeled: pd.DataFrame, output: str, segments: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per segment column and value: the metric of ``output`` against the target on the labeled rows of that value
    (None under ``monitoring.min_rows`` rows or, for classification, with one class only) and its row count."""
    target = config.dataset.target
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for column in segments:
        found[column] = {}
        for value in values_of(labeled, column):
            rows = rows_of(labeled, column, value)
            y, scores = rows[target].to_numpy(), rows[output].to_numpy(dtype=np.float64)
            defined_here = len(rows) >= config.monitoring.min_rows and (
                config.task != "classification" or len(np.unique(y)) == 2
            )
            metric = defined(metric_value(config.model.metric, y, scores)) if defined_here else None
            found[column][value] = {"value": metric, "rows": len(rows)}
    return found


def metric_name(prefix: str, column: str, value: str, field: str) -> str:
    """An MLflow metric name for one segment value (characters MLflow refuses become ``_``)."""
    return re.sub(r"[^\w.\- /]", "_", f"{prefix}.{column}.{value}.{field}")


def segment_metrics_for_mlflow(prefix: str, table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float]:
    """The table's numbers as flat MLflow metrics (``segment.region.north.drift_share``); None is left out."""
    return {
        metric_name(prefix, column, value, field): float(number)
        for column, values in table.items()
        for value, entry in values.items()
        for field, number in entry.items()
        if isinstance(number, int | float) and not isinstance(number, bool)
    }


def labeled_segment_metrics(
    config: Config, day: date, as_of: date, output: str
) -> dict[str, dict[str, dict[str, Any]]]:
    """The realized metric per segment value of a scored ``day``, on the labels known by the end of ``as_of``: the
    day's predictions joined with its features' segment columns and the labels (every scored row, not the log's
    sample: a segment has a fraction of the day's rows)."""
    from pipelines.storage import Lake, Table
    from pipelines.training import read_labels

    key, segments = config.dataset.key, config.monitoring.segments
    lake = Lake.from_config(config)
    predictions = lake.read(Table.PREDICTIONS, day, [key, output])
    features = lake.read(Table.FEATURES, day, [key, *segments])
    frame = predictions.assign(**{key: predictions[key].astype(str)}).merge(
        features.assign(**{key: features[key].astype(str)}), on=key
    )
    labels = read_labels(config, frame[key], as_of=as_of)
    labeled = frame.merge(labels, on=key)
    return metric_by_segment(config, labeled[labeled[config.dataset.target].notna()], output, segments)
