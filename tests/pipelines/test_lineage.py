from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from lakes import declared_features

from pipelines import lineage
from pipelines.config import Config
from pipelines.errors import DefinitionMismatch, RegistryError
from pipelines.registry import CHAMPION, RunKind, Tag, tracked_run
from pipelines.registry_memory import MemoryRegistry

pytestmark = pytest.mark.unit


@pytest.fixture
def declared(demo: Config) -> Config:
    """The demo config with a payments history and features declared over it."""
    overrides = declared_features(Path("/data/payments"))
    dataset = demo.dataset.model_validate({**demo.dataset.model_dump(), **overrides})
    return demo.model_copy(update={"dataset": dataset})


def _changed(config: Config, **history: object) -> Config:
    """``config`` with its payments table changed (``history``) or, given ``window``, its first aggregate's windows."""
    data = config.dataset.model_dump()
    if "window" in history:
        data["features"]["aggregates"][0]["windows"] = history.pop("window")
    data["history"]["payments"].update(history)
    return config.model_copy(update={"dataset": config.dataset.model_validate(data)})


def test_the_hash_is_stable_and_changes_with_every_definition_but_not_with_where_the_files_are(declared):
    current = lineage.definitions_hash(declared)
    assert len(current) == lineage.HASH_CHARS and current == lineage.definitions_hash(declared.model_copy())
    assert lineage.definitions_hash(_changed(declared, source="s3://bucket/payments/*.parquet")) == current
    changed = {
        "a window": _changed(declared, window=[7, 30, 90]),
        "a delay": _changed(declared, delay_hours=2),
        "an entity": _changed(declared, join_key="customer"),
    }
    data = declared.dataset.model_dump()
    data["features"]["aggregates"][1]["where"] = "days_late > 1"
    changed["a filter"] = declared.model_copy(update={"dataset": declared.dataset.model_validate(data)})
    data = declared.dataset.model_dump()
    used = {*data["checks"], *" ".join(data["features"]["derived"].values()).split()}
    data["features"]["numerical"].remove([c for c in data["features"]["numerical"] if c not in used][-1])
    changed["a raw feature"] = declared.model_copy(update={"dataset": declared.dataset.model_validate(data)})
    hashes = {what: lineage.definitions_hash(config) for what, config in changed.items()}
    assert current not in hashes.values() and len(set(hashes.values())) == len(hashes), hashes
    rendered = lineage.definitions(declared)
    assert rendered["features"] == declared.dataset.features.all
    assert rendered["history"]["payments"]["delay_hours"] == 1 and "source" not in rendered["history"]["payments"]


def _champion(recorded: str | None, name: str = "m") -> MemoryRegistry:
    store = MemoryRegistry()
    with tracked_run(store, RunKind.TRAINING, "train") as run_id:
        store.register_version(name, "models:/m-1", run_id)
    if recorded is not None:
        store.set_version_tag(name, "1", Tag.FEATURE_DEFINITIONS, recorded)
    store.set_alias(name, CHAMPION, "1")
    return store


def test_a_champion_is_scored_only_with_its_own_definitions(declared, caplog):
    current = lineage.definitions_hash(declared)
    store = _champion(current)
    champion = store.alias("m", CHAMPION)
    assert lineage.require_own_definitions(store, champion, declared) == current

    other = _changed(declared, window=[7, 30, 90])
    with pytest.raises(DefinitionMismatch) as refused:
        lineage.require_own_definitions(store, champion, other)
    message = str(refused.value)
    assert f"trained with feature definitions {current}" in message
    assert f"the config's definitions are {lineage.definitions_hash(other)}" in message
    assert "train a version on the current definitions and promote it" in message and "revert" in message
    assert isinstance(refused.value, RegistryError)  # not retried by the DAGs' retry policy

    untagged = _champion(None)  # trained before lineage was recorded: scored, with a warning
    with caplog.at_level(logging.WARNING, logger="pipelines.lineage"):
        assert lineage.require_own_definitions(untagged, untagged.alias("m", CHAMPION), other) == (
            lineage.definitions_hash(other)
        )
    assert "records no feature definitions" in caplog.text


def test_days_computed_with_other_definitions_are_recomputed_for_training_and_refused_for_scoring():
    days = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
    records = {days[0]: {lineage.DEFINITIONS: "aaaa"}, days[1]: {lineage.DEFINITIONS: "bbbb"}, days[2]: {}}
    assert lineage.stale_days(records, days, "aaaa") == [days[1], days[2]]  # no hash: computed before lineage
    lineage.require_days_computed_with(records, [days[0], days[2]], "aaaa")
    with pytest.raises(DefinitionMismatch, match=r"features of 2026-10-02 \(bbbb\) .* other than the champion's"):
        lineage.require_days_computed_with(records, days, "aaaa")
    merged = lineage.merged_history([{"p": {"a": "1", "b": "1"}}, {"p": {"b": "2"}, "q": {"c": "1"}}])
    assert merged == {"p": {"a": "1", "b": "2"}, "q": {"c": "1"}}
    assert lineage.files_hash(merged["p"]) == lineage.files_hash({"b": "2", "a": "1"}) != lineage.files_hash({})


def test_the_model_server_refuses_to_load_a_version_of_other_definitions(declared):
    from pipelines.serving.engine import load_version

    store = _champion(lineage.definitions_hash(_changed(declared, window=[7, 30, 90])), declared.model.name)
    with pytest.raises(DefinitionMismatch, match=rf"champion {declared.model.name} v1 was trained with"):
        load_version(declared, store, CHAMPION)  # refused before any artifact is loaded
