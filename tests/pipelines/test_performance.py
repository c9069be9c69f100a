"""Delayed ground truth: labels seen as of a day, the performance table's rules, the trigger day and the holdout."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from lakes import START, days

from pipelines import performance
from pipelines.errors import DataError
from pipelines.features import extract_features
from pipelines.monitoring import DriftResult
from pipelines.retrain_gate import with_labeled_realized
from pipelines.storage import Lake, Table
from pipelines.training import known_by, read_labels

pytestmark = pytest.mark.unit

D = [START + timedelta(days=i) for i in range(10)]


def _row(day: date, labeled: int, as_of: date, version: str = "1", scored: int = 100, **extra) -> dict:
    return {
        "date": day.isoformat(),
        "model_version": version,
        "scored_rows": scored,
        "labeled_rows": labeled,
        "label_share": labeled / scored,
        "value": extra.get("value", 0.7),
        "labels_as_of": as_of.isoformat(),
        "computed_at": extra.get("computed_at", 1000.0),
    }


# --- labels as of a day -------------------------------------------------------------------------------------------


def test_known_by_keeps_labels_arrived_before_the_end_of_the_day(config):
    labels = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "defaulted": [0, 1, 0, 1],
            "label_time": ["2026-10-02T23:59:59Z", "2026-10-03T00:00:00Z", None, "2026-10-01T08:00:00Z"],
        }
    )
    assert known_by(config, labels, date(2026, 10, 2))["customer_id"].tolist() == ["a", "c", "d"]
    assert known_by(config, labels, None)["customer_id"].tolist() == ["a", "b", "c", "d"]
    untimed = config.model_copy(update={"dataset": config.dataset.model_copy(update={"label_time": None})})
    assert known_by(untimed, labels, date(2026, 10, 1))["customer_id"].tolist() == ["a", "b", "c", "d"]


def test_read_labels_as_of_a_day_sees_only_the_labels_arrived_by_then(config):
    extract_features(config, D[1])
    keys = pd.read_parquet(f"{config.storage.root}/features/date={D[1]}")["customer_id"]
    arrived = {age: len(read_labels(config, keys, as_of=D[1] + timedelta(days=age))) / len(keys) for age in range(5)}
    assert arrived[0] == 0.0 and arrived[3] == arrived[4] == 1.0  # none on the day, all three days later
    assert 0.25 < arrived[1] < 0.42 and 0.58 < arrived[2] < 0.75
    assert len(read_labels(config, keys)) == len(keys)  # no as_of: every label, as before


# --- the performance table's rules --------------------------------------------------------------------------------


def test_evaluate_day_gives_the_metric_with_an_interval_on_the_labeled_rows_only(config):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    predictions = pd.DataFrame(
        {"customer_id": [f"k{i}" for i in range(400)], "probability": y * 0.3 + rng.random(400) * 0.7}
    ).assign(model_version="3")
    labels = pd.DataFrame({"customer_id": [f"k{i}" for i in range(300)], "defaulted": y[:300]})
    row = performance.evaluate_day(config, D[2], predictions, labels, D[4])
    from sklearn.metrics import roc_auc_score

    assert (row.scored_rows, row.labeled_rows, row.label_share, row.model_version) == (400, 300, 0.75, "3")
    assert row.value == pytest.approx(roc_auc_score(y[:300], predictions["probability"][:300]))
    assert row.ci_low < row.value < row.ci_high and row.ci_high - row.ci_low < 0.15
    assert (row.date, row.labels_as_of, row.note) == ("2026-10-03", "2026-10-05", "")

    early = performance.evaluate_day(config, D[2], predictions, labels.head(40), D[2])
    assert early.labeled_rows == 40 and np.isnan(early.value) and np.isnan(early.ci_low)
    assert early.note == "40 labeled rows; monitoring.min_rows is 100"


def test_days_to_revisit_new_incomplete_and_rescored_days_but_never_newer_knowledge():
    stored = {
        D[0]: _row(D[0], 100, D[3]),  # complete, not rescored: final
        D[1]: _row(D[1], 100, D[3]),  # complete, but rescored after it was computed
        D[2]: _row(D[2], 60, D[3]),  # labels still missing
        D[3]: _row(D[3], 0, D[6]),  # computed as of a later day: this run is a rerun of an earlier one
    }
    scored_at = {D[0]: 900.0, D[1]: 1100.0, D[2]: 900.0, D[3]: 900.0, D[4]: 900.0}
    assert performance.days_to_revisit(scored_at, stored, D[4]) == [D[1], D[2], D[4]]
    assert performance.in_horizon(D, D[5], 3) == [D[3], D[4], D[5]]


def test_a_row_is_rewritten_only_when_its_labels_or_scoring_changed():
    row = _row(D[1], 60, D[3])
    assert not performance.labels_changed(row, 100, 60, "1")
    assert performance.labels_changed(row, 100, 61, "1")
    assert performance.labels_changed(row, 100, 60, "2")
    assert performance.labels_changed(None, 100, 0, "1")


def test_a_days_run_is_reopened_as_labels_arrive_with_one_step_per_update():
    """One ``performance-D`` run per scored day, started at D's midnight; each update logs at step = days since D
    and leaves out what is not known yet (NaN), so the MLflow UI charts a day filling in."""
    from pipelines.registry import RunKind, Tag
    from pipelines.registry_memory import MemoryRegistry

    store = MemoryRegistry()
    nan = float("nan")

    def row(labeled: int, as_of: date, value: float) -> performance.DayPerformance:
        return performance.DayPerformance(
            D[2].isoformat(), "m", "1", 100, labeled, labeled / 100, "roc_auc", value, nan, nan, as_of.isoformat(), 0.0
        )

    first = performance.log_performance(store, row(0, D[2], nan))
    again = performance.log_performance(store, row(70, D[4], 0.71))
    assert first == again
    [run] = store.find_runs(RunKind.PERFORMANCE, **{Tag.DAY: D[2].isoformat(), Tag.MODEL_NAME: "m"})
    assert run.name == f"performance-{D[2]}" and run.finished and run.tags[Tag.LABELS_AS_OF] == D[4].isoformat()
    assert run.start_time == performance._day_ms(D[2])
    assert [(p.step, p.value) for p in store.metric_history(run.run_id, "label_share")] == [(0, 0.0), (2, 0.7)]
    assert [(p.step, p.value) for p in store.metric_history(run.run_id, "realized_roc_auc")] == [(2, 0.71)]
    assert "realized_roc_auc_ci_low" not in run.metrics  # never computable here: never logged as NaN


# --- what the retrain trigger and the holdout may use -------------------------------------------------------------


def test_trigger_day_is_the_newest_labeled_day_the_champion_scored():
    rows = pd.DataFrame(
        [
            _row(D[3], 100, D[8], value=0.72),
            _row(D[5], 70, D[8], value=0.61),  # newest labeled day of v1
            _row(D[6], 90, D[8], version="2", value=0.8),  # scored by another version
            _row(D[7], 33, D[8], value=0.4),  # a third of its labels: not yet labeled
            _row(D[8], 0, D[8], value=float("nan")),  # just scored: no labels
        ]
    )
    assert performance.trigger_day(rows, "1", 0.5, D[8])["date"] == D[5].isoformat()
    assert performance.trigger_day(rows, "1", 0.2, D[8])["date"] == D[7].isoformat()
    assert performance.trigger_day(rows, "1", 0.2, D[6])["date"] == D[5].isoformat()  # not a day after the decision
    assert performance.trigger_day(rows, "2", 0.5, D[8])["value"] == 0.8
    assert performance.trigger_day(rows, "3", 0.5, D[8]) is None
    assert performance.trigger_day(pd.DataFrame(), "1", 0.5, D[8]) is None


def test_retrain_trigger_uses_the_labeled_days_realized_metric_not_the_checked_days(config):
    drift = DriftResult(day=D[8].isoformat(), status="checked", reason="", model_version="1", realized_metric=0.2)
    assert with_labeled_realized(config, drift, "1").realized_metric is None  # no labeled day yet: no metric signal
    lake = Lake.from_config(config)
    for row in (_row(D[5], 70, D[8], value=0.61), _row(D[8], 0, D[8], value=float("nan"))):
        lake.write(Table.PERFORMANCE, date.fromisoformat(row["date"]), pd.DataFrame([row]))
    fed = with_labeled_realized(config, drift, "1")
    assert (fed.realized_metric, fed.realized_rows, fed.realized_day) == (0.61, 70, D[5].isoformat())


def test_a_days_update_and_decision_read_only_the_label_horizon_of_the_table(config):
    """Flat in history: the rows of days older than ``monitoring.label_horizon_days`` are neither read nor asked."""
    config = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"label_horizon_days": 3})})
    lake = Lake.from_config(config)
    for day in D[:6]:
        lake.write(Table.PERFORMANCE, day, pd.DataFrame([_row(day, 100, day + timedelta(days=3))]))
    assert performance.recent_performance(config, D[6])["date"].astype(str).tolist() == [d.isoformat() for d in D[4:6]]
    drift = DriftResult(day=D[9].isoformat(), status="checked", reason="", model_version="1")
    assert with_labeled_realized(config, drift, "1").realized_day is None  # D[5] is beyond the horizon of D[9]


def test_newest_labeled_days():
    shares = {D[3]: 1.0, D[4]: 1.0, D[5]: 0.66, D[6]: 0.33, D[7]: 0.0}
    assert performance.newest_labeled_days(shares, 1, 0.5) == [D[5]]
    assert performance.newest_labeled_days(shares, 2, 0.9) == [D[3], D[4]]
    assert performance.newest_labeled_days(shares, 1, 0.99) == [D[4]]
    assert performance.newest_labeled_days({D[7]: 0.0}, 1, 0.5) == []


def test_holdout_is_the_newest_days_labeled_by_the_run_day_and_refused_without_one(config):
    for day in days(5):
        extract_features(config, day)
    assert performance.holdout_days(config, D[4]) == [D[2]]  # demo config: half of a day's labels (2 days later)
    strict = config.model_copy(
        update={
            "monitoring": config.monitoring.model_copy(update={"min_label_share": 1.0}),
            "promotion": config.promotion.model_copy(update={"holdout_days": 2}),
        }
    )
    assert performance.holdout_days(strict, D[4]) == [D[0], D[1]]
    with pytest.raises(DataError, match=r"no promotion holdout: no extracted day up to 2026-10-02 has") as error:
        performance.holdout_days(strict, D[1])
    assert "(newest days: 2026-10-02: 0%, 2026-10-01: 34%)" in str(error.value)


def test_the_estimate_weighed_is_the_checked_days_of_the_champions_scores():
    rows = pd.DataFrame(
        [
            {**_row(D[5], 0, D[5]), "estimated_value": 0.66},
            {**_row(D[6], 0, D[6], version="2"), "estimated_value": 0.7},  # another version scored it
            {**_row(D[7], 0, D[7]), "estimated_value": float("nan")},  # no estimate
        ]
    )
    assert performance.estimated_on(rows, "1", D[5]) == 0.66
    assert performance.estimated_on(rows, "1", D[6]) is None
    assert performance.estimated_on(rows, "1", D[7]) is None
    assert performance.estimated_on(rows.drop(columns="estimated_value"), "1", D[5]) is None
