"""The performance table per segment: each scored day's realized and estimated metric per ``monitoring.segments``
value, in a sibling table (``<root>/performance_segments/date=D/``).

Long rows, one per (day, segment column, value): a value seen on one day only, or a new segment column, needs no
new column, and "north over the last month" is a filter, not a column pick. Each row holds the value's scored and
labeled rows, the realized metric on its labeled rows (:func:`pipelines.segments.metric_by_segment`: none under
``monitoring.min_rows`` rows or with one class) and the estimate from its scores (CBPE or DLE, with its interval;
computed when the day's row is rewritten). Written with the day's row of the performance table, in the same update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.estimated_performance import Estimate
from pipelines.monitoring import output_column
from pipelines.registry import realized_metric
from pipelines.segments import metric_by_segment, metric_name, rows_of, values_of


def segment_rows(
    config: Config,
    day: str,
    version: str,
    labels_as_of: str,
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    estimate_of: Callable[[pd.DataFrame], Estimate],
) -> pd.DataFrame:
    """One row per segment column and value of the day's scored rows (``frame``: key, output and the segment
    columns), with the realized metric on ``labels`` and ``estimate_of`` the value's rows. Pure but for
    ``estimate_of``."""
    key, target, output = config.dataset.key, config.dataset.target, output_column(config)
    known = frame.assign(**{key: frame[key].astype(str)}).merge(labels, on=key, how="inner")
    known = known[known[target].notna()]
    realized = metric_by_segment(config, known, output, config.monitoring.segments)
    rows: list[dict[str, Any]] = []
    for column in config.monitoring.segments:
        for value in values_of(frame, column):
            found = estimate_of(rows_of(frame, column, value))
            entry = realized[column].get(value, {"value": None, "rows": 0})
            rows.append(
                {
                    "model_version": version,
                    "segment": column,
                    "segment_value": value,
                    "scored_rows": len(rows_of(frame, column, value)),
                    "labeled_rows": int(entry["rows"]),
                    "metric": config.model.metric,
                    "value": float("nan") if entry["value"] is None else float(entry["value"]),
                    "estimated_value": found.value,
                    "estimated_ci_low": found.ci_low,
                    "estimated_ci_high": found.ci_high,
                    "estimated_note": found.note,
                    "labels_as_of": labels_as_of,
                }
            )
    return pd.DataFrame(rows).assign(date=day) if rows else pd.DataFrame()


def segment_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """The segment rows as the day's MLflow metrics (``segment.region.north.realized_roc_auc``, ``.estimated_...``,
    ``.scored_rows``, ``.labeled_rows``); NaN is left out."""
    found: dict[str, float] = {}
    for row in rows.to_dict("records"):
        column, value, metric = row["segment"], row["segment_value"], row["metric"]
        for field, number in (
            (realized_metric(metric), row["value"]),
            (f"estimated_{metric}", row["estimated_value"]),
            ("scored_rows", row["scored_rows"]),
            ("labeled_rows", row["labeled_rows"]),
        ):
            if np.isfinite(number):
                found[metric_name("segment", column, value, field)] = float(number)
    return found
