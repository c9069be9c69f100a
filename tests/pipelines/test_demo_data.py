from __future__ import annotations

from datetime import timedelta
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
    assert {"customer_id", "account_id", "event_time", "region", "product"} <= set(a.columns)
    pd.testing.assert_frame_equal(_load(tmp_path / "a", "payments"), _load(tmp_path / "b", "payments"))


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

    raw = frame.drop(columns=["customer_id", "account_id", "event_time", "defaulted", "label_time"])
    x = pd.get_dummies(raw, dtype=float)
    train = before.index[: int(len(before) * 0.7)]
    holdout = before.index[int(len(before) * 0.7) :]
    model = HistGradientBoostingClassifier(max_iter=100).fit(x.loc[train], frame.loc[train, "defaulted"])
    auc_before = roc_auc_score(frame.loc[holdout, "defaulted"], model.predict_proba(x.loc[holdout])[:, 1])
    auc_after = roc_auc_score(after["defaulted"], model.predict_proba(x.loc[after.index])[:, 1])
    assert auc_before - auc_after > 0.08, (auc_before, auc_after)


def test_accounts_recur_pay_a_history_and_some_are_new(tmp_path):
    counts = demo_data.generate(tmp_path, SPEC)
    events = _load(tmp_path, "raw").dropna(subset=["customer_id"])
    payments = _load(tmp_path, "payments")
    assert counts["payments"] == len(payments)
    files = sorted(p.stem.removeprefix("payments-") for p in (tmp_path / "payments").glob("*.parquet"))
    first = SPEC.start - timedelta(days=SPEC.history_days)
    assert files[0] == first.isoformat() and files[-1] == (SPEC.start + timedelta(days=SPEC.days - 1)).isoformat()
    for path in (tmp_path / "payments").glob("*.parquet"):  # a file holds the payments made on its day
        paid = pd.read_parquet(path)["paid_at"].dt.date.unique()
        assert [d.isoformat() for d in paid] == [path.stem.removeprefix("payments-")]
    days_seen = events.groupby("account_id")["event_time"].agg(lambda t: t.dt.date.nunique())
    assert (days_seen > 1).mean() > 0.5  # most accounts come back on other days
    new = events["account_id"].str.startswith("N")
    assert new.mean() == pytest.approx(SPEC.new_account_share, abs=0.02)
    assert not payments["account_id"].isin(events.loc[new, "account_id"]).any()  # new accounts have no history
    assert events.loc[~new, "account_id"].isin(payments["account_id"]).all()
    assert 0.03 < (payments["days_late"] > 0).mean() < 0.3  # a few late payments
    drift_start = pd.Timestamp(SPEC.start, tz="UTC") + pd.Timedelta(days=SPEC.drift_day)
    late = (payments["days_late"] > 0).groupby(payments["paid_at"] >= drift_start).mean()
    assert late[True] > 1.8 * late[False]  # payments turn later with the drift


def test_the_demo_configs_declared_features_carry_the_default_risk(tmp_path):
    """The demo's aggregates over the payments, computed by the pipeline (point in time): rows of accounts with late
    payments default more often; rows of new accounts get the declared defaults."""
    from lakes import write_config

    from pipelines.aggregates import add_declared
    from pipelines.config import load_config

    demo_data.generate(tmp_path, SPEC)
    config = load_config(write_config(tmp_path, tmp_path, mlflow_store=False, declared=True))
    features = config.dataset.features
    assert len(features.aggregated) >= 4 and features.derived
    events = _load(tmp_path, "raw").dropna(subset=["customer_id"]).drop_duplicates("customer_id")
    first_days = events["event_time"] < pd.Timestamp(SPEC.start, tz="UTC") + pd.Timedelta(days=5)
    frame = add_declared(config, events[first_days])
    frame = frame.merge(_load(tmp_path, "labels"), on="customer_id")
    new = frame["account_id"].str.startswith("N")
    assert (frame.loc[new, ["late_count_90d", "paid_sum_90d"]] == 0).all().all()
    assert frame.loc[new, "paid_mean_90d"].isna().all() and frame.loc[~new, "paid_mean_90d"].notna().mean() > 0.95
    late = frame.loc[~new, "late_count_90d"] > 0
    rate = frame.loc[~new, "defaulted"].groupby(late).mean()
    assert rate[True] > rate[False] + 0.1, rate
    assert frame.loc[new, "defaulted"].mean() > frame.loc[~new & ~late, "defaulted"].mean()
