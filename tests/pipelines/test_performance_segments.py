"""The performance table per segment: each scored day's realized and estimated metric and row counts per
``monitoring.segments`` value, as long rows of a sibling table and as metrics of the day's MLflow run."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from lakes import START, labeled_champion, with_section
from sklearn.metrics import roc_auc_score

from pipelines import performance
from pipelines.registry import RunKind
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.unit

D = [START + timedelta(days=i) for i in range(3)]


@pytest.fixture
def segmented(config, tmp_path):
    """Two scored days of 600 rows: in the north the scores rank defaults well, in the south they are noise; half of
    the second day's rows labeled. A champion v1 with its calibration in a registry of the test's own."""
    rng = np.random.default_rng(8)
    lake, labels, truth = Lake.from_config(config), [], {}
    for day, share in zip(D[:2], (1.0, 0.5), strict=True):
        keys = [f"S{day:%m%d}{i:04d}" for i in range(600)]
        region = np.where(np.arange(600) % 3 == 0, "north", "south")
        y = rng.integers(0, 2, 600)
        scores = np.where(region == "north", np.clip(y * 0.5 + rng.random(600) * 0.5, 0, 1), rng.random(600))
        lake.write(Table.FEATURES, day, pd.DataFrame({"customer_id": keys, "region": region}))
        lake.write(
            Table.PREDICTIONS, day, pd.DataFrame({"customer_id": keys, "probability": scores}).assign(model_version="1")
        )
        labeled = int(600 * share)
        labels.append(pd.DataFrame({"customer_id": keys[:labeled], "defaulted": y[:labeled]}))
        truth[day] = pd.DataFrame({"region": region, "y": y, "score": scores, "labeled": np.arange(600) < labeled})
    config, registry = labeled_champion(config, tmp_path, labels, rng, lift=0.3)
    return with_section(config, "monitoring", segments=["region"]), registry, truth


def test_each_days_segment_rows_hold_the_realized_and_estimated_metric_per_value(segmented):
    config, registry, truth = segmented
    performance.update_performance(config, D[1], registry)
    rows = Lake.from_config(config).read_days(Table.PERFORMANCE_SEGMENTS, D[:2], None)
    rows = rows.assign(date=[d.isoformat() for d in D[:2] for _ in range(2)]).set_index(["date", "segment_value"])
    assert len(rows) == 4 and set(rows["segment"]) == {"region"}
    for day in D[:2]:
        frame = truth[day]
        for region in ("north", "south"):
            row, mine = rows.loc[(day.isoformat(), region)], frame[frame["region"] == region]
            known = mine[mine["labeled"]]
            assert (row["scored_rows"], row["labeled_rows"]) == (len(mine), len(known))
            assert row["value"] == pytest.approx(roc_auc_score(known["y"], known["score"]))
            assert row["estimated_ci_low"] < row["estimated_value"] < row["estimated_ci_high"]
    north, south = rows.loc[(D[0].isoformat(), "north")], rows.loc[(D[0].isoformat(), "south")]
    assert north["value"] > 0.85 and 0.4 < south["value"] < 0.6  # the day's AUC hides a region without skill

    [run] = registry.find_runs(RunKind.PERFORMANCE, day=D[1].isoformat(), model_name=config.model.name)
    south = rows.loc[(D[1].isoformat(), "south")]
    assert run.metrics["segment.region.south.realized_roc_auc"] == pytest.approx(south["value"])
    assert run.metrics["segment.region.south.estimated_roc_auc"] == pytest.approx(south["estimated_value"])
    assert run.metrics["segment.region.south.labeled_rows"] == south["labeled_rows"]
