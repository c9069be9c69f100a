"""The retraining gate's registry side, on the in-memory registry: where a decision is recorded, one run per skipped
day however often it is decided again, and the cooldown read from the registered model."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from pipelines.monitoring import DriftResult
from pipelines.registry import CHAMPION, RunKind, Tag
from pipelines.registry_memory import MemoryRegistry
from pipelines.retrain_gate import _labels_since_champion, decide_retraining, retrain_reason
from pipelines.storage import Lake, Table
from pipelines.training import read_labels
from tests.lakes import START

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 9)


def test_a_skipped_day_keeps_one_decision_run_however_often_it_is_decided(config):
    store = MemoryRegistry()
    skipped = DriftResult(day=DAY.isoformat(), status="skipped", reason="0 logged rows", model_version="1")
    first = decide_retraining(config, skipped, registry=store)
    again = decide_retraining(config, skipped, registry=store)  # a retry or a rerun of the day
    assert first == again and first["retrain"] is False and first["experiment_id"] == store.experiment_id
    [run] = store.find_runs(RunKind.RETRAIN_DECISION, **{Tag.DAY: DAY.isoformat(), Tag.MODEL_NAME: config.model.name})
    assert run.run_id == first["mlflow_run_id"] and run.finished
    assert (run.tags[Tag.DECISION], run.tags[Tag.DECISION_REASON]) == ("no retrain", "no drift check: 0 logged rows")
    assert run.tags[Tag.NOTE].startswith(f"**Retraining decision for {DAY}: no retrain** ({config.model.name} v1)")


def test_a_checked_day_is_decided_on_its_own_drift_run_and_a_forced_skipped_day_retrains(config):
    store = MemoryRegistry()
    run = store.start_run(RunKind.DRIFT, "drift-2026-10-09")
    checked = DriftResult(day="2026-10-09", status="checked", reason="", model_version="1", drift_share=0.0)
    decision = decide_retraining(config, replace(checked, mlflow_run_id=run), registry=store)
    assert decision["date"] == "2026-10-09" and decision["mlflow_run_id"] == run and decision["retrain"] is False
    assert store.run(run).tags[Tag.DECISION] == "no retrain" and decision["reason"].startswith("no trigger: ")
    skipped = DriftResult(day="2026-10-10", status="skipped", reason="0 logged rows", model_version="1")
    forced = decide_retraining(config, skipped, force=True, registry=store)
    assert (forced["retrain"], forced["reason"]) == (True, "forced")
    [own] = store.find_runs(RunKind.RETRAIN_DECISION, **{Tag.DAY: "2026-10-10"})
    assert own.tags[Tag.DECISION] == "retrain"


def test_the_cooldown_is_read_from_the_registered_models_last_retraining(config):
    store = MemoryRegistry()
    with_run = store.start_run(RunKind.TRAINING, "train")
    store.register_version(config.model.name, "models:/m-1", with_run)
    drifted = DriftResult(day=DAY.isoformat(), status="checked", reason="", model_version="1", drift_share=0.9)
    store.set_model_tag(config.model.name, Tag.LAST_RETRAIN, (DAY - timedelta(days=1)).isoformat())
    refused = retrain_reason(config, drifted, DAY, registry=store)
    assert not refused.retrain and refused.reason.startswith(f"cooldown: last retraining {DAY - timedelta(days=1)}")


def test_a_retraining_started_by_an_earlier_days_check_holds_the_next_days_back(config):
    """Under the scheduler a catch-up's drift runs follow each other before the retraining the first one started has
    run (and set the model's last-retraining tag): the earlier day's recorded decision counts for the cooldown."""
    store = MemoryRegistry()
    store.register_version(config.model.name, "models:/m-1", store.start_run(RunKind.TRAINING, "train"))
    store.set_alias(config.model.name, CHAMPION, "1")
    drifted = DriftResult(day=DAY.isoformat(), status="checked", reason="", model_version="1", drift_share=0.9)
    earlier = store.start_run(RunKind.DRIFT, "drift-earlier")
    store.set_tags(
        earlier,
        {Tag.DAY: (DAY - timedelta(days=1)).isoformat(), Tag.MODEL_NAME: config.model.name, Tag.DECISION: "retrain"},
    )
    same_day = store.start_run(RunKind.DRIFT, "drift-same-day")  # a rerun of the day: its own decision does not count
    store.set_tags(same_day, {Tag.DAY: DAY.isoformat(), Tag.MODEL_NAME: config.model.name, Tag.DECISION: "retrain"})
    refused = retrain_reason(config, drifted, DAY, registry=store)
    assert not refused.retrain and refused.reason.startswith(f"cooldown: last retraining {DAY - timedelta(days=1)}")
    later = DAY + timedelta(days=config.monitoring.cooldown_days)  # past the cooldown of the same-day decision too
    assert not retrain_reason(config, replace(drifted, day=later.isoformat()), later, registry=store).reason.startswith(
        "cooldown"
    )


def test_new_labels_are_counted_newest_days_first_only_until_the_minimum_is_reached(build_lake):
    """The rule asks for at least ``min_new_labels``: below it the count is exact (the refusal names it), and once it
    is reached the older days are not read (a champion months old held millions of rows to count)."""
    lake_config = build_lake(8)
    store = MemoryRegistry()
    store.register_version(lake_config.model.name, "models:/m-1", store.start_run(RunKind.TRAINING, "train"))
    store.set_alias(lake_config.model.name, CHAMPION, "1")
    store.set_version_tag(lake_config.model.name, "1", Tag.WINDOW_END, START.isoformat())
    day = START + timedelta(days=7)
    days = [START + timedelta(days=i) for i in range(1, 8)]
    keys = Lake.from_config(lake_config).read_days(Table.FEATURES, days, [lake_config.dataset.key])
    wanted = keys[lake_config.dataset.key].astype(str)
    every = int(wanted.isin(read_labels(lake_config, wanted, as_of=day)[lake_config.dataset.key]).sum())

    def counted(minimum: int) -> int:
        monitoring = lake_config.monitoring.model_copy(update={"min_new_labels": minimum})
        return _labels_since_champion(lake_config.model_copy(update={"monitoring": monitoring}), store, day)

    assert counted(every + 1) == every > 0  # short of the minimum: every day counted
    assert 1 <= counted(1) < every  # the minimum reached on the newest days: the older ones never read
