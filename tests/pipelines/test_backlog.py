"""A day's predictions are checked for drift once: which predictions a check saw, and whether they are still there."""

from __future__ import annotations

import pandas as pd
import pytest
from lakes import days, write_config

from pipelines.backlog import already_checked, check_predictions, predictions_written, unscored, unscored_in_window
from pipelines.config import load_config
from pipelines.errors import InvariantError
from pipelines.registry import RunKind, Tag, connect
from pipelines.registry_memory import MemoryRegistry
from pipelines.scoring import score_day
from pipelines.storage import Lake, Table

D1, D2, D3, D4 = days(4)


@pytest.mark.unit
def test_predictions_are_named_by_the_scoring_run_and_time_they_carry(tmp_path):
    config = load_config(write_config(tmp_path, tmp_path, mlflow_store=False))
    lake = Lake.from_config(config)
    scored_at = pd.Timestamp("2026-10-02 00:05:01.5", tz="UTC")
    lake.write(Table.PREDICTIONS, D1, pd.DataFrame({"run_id": ["manual__x"] * 3, "scored_at": [scored_at] * 3}))
    assert predictions_written(config, D1) == "manual__x 2026-10-02T00:05:01.500000+00:00"
    assert predictions_written(config, D2) is None  # never scored

    later = scored_at + pd.Timedelta(minutes=1)  # a cleared scoring run rerun: same run id, another write
    lake.write(Table.PREDICTIONS, D1, pd.DataFrame({"run_id": ["manual__x"], "scored_at": [later]}))
    assert predictions_written(config, D1) == "manual__x 2026-10-02T00:06:01.500000+00:00"

    mixed = pd.DataFrame({"run_id": ["a", "b"], "scored_at": [scored_at, scored_at]})
    lake.write(Table.PREDICTIONS, D2, mixed)
    with pytest.raises(InvariantError, match="from 2 scoring runs, not one"):
        predictions_written(config, D2)


def _predictions(config, day, run_id: str, scored_at: str) -> None:
    frame = pd.DataFrame({"run_id": [run_id] * 2, "scored_at": [pd.Timestamp(scored_at, tz="UTC")] * 2})
    Lake.from_config(config).write(Table.PREDICTIONS, day, frame)


@pytest.mark.unit
def test_a_day_is_due_until_a_drift_run_records_its_current_predictions(tmp_path):
    config = load_config(write_config(tmp_path, tmp_path, mlflow_store=False))
    store = MemoryRegistry()
    assert not already_checked(config, D1, store)  # nothing scored: nothing checked
    _predictions(config, D1, "score-1", "2026-10-02 00:05")
    assert not already_checked(config, D1, store)

    checked = {
        Tag.MODEL_NAME: config.model.name,
        Tag.DAY: D1.isoformat(),
        Tag.PREDICTIONS: "score-1 2026-10-02T00:05:00+00:00",
    }
    store.start_run(RunKind.DRIFT, "drift-2026-10-01", checked)
    assert already_checked(config, D1, store)
    store.start_run(RunKind.DRIFT, "drift-2026-10-02", {**checked, Tag.MODEL_NAME: "another_model"})
    _predictions(config, D2, "score-1", "2026-10-02 00:05")
    assert not already_checked(config, D2, store)  # another day's record (and another model's) does not count

    _predictions(config, D1, "score-2", "2026-10-09 00:05")  # rescored: new predictions, due again
    assert not already_checked(config, D1, store)


@pytest.mark.integration
def test_a_drift_check_records_the_predictions_it_checked(build_lake, dask_client):
    """Against a real MLflow store (its filter language, values with ':' and '+'): checked once, due again once
    rescored."""
    config = build_lake(4, D3, monitoring={"sample_rate": 1.0, "window_days": 1})
    score_day(config, D4, "score-1", dask_client)
    assert not already_checked(config, D4)

    checked = check_predictions(config, D4)
    assert checked.status == "checked" and already_checked(config, D4)
    (run,) = connect(config).find_runs(RunKind.DRIFT)
    assert run.run_id == checked.mlflow_run_id and run.tags[Tag.PREDICTIONS] == predictions_written(config, D4)

    score_day(config, D4, "score-2", dask_client)
    assert not already_checked(config, D4)


@pytest.mark.unit
def test_a_check_waits_for_the_earlier_days_of_its_window_that_are_extracted_and_not_scored(tmp_path):
    """A backfill's later day scored first must not be checked before the day before it is scored: it waits for
    extracted, unscored days inside its window, never for days before the first scored one (the first training
    window), nor for its run's own days or days after it."""
    d = days(8)
    assert unscored(d, {d[3], d[5]}, d[3], d[6], {d[6]}) == [d[4]]
    assert unscored(d, {d[3], d[4], d[5]}, d[3], d[6], {d[6]}) == []
    config = load_config(write_config(tmp_path, tmp_path, mlflow_store=False, monitoring={"window_days": 3}))
    lake = Lake.from_config(config)
    for day in d[:6]:
        lake.write(Table.FEATURES, day, pd.DataFrame({"k": [1]}))
    assert unscored_in_window(config, [d[5]]) == []  # nothing scored yet: nothing to wait for
    for day in (d[3], d[5]):
        lake.write(Table.PREDICTIONS, day, pd.DataFrame({"k": [1]}))
    assert unscored_in_window(config, [d[5]]) == [d[4]]  # d[1], d[2]: extracted, before the first scored day
    assert unscored_in_window(config, [d[3]]) == []
    assert unscored_in_window(config, [d[4], d[5]]) == []  # its own day
