from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from pipelines import demo_data

pytestmark = pytest.mark.unit

SPEC = demo_data.DemoSpec(rows_per_day=3000, days=12, drift_day=6)


def _load(folder: Path, kind: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((folder / kind).glob("*.parquet"))], ignore_index=True)


def test_generation_is_deterministic_and_complete(tmp_path):
    first = demo_data.generate(tmp_path / "a", SPEC)
    demo_data.generate(tmp_path / "b", SPEC)
    a, b = _load(tmp_path / "a", "raw"), _load(tmp_path / "b", "raw")
    pd.testing.assert_frame_equal(a, b)
    assert first["rows"] == len(a) == SPEC.days * SPEC.rows_per_day
    assert len(list((tmp_path / "a" / "labels").glob("*.parquet"))) == SPEC.days + 2  # arrival days 2..days+3
    pd.testing.assert_frame_equal(_load(tmp_path / "a", "labels"), _load(tmp_path / "b", "labels"))
    assert a[["income", "debt_ratio", "employment_type"]].isna().any().all()
    assert {"customer_id", "event_time", "region", "product"} <= set(a.columns)


def test_late_events_arrive_in_the_next_days_file(tmp_path):
    demo_data.generate(tmp_path, SPEC)
    second = pd.read_parquet(tmp_path / "raw" / f"events-{SPEC.start.replace(day=2).isoformat()}.parquet")
    days = second["event_time"].dt.date.value_counts()
    assert days[SPEC.start] > 0  # late rows of day 1
    assert days[SPEC.start.replace(day=2)] > days[SPEC.start]


def test_labels_arrive_one_to_three_days_after_their_events_in_files_dated_by_arrival(tmp_path):
    demo_data.generate(tmp_path, SPEC)
    events = _load(tmp_path, "raw").dropna(subset=["customer_id"]).drop_duplicates("customer_id")
    labels = _load(tmp_path, "labels")
    assert len(labels) == SPEC.days * SPEC.rows_per_day and labels["customer_id"].is_unique
    delay = labels.merge(events, on="customer_id").pipe(
        lambda f: (f["label_time"].dt.normalize() - f["event_time"].dt.normalize()).dt.days
    )
    assert sorted(delay.unique()) == [1, 2, 3]
    assert delay.value_counts(normalize=True).between(0.3, 0.37).all()  # uniform over the three delays
    for path in (tmp_path / "labels").glob("*.parquet"):  # a file holds the labels that arrived on its day
        arrived = pd.read_parquet(path)["label_time"].dt.date.unique()
        assert [d.isoformat() for d in arrived] == [path.stem.removeprefix("labels-")]


def test_drift_shifts_features_and_breaks_an_early_model(tmp_path):
    demo_data.generate(tmp_path, SPEC)
    events = _load(tmp_path, "raw").dropna(subset=["customer_id"]).drop_duplicates("customer_id")
    frame = events.merge(_load(tmp_path, "labels"), on="customer_id")
    frame = frame[np.isfinite(frame["credit_utilization"]) & (frame["age"] > 0)]
    drift_start = pd.Timestamp(SPEC.start, tz="UTC") + pd.Timedelta(days=SPEC.drift_day)
    before, after = frame[frame["event_time"] < drift_start], frame[frame["event_time"] >= drift_start]

    assert after["income"].median() < 0.85 * before["income"].median()
    assert after["credit_utilization"].mean() > before["credit_utilization"].mean() + 0.15

    x = pd.get_dummies(frame.drop(columns=["customer_id", "event_time", "defaulted", "label_time"]), dtype=float)
    train = before.index[: int(len(before) * 0.7)]
    holdout = before.index[int(len(before) * 0.7) :]
    model = HistGradientBoostingClassifier(max_iter=100).fit(x.loc[train], frame.loc[train, "defaulted"])
    auc_before = roc_auc_score(frame.loc[holdout, "defaulted"], model.predict_proba(x.loc[holdout])[:, 1])
    auc_after = roc_auc_score(after["defaulted"], model.predict_proba(x.loc[after.index])[:, 1])
    assert auc_before - auc_after > 0.08, (auc_before, auc_after)
