"""Low-volume models: the performance table's metric over a trailing window of days (``monitoring.metric_window_days``)
where each day alone has too few labeled rows, with the minimum sample stated, and the metric-drop trigger reading it.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from lakes import START, labeled_champion, with_section

from pipelines import performance
from pipelines.monitoring import DriftResult
from pipelines.performance_window import rows_due, window_changed, window_of
from pipelines.registry import RunKind
from pipelines.retrain_gate import with_labeled_realized
from pipelines.retrain_rules import retrain_signals
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.unit

D = [START + timedelta(days=i) for i in range(10)]
ROWS_A_DAY = 24


def test_a_window_holds_the_scored_days_ending_on_its_day():
    scored = [D[0], D[1], D[3], D[4], D[5]]  # D[2] was not scored
    assert window_of(D[4], scored, 3) == [D[3], D[4]]
    assert window_of(D[4], scored, 7) == [D[0], D[1], D[3], D[4]]
    assert window_of(D[4], scored, 1) == [D[4]]


def test_new_labels_of_a_day_make_the_rows_whose_window_holds_it_due_but_never_newer_knowledge():
    stored = {D[3]: {"labels_as_of": D[3].isoformat()}, D[4]: {"labels_as_of": D[9].isoformat()}}
    assert rows_due([D[1]], D[:6], stored, D[5], 3) == [D[1], D[2], D[3]]  # D[4]'s row is from a later run
    assert rows_due([D[1]], D[:6], stored, D[5], 1) == [D[1]]  # a one-day window: the day alone
    assert window_changed(None, 10, 3)
    assert window_changed({"window_scored_rows": float("nan"), "window_labeled_rows": 3}, 10, 3)  # an older row
    assert not window_changed({"window_scored_rows": 10, "window_labeled_rows": 3}, 10, 3)
    assert window_changed({"window_scored_rows": 10, "window_labeled_rows": 3}, 10, 4)


def _low_volume(config, tmp_path, n_days: int):
    """``n_days`` scored days of 24 rows, every label known: the model's scores carry no signal (its realized AUC
    is ~0.5), and a champion v1 whose calibration says its scores are informative (trained at AUC ~0.8)."""
    rng = np.random.default_rng(3)
    lake, labels = Lake.from_config(config), []
    for day in D[:n_days]:
        keys = [f"K{day:%m%d}{i:03d}" for i in range(ROWS_A_DAY)]
        predictions = pd.DataFrame({"customer_id": keys, "probability": rng.random(ROWS_A_DAY), "model_version": "1"})
        lake.write(Table.PREDICTIONS, day, predictions)
        labels.append(pd.DataFrame({"customer_id": keys, "defaulted": rng.integers(0, 2, ROWS_A_DAY)}))
    return labeled_champion(config, tmp_path, labels, rng, lift=0.35)


@pytest.mark.parametrize("window_days", [1, 7])
def test_a_low_volume_models_window_has_a_metric_where_its_days_have_none_and_the_trigger_fires(
    config, tmp_path, window_days
):
    config, registry = _low_volume(config, tmp_path, 8)
    config = with_section(config, "monitoring", metric_window_days=window_days, metric_drop_threshold=0.1)
    written = performance.update_performance(config, D[7], registry)
    rows = performance.read_performance(config).set_index("date")
    assert len(written) == len(rows) == 8
    assert rows["value"].isna().all()  # 24 labeled rows a day; monitoring.min_rows is 100
    assert (rows["window_days"] == window_days).all() and (rows["window_min_rows"] == 100).all()

    drift = DriftResult(
        day=D[7].isoformat(), status="checked", reason="", model_version="1", drift_share=0.0, champion_metric=0.8
    )
    fed = with_labeled_realized(config, drift, "1")
    [metric_line] = [s for s in retrain_signals(config, fed) if s.line.startswith("realized")]
    if window_days == 1:  # today's behaviour: every day's metric NaN, so the trigger can never fire
        assert rows["window_value"].isna().all() and rows["window_below_min"].all()
        assert fed.realized_metric is None and not metric_line.fired
        return
    window = rows.loc[D[7].isoformat()]
    assert window["window_first"] == D[1].isoformat() and window["window_labeled_rows"] == 7 * ROWS_A_DAY
    assert (
        not window["window_below_min"] and window["window_ci_low"] < window["window_value"] < window["window_ci_high"]
    )
    assert window["window_estimated_ci_low"] < window["window_estimated_value"] < window["window_estimated_ci_high"]
    assert window["window_estimated_value"] > 0.7  # the calibration believes in the scores: CBPE cannot tell
    early = rows.loc[D[2].isoformat()]  # three days of 24 rows: still under the minimum sample, and said so
    assert early["window_labeled_rows"] == 72 and early["window_below_min"] and np.isnan(early["window_value"])
    assert early["window_note"] == "72 labeled rows; monitoring.min_rows is 100"
    assert fed.realized_metric == pytest.approx(window["window_value"]) and fed.realized_rows == 168
    assert fed.estimated_metric == pytest.approx(window["window_estimated_value"])  # the estimated-drop trigger's
    assert metric_line.fired, metric_line
    assert metric_line.line.startswith(f"realized roc_auc over the 7 days to {D[7]} ")

    # a second update as of the same day: no label changed, no row rewritten; the day's run charts the window
    assert performance.update_performance(config, D[7], registry) == []
    [run] = registry.find_runs(RunKind.PERFORMANCE, day=D[7].isoformat(), model_name=config.model.name)
    assert run.metrics["window_realized_roc_auc"] == pytest.approx(window["window_value"])


def test_a_rerun_of_an_earlier_day_keeps_rows_of_newer_labels(config, tmp_path):
    config, registry = _low_volume(config, tmp_path, 4)
    config = with_section(config, "monitoring", metric_window_days=3)
    performance.update_performance(config, D[3], registry)
    before = performance.read_performance(config)
    assert performance.update_performance(config, D[2], registry) == []  # D[0..2] are complete; D[3] is newer
    assert performance.read_performance(config)["computed_at"].tolist() == before["computed_at"].tolist()


def test_an_update_returns_the_horizons_rows_as_reading_them_back_gives(config, tmp_path):
    """The day's decision takes the horizon's rows from the update rather than reading the table again: they equal
    what reading it back gives, a rewritten day's row replaced, and the decision's inputs come out the same."""
    config, registry = _low_volume(config, tmp_path, 5)
    config = with_section(config, "monitoring", metric_window_days=3)
    performance.update_performance(config, D[3], registry)
    lake = Lake.from_config(config)
    rescored = lake.read(Table.PREDICTIONS, D[2]).iloc[1:]
    lake.write(Table.PREDICTIONS, D[2], rescored)  # a row fewer: its row is rewritten
    written, horizon = performance.update_recent_performance(config, D[4], registry)
    assert {row.date for row in written} >= {D[2].isoformat(), D[4].isoformat()}
    back = performance.recent_performance(config, D[4])
    pd.testing.assert_frame_equal(horizon.rows[back.columns], back, check_dtype=False)
    assert horizon.version == lake.version(Table.PERFORMANCE)  # its own commit the only one since its read
    drift = DriftResult(day=D[4].isoformat(), status="checked", reason="", model_version="1")
    assert with_labeled_realized(config, drift, "1", horizon.rows) == with_labeled_realized(config, drift, "1")


def test_a_days_update_starts_from_the_rows_the_day_before_left_while_no_one_else_wrote(config, tmp_path, monkeypatch):
    """A run of days updates day after day: each starts from the horizon the day before left, reading only the new
    horizon's days the table holds, and exactly what reading the table gives; another commit since, and it reads the
    horizon whole."""
    config, registry = _low_volume(config, tmp_path, 6)
    _, before = performance.update_recent_performance(config, D[3], registry)
    lake = Lake.from_config(config)
    lake.write(Table.PREDICTIONS, D[4], lake.read(Table.PREDICTIONS, D[4]))  # scored again: D[4] is due
    read, real = [], performance.read_performance
    monkeypatch.setattr(performance, "read_performance", lambda c, days, *a: read.append(days) or real(c, days, *a))

    written, after = performance.update_recent_performance(config, D[4], registry, before)
    assert read == [] and {row.date for row in written} == {D[4].isoformat()}  # D[4] had no row: nothing read
    back = real(config, performance.horizon_days(config, D[4]))
    pd.testing.assert_frame_equal(after.rows[back.columns], back, check_dtype=False)

    other = back[back["date"].astype(str) == D[0].isoformat()].assign(note="another writer")
    lake.write(Table.PERFORMANCE, D[0], other.drop(columns=["date"]))
    again = performance.recent_horizon(config, D[5], after)
    assert len(read) == 1 and again.version == lake.version(Table.PERFORMANCE)  # read whole, at the new version
    assert again.rows.set_index("date").loc[D[0].isoformat(), "note"] == "another writer"
