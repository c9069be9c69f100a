"""The registry's side of a promotion, on the in-memory registry: where the aliases point after a decision, one
champion under a registry failure, a decision taken once however often its task is retried, and the rollback; and,
on a real lake and MLflow store, a champion of other feature definitions judged on features of its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from pipelines import promotion
from pipelines.errors import RegistryError
from pipelines.promotion import apply_decision, evaluate_and_promote, promote, rollback, settle_challenger
from pipelines.promotion_record import Decision
from pipelines.registry import CHAMPION, RunKind, Tag, tracked_run
from pipelines.registry_memory import MemoryRegistry

DAY = date(2026, 10, 9)


def _registry(model: str, n: int, **aliases: str) -> MemoryRegistry:
    """``n`` registered versions of ``model`` and the given aliases."""
    store = MemoryRegistry()
    for i in range(n):
        with tracked_run(store, RunKind.TRAINING, f"train-{i}") as run_id:
            store.register_version(model, f"models:/m-{i}", run_id)
    for alias, version in aliases.items():
        store.set_alias(model, alias, version)
    return store


def _aliases(store: MemoryRegistry, model: str) -> dict[str, str]:
    return {alias: v.version for v in store.versions(model) for alias in v.aliases}


def _decision(model: str, promoted: bool, challenger: str = "2", champion: str = "1") -> Decision:
    return Decision(
        model, promoted, "gain 0.0300 >= 0.005, 95% interval [0.0100, 0.0500] above 0" if promoted else "too few rows",
        challenger, champion, challenger if promoted else champion, "roc_auc", 0.70, 0.73, 0.03,
        0.01 if promoted else None, 0.05 if promoted else None, 600, 0.005, 0.95, "2026-10-09..2026-10-09", "drift",
    )  # fmt: skip


@pytest.mark.unit
def test_the_challenger_alias_names_the_last_kept_challenger_and_never_the_champion():
    kept = _registry("m", 3, champion="1", challenger="3")
    settle_challenger(kept, "m", "2", challenger_holds=True)  # v2 evaluated (e.g. by hand) and kept out
    assert _aliases(kept, "m") == {"champion": "1", "challenger": "2"}
    promoted = _registry("m", 2, champion="2", previous_champion="1", challenger="2")
    settle_challenger(promoted, "m", "2", challenger_holds=False)
    assert _aliases(promoted, "m") == {"champion": "2", "previous_champion": "1"}
    same = _registry(
        "m", 2, champion="2", challenger="2"
    )  # "the challenger already is the champion": kept, yet removed
    settle_challenger(same, "m", "2", challenger_holds=True)
    assert _aliases(same, "m") == {"champion": "2"}


@pytest.mark.unit
def test_a_registry_failure_mid_promotion_leaves_one_champion_and_says_which():
    class Flaky(MemoryRegistry):
        def set_alias(self, name: str, alias: str, version: str) -> None:
            if alias == CHAMPION:
                raise ConnectionError("registry went away")
            super().set_alias(name, alias, version)

    store = Flaky()
    for i in range(2):
        with tracked_run(store, RunKind.TRAINING, f"train-{i}") as run_id:
            store.register_version("m", f"models:/m-{i}", run_id)
    MemoryRegistry.set_alias(store, "m", CHAMPION, "1")
    with pytest.raises(RegistryError, match=r"champion is still v1: registry went away"):
        promote(store, "m", "1", "2")
    assert [v.version for v in store.versions("m") if CHAMPION in v.aliases] == ["1"]


@pytest.mark.unit
def test_applying_a_decision_twice_changes_nothing_the_first_time_did(demo):
    name = demo.model.name
    store = _registry(name, 2, champion="1", challenger="2")
    with tracked_run(store, RunKind.PROMOTION, "promotion-2026-10-09-v2") as run_id:
        decision = replace(_decision(name, promoted=True), mlflow_run_id=run_id)
    apply_decision(store, demo, decision, DAY)
    apply_decision(store, demo, decision, DAY)  # a retry
    assert _aliases(store, name) == {"champion": "2", "previous_champion": "1"}
    version = store.version(name, "2")
    assert version.tags[Tag.decision("promoted")] == "True" and version.tags[Tag.DECISION_RUN_ID] == run_id
    assert version.description.startswith(f"**Promoted on {DAY}**: v2 replaced v1 as champion.")
    assert version.description.count(run_id) == 1  # described once, not once per try
    assert store.run(run_id).tags[Tag.APPLIED] == "true"
    undecided = _registry(name, 2, champion="1")
    record = undecided.start_run(RunKind.PROMOTION, "promotion-2026-10-09-v2")
    kept = replace(_decision(name, promoted=False, challenger="2", champion="1"), mlflow_run_id=record)
    apply_decision(undecided, demo, kept, DAY)
    assert _aliases(undecided, name) == {"champion": "1", "challenger": "2"}
    tags = undecided.version(name, "2").tags
    assert "decision.ci_low" not in tags and "decision.ci_high" not in tags  # undefined: no tag, never "nan"


@pytest.mark.unit
def test_a_retried_evaluation_finds_its_decision_and_does_not_judge_again(demo, monkeypatch):
    name = demo.model.name
    store = _registry(name, 2, champion="1", challenger="2")
    judged: list[str] = []

    def judge(config, registry, day, challenger_version, trigger):
        judged.append(challenger_version)
        return _decision(name, promoted=True, challenger=challenger_version)

    monkeypatch.setattr(promotion, "judge", judge)
    first = evaluate_and_promote(demo, DAY, "2", "drift", run_key="manual__1", registry=store)
    again = evaluate_and_promote(demo, DAY, "2", "drift", run_key="manual__1", registry=store)  # the retry
    assert judged == ["2"] and again == first and first.mlflow_run_id
    records = store.find_runs(RunKind.PROMOTION, **{Tag.DAY: DAY.isoformat()})
    assert [r.run_id for r in records] == [first.mlflow_run_id]
    assert store.record(first.mlflow_run_id, "decision.json")["mlflow_run_id"] == first.mlflow_run_id
    evaluate_and_promote(demo, DAY, "2", "drift", run_key="manual__2", registry=store)  # another Airflow run decides
    assert judged == ["2", "2"] and len(store.find_runs(RunKind.PROMOTION, **{Tag.DAY: DAY.isoformat()})) == 2


@pytest.mark.unit
def test_a_record_a_dying_try_left_unfinished_is_deleted_and_the_decision_taken_again(demo, monkeypatch):
    name = demo.model.name
    store = _registry(name, 2, champion="1", challenger="2")
    tags = {Tag.MODEL_NAME: name, Tag.DAY: DAY.isoformat(), Tag.CHALLENGER_VERSION: "2", Tag.AIRFLOW_RUN_ID: "r"}
    dead = store.start_run(RunKind.PROMOTION, "promotion-2026-10-09-v2", tags)  # the first try died here
    monkeypatch.setattr(promotion, "judge", lambda *args: _decision(name, promoted=False))
    decision = evaluate_and_promote(demo, DAY, "2", "drift", run_key="r", registry=store)
    assert decision.mlflow_run_id != dead
    assert [r.run_id for r in store.find_runs(RunKind.PROMOTION)] == [decision.mlflow_run_id]


@pytest.mark.unit
def test_rollback_swaps_the_two_champions_and_records_why(demo):
    name = demo.model.name
    store = _registry(name, 2, champion="2", previous_champion="1")
    back = rollback(demo, "v2 misbehaves", registry=store)
    assert (back.from_version, back.to_version) == ("2", "1")
    assert _aliases(store, name) == {"champion": "1", "previous_champion": "2"}
    run = store.run(back.mlflow_run_id)
    assert run.finished and run.tags.items() >= {"kind": "rollback", "from_version": "2", "to_version": "1"}.items()
    assert store.version(name, "2").tags[Tag.ROLLED_BACK] == "replaced by v1: v2 misbehaves"
    assert store.version(name, "1").tags[Tag.RESTORED] == "rollback from v2: v2 misbehaves"
    rollback(demo, "undo", registry=store)
    assert _aliases(store, name) == {"champion": "2", "previous_champion": "1"}
    with pytest.raises(RegistryError, match="has no 'previous_champion' alias"):
        rollback(demo, "nothing to go back to", registry=_registry(name, 1, champion="1"))


@pytest.mark.unit
def test_a_decision_records_its_segment_table_on_the_run_and_the_version(demo):
    from pipelines.promotion_record import record_decision

    name = demo.model.name
    store = _registry(name, 2, champion="1", challenger="2")
    north = {
        "segment": "region", "value": "north", "n": 600, "champion_metric": 0.71, "challenger_metric": 0.55,
        "gain": -0.16, "ci_low": -0.2, "ci_high": -0.12, "problem": "",
    }  # fmt: skip
    small = {**north, "value": "central", "n": 90, "gain": None, "ci_low": None, "ci_high": None, "problem": "few"}
    kept = replace(_decision(name, promoted=False), reason="worse on segment region=north", segments=[north, small])
    recorded = record_decision(store, demo, kept, DAY, "manual__1")
    run = store.run(recorded.mlflow_run_id)
    assert run.metrics["segment.region.north.gain"] == -0.16 and "segment.region.central.gain" not in run.metrics
    assert store.record(recorded.mlflow_run_id, "decision.json")["segments"] == [north, small]
    apply_decision(store, demo, recorded, DAY)
    description = store.version(name, "2").description
    assert "| region=north | 600 | 0.7100 | 0.5500 | -0.1600 | [-0.2000, -0.1200] |  |" in description
    assert "| region=central | 90 | 0.7100 | 0.5500 | undefined | - | few |" in description


@pytest.mark.integration
def test_a_champion_of_other_definitions_is_judged_on_features_of_its_own(tmp_path, raw_data):
    """A window renamed since the champion trained (late_count_30d -> late_count_60d): the current holdout lacks a
    column the champion needs, so it is scored on the same rows with features of its recorded definitions, which
    equal the ones extracted with its config; a table its definitions read no longer declared keeps the challenger
    out, saying why."""
    import yaml
    from lakes import START, declared_features, extract_and_train, write_config, write_payments

    from pipelines.config import load_config
    from pipelines.model_artifacts import load_model
    from pipelines.modeling import metric_value, model_input, model_output
    from pipelines.performance import holdout_days
    from pipelines.registry import connect
    from pipelines.training import labeled_window

    payments = write_payments(raw_data, tmp_path / "payments")
    path = write_config(
        tmp_path,
        raw_data,
        dataset=declared_features(payments),
        training={"window_days": 3},
        promotion={"bootstrap": 50},
    )
    config = load_config(path)
    extract_and_train(config, 6, START + timedelta(days=2))  # the champion, v1, on the definitions extracted
    raw = yaml.safe_load(path.read_text())
    raw["dataset"]["features"]["aggregates"][1]["windows"] = [60]  # a definition changed since: a renamed window
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(raw))
    changed = load_config(tmp_path / "changed.yaml")
    day = START + timedelta(days=8)  # every extracted day labeled
    registry = connect(changed)
    challenger = promotion.train_challenger(changed, day, "definitions changed", registry=registry)

    decision = promotion.judge(changed, registry, day, challenger, "test")
    held_out = holdout_days(config, day)
    span = config.training.model_copy(update={"window_days": (held_out[-1] - held_out[0]).days + 1, "min_rows": 1})
    extracted, _ = labeled_window(config.model_copy(update={"training": span}), held_out[-1], as_of=day)
    current, _ = labeled_window(changed.model_copy(update={"training": span}), held_out[-1], as_of=day)
    assert "late_count_30d" not in model_input(current, changed) and "late_count_60d" in model_input(current, changed)
    champion = load_model(registry.version(config.model.name, "1").ref, config.tracking_uri, "cpu", 1024)
    expected = metric_value(
        config.model.metric,
        extracted[config.dataset.target].to_numpy(),
        model_output(champion, model_input(extracted, config), config.task),
    )
    assert decision.champion_version == "1" and decision.n == len(current) == len(extracted)
    assert decision.champion_metric == pytest.approx(expected, abs=1e-12)
    assert decision.challenger_metric is not None and decision.difference is not None

    raw["dataset"]["history"]["paid"] = raw["dataset"]["history"].pop("payments")  # the champion's table renamed
    for aggregate in raw["dataset"]["features"]["aggregates"]:
        aggregate["table"] = "paid"
    (tmp_path / "renamed.yaml").write_text(yaml.safe_dump(raw))
    kept = promotion.judge(load_config(tmp_path / "renamed.yaml"), registry, day, challenger, "test")
    assert not kept.promoted and kept.champion_metric is None and kept.difference is None
    assert "not judged on the models' own features" in kept.reason and "['payments']" in kept.reason
