"""The demo's summary tables, read back from the lake and the registry."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from lakes import days

from pipelines.storage import Lake, Table
from pipelines.summary import (
    feature_summary,
    lake_summary,
    monitoring_summary,
    performance_summary,
    registry_summary,
)

SCORED, EXTRACTED, NOTHING = days(3)


@pytest.mark.unit
def test_lake_summary_counts_each_table_per_day(tmp_path):
    """A day scored by two versions, a day only extracted, a day with nothing: counts, versions and gaps."""
    from lakes import write_config

    from pipelines.config import load_config

    config = load_config(write_config(tmp_path, tmp_path / "raw", mlflow_store=False))
    lake = Lake.from_config(config)

    def write(table: Table, day: date, rows: int, **columns) -> None:
        lake.write(table, day, pd.DataFrame({"customer_id": range(rows), **columns}))

    write(Table.FEATURES, SCORED, 5)
    write(Table.QUARANTINE, SCORED, 2)
    write(Table.PREDICTIONS, SCORED, 4, model_version=["1", "2", "2", "1"])
    write(Table.DEAD_LETTER, SCORED, 1)
    write(Table.PREDICTION_LOG, SCORED, 3)
    write(Table.FEATURES, EXTRACTED, 7)
    write(Table.QUARANTINE, EXTRACTED, 0)

    summary = lake_summary(config, [SCORED, EXTRACTED, NOTHING])
    expected = pd.DataFrame(
        {
            "date": [d.isoformat() for d in (SCORED, EXTRACTED, NOTHING)],
            "rows_in": [7, 7, 0],
            "valid": [5, 7, None],
            "quarantined": [2, 0, None],
            "scored": [4, None, None],
            "dead_letter": [1, None, None],
            "logged": [3, None, None],
            "model_version": ["1,2", "-", "-"],
        }
    ).astype({c: "Int64" for c in ("valid", "quarantined", "scored", "dead_letter", "logged")})
    pd.testing.assert_frame_equal(summary, expected)


@pytest.mark.integration
def test_registry_and_monitoring_summaries_show_versions_checks_and_decisions(build_lake, dask_client):
    """A champion, a day scored and checked, and a challenger kept out: each shows up where the demo prints it."""
    from pipelines.monitoring import check_drift
    from pipelines.performance import read_performance, update_performance
    from pipelines.promotion import evaluate_and_promote, train_challenger
    from pipelines.scoring import score_day

    first, second, third, checked = days(4)
    config = build_lake(
        4, third, training={"window_days": 3}, monitoring={"sample_rate": 1.0}, promotion={"bootstrap": 100}
    )
    score_day(config, checked, "run-summary", dask_client)
    drift = check_drift(config, checked)
    update_performance(config, checked)  # the day's own labels have not arrived yet
    update_performance(config, checked + timedelta(days=3))  # all of them have
    weak = config.model_copy(
        update={"model": config.model.model_copy(update={"estimator": "sklearn.dummy.DummyClassifier", "params": {}})}
    )
    challenger = train_challenger(weak, checked, "summary test")
    decision = evaluate_and_promote(weak, checked, challenger, "summary test")
    assert not decision.promoted

    registry = registry_summary(config)
    assert registry["version"].tolist() == [1, 2]
    assert registry["aliases"].tolist() == ["champion", "challenger"]
    # the challenger's holdout is the newest day half labeled by `checked` (the second): it trains on the first
    assert registry["window"].tolist() == [f"{first}..{third}", f"{first}..{first}"]
    assert decision.holdout == f"{second}..{second}"
    assert float(registry["roc_auc"].iloc[0]) > 0.5

    monitoring = monitoring_summary(config, [third, checked]).set_index("date")
    assert monitoring.loc[checked.isoformat(), "drift_share"] == round(drift.drift_share, 2)
    realized = read_performance(config, [checked]).iloc[0]
    assert drift.realized_metric is None and realized["labeled_rows"] == 592
    assert monitoring.loc[checked.isoformat(), "realized_roc_auc"] == round(realized["value"], 3)
    assert monitoring.loc[checked.isoformat(), "retrained"] == "v2"
    assert monitoring.loc[checked.isoformat(), "decision"] == (
        f"kept: {decision.challenger_metric:.3f} vs {decision.champion_metric:.3f}"
    )
    quiet = monitoring.loc[third.isoformat()]  # extracted and trained on, never checked
    assert quiet[["drift_share", "realized_roc_auc"]].isna().all() and (quiet["retrained"], quiet["decision"]) == (
        "-",
        "-",
    )

    labels = performance_summary(config, [checked]).iloc[0]
    assert (labels["labeled_0d"], labels["labeled_2d"], labels["labeled_3d"]) == ("0%", "0%", "100%")
    assert (labels["labeled"], labels["model_version"], labels["labels_as_of"]) == ("592/592", "1", "2026-10-07")
    assert labels["realized_roc_auc"] == round(realized["value"], 3)
    assert labels["interval"] == f"[{realized['ci_low']:.3f}, {realized['ci_high']:.3f}]"
    assert labels["estimated_roc_auc"] == round(realized["estimated_value"], 3)  # from the scores, before labels
    assert labels["estimated_interval"] == f"[{realized['estimated_ci_low']:.3f}, {realized['estimated_ci_high']:.3f}]"


@pytest.mark.unit
def test_feature_summary_shows_the_declared_features_per_day(tmp_path):
    """The mean of each declared feature per extracted day, and the share of rows without history; nothing without
    declared features."""
    from lakes import write_config

    from pipelines.config import load_config

    config = load_config(write_config(tmp_path, tmp_path / "raw", mlflow_store=False, declared=True))
    computed = config.dataset.features.computed
    frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], **{c: [1.0, 2.0, 3.0, 6.0] for c in computed}})
    frame["payment_days_since_last_90d"] = [5.0, None, None, 7.0]
    Lake.from_config(config).write(Table.FEATURES, SCORED, frame)

    summary = feature_summary(config, [SCORED, EXTRACTED])
    assert list(summary.columns) == ["date", *computed, "no_history"]
    assert summary["date"].tolist() == [SCORED.isoformat()]  # a day without features is left out
    assert summary["late_count_30d"].tolist() == [3.0] and summary["payment_days_since_last_90d"].tolist() == [6.0]
    assert summary["no_history"].tolist() == ["50%"]
    raw = load_config(write_config(tmp_path, tmp_path / "raw", mlflow_store=False))
    assert feature_summary(raw, [SCORED]).empty
