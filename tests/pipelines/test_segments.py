"""Segments on hand-made frames: a drift that only one region has, a metric that only one region lost, and the
retrain signal that names it (pure; Evidently computes the verdicts)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from lakes import with_section

from pipelines.monitoring import DriftResult
from pipelines.retrain_rules import retrain_decision
from pipelines.segments import metric_by_segment, segment_drift, segment_metrics_for_mlflow

pytestmark = pytest.mark.unit


def _frame(rows: int, seed: int, shifted_region: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(0, 1, rows),
            "age": rng.normal(40, 10, rows),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), rows),
            "product": rng.choice(np.array(["auto", "card"], dtype=object), rows),
        }
    )
    if shifted_region:
        rows_of = frame["region"] == shifted_region
        frame.loc[rows_of, "income"] += 1.0
    return frame


def test_a_drift_in_one_region_shows_in_that_region_only():
    reference, current = _frame(4000, 1), _frame(2000, 2, shifted_region="north")
    table = segment_drift(reference, current, ["income", "age"], ["region", "product"], ["region"], min_rows=100)
    assert sorted(table["region"]) == ["east", "north", "south", "west"]
    assert (
        table["region"]["north"]["drifted_columns"] == ["income"] and table["region"]["north"]["drift_share"] == 1 / 3
    )
    assert all(table["region"][r]["drift_share"] == 0.0 for r in ("east", "south", "west")), table
    few = segment_drift(reference, current.head(150), ["income"], ["region"], ["region"], min_rows=100)
    assert few["region"]["north"]["drift_share"] is None and few["region"]["north"]["rows"] < 100
    flat = segment_metrics_for_mlflow("segment", table)
    assert (
        flat["segment.region.north.drift_share"] == 1 / 3
        and flat["segment.region.north.rows"] == table["region"]["north"]["rows"]
    )


def test_the_metric_per_segment_value_and_the_signal_that_names_the_fallen_one(demo):
    config = with_section(demo, "monitoring", segments=["region"], segment_metric_drop_threshold=0.1)
    rng = np.random.default_rng(3)
    labeled = _frame(2000, 4)
    labeled["defaulted"] = (rng.random(2000) < 0.3).astype(int)
    good = 0.8 * labeled["defaulted"] + rng.random(2000)
    labeled["probability"] = np.where(labeled["region"] == "north", rng.random(2000), good)
    table = metric_by_segment(config, labeled, "probability", ["region"])
    assert table["region"]["north"]["value"] < 0.6 < 0.8 < table["region"]["south"]["value"]
    drift = DriftResult(day="2026-10-18", status="checked", reason="", drift_share=0.0, champion_metric=0.85)
    fired = replace(drift, labeled_segments={"day": "2026-10-16", "segments": table})
    decision = retrain_decision(config, fired, pd.Timestamp("2026-10-18").date(), lambda: None, lambda: 9999)
    north = table["region"]["north"]
    assert decision.retrain and decision.triggers == [
        f"segment realized roc_auc of 2026-10-16 fell by >= 0.1: region=north {north['value']:.4f}"
        f" ({0.85 - north['value']:.4f} below, {north['rows']} rows)"
    ]
    unknown = retrain_decision(config, drift, pd.Timestamp("2026-10-18").date(), lambda: None, lambda: 9999)
    assert (
        not unknown.retrain and "segments: realized roc_auc per segment not known (no labeled day)" in unknown.signals
    )
