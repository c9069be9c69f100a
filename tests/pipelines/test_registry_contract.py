"""One contract for every :class:`pipelines.registry.Registry`: the in-memory one the unit tests use, a SQLite MLflow
store, and an ``mlflow server`` reached over HTTP, so the fake cannot drift from the real thing.

Each test gets a fresh store (the server: a fresh experiment and model name in one server per module).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.errors import RegistryError
from pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Registry,
    RunKind,
    Tag,
    alert_once,
    crown_if_vacant,
    require_alias,
    tracked_run,
)

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.unit),
    pytest.param("sqlite", marks=pytest.mark.integration),
    pytest.param("server", marks=pytest.mark.integration),
]
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``mlflow server`` for the module's server cases (started on first use: 10-15 s on 2 cores)."""
    from integration.services import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    experiment = f"contract-{next(_names)}"
    if request.param == "memory":
        from pipelines.registry_memory import MemoryRegistry

        return MemoryRegistry()
    from pipelines.registry_mlflow import MlflowRegistry

    if request.param == "sqlite":
        from lakes import mlflow_store_in

        return MlflowRegistry(mlflow_store_in(tmp_path), experiment)
    return MlflowRegistry(request.getfixturevalue("server"), experiment)


@pytest.fixture
def model() -> str:
    """A model name of the test's own (the server's registry is shared by the module)."""
    return f"contract_model_{next(_names)}"


def _versions(store: Registry, model: str, n: int) -> list[str]:
    """``n`` registered versions, each from a run of its own."""
    registered = []
    for i in range(n):
        with tracked_run(store, RunKind.TRAINING, f"train-{i}") as run_id:
            registered.append(store.register_version(model, f"s3://models/source-{i}", run_id))
    return registered


def test_aliases_resolve_move_and_delete(store, model):
    assert store.alias(model, CHAMPION) is None  # no model yet
    v1, v2 = _versions(store, model, 2)
    assert (v1, v2) == ("1", "2")
    assert store.alias(model, CHAMPION) is None  # a model without the alias
    with pytest.raises(RegistryError, match="has no 'champion' alias; run the model_training DAG"):
        require_alias(store, model)
    assert crown_if_vacant(store, model, v1) == v1 and crown_if_vacant(store, model, v2) == v1
    champion = require_alias(store, model)
    assert (champion.name, champion.version, champion.flavor) == (model, v1, None)
    assert champion.run_id == store.version(model, v1).run_id
    store.set_alias(model, PREVIOUS, v1)
    store.set_alias(model, CHAMPION, v2)  # moves: an alias names one version at a time
    assert [(v.version, v.aliases) for v in store.versions(model)] == [(v1, (PREVIOUS,)), (v2, (CHAMPION,))]
    assert store.version(model, v2).aliases == (CHAMPION,)
    store.set_alias(model, CHALLENGER, v2)
    assert store.version(model, v2).aliases == (CHALLENGER, CHAMPION)
    store.delete_alias(model, CHALLENGER)
    store.delete_alias(model, CHALLENGER)  # deleting an absent alias is no error
    assert store.alias(model, CHALLENGER) is None and store.alias(model, CHAMPION).version == v2
    with pytest.raises(RegistryError):
        store.set_alias(model, CHAMPION, "9")  # no such version: the alias stays where it was
    assert store.alias(model, CHAMPION).version == v2


def test_versions_carry_tags_descriptions_and_their_runs(store, model):
    assert store.versions(model) == [] and store.model_tag(model, Tag.LAST_RETRAIN) is None
    v1, v2, v3 = _versions(store, model, 3)
    store.set_version_tag(model, v2, Tag.decision("ci_low"), "0.012")
    store.set_version_tag(model, v2, Tag.decision("ci_low"), "0.013")  # replaced
    store.set_version_tag(model, v2, Tag.WINDOW_END, "2026-10-03")
    store.set_version_description(model, v2, "**Kept out**")
    found = store.version(model, v2)
    assert dict(found.tags) == {"decision.ci_low": "0.013", "window_end": "2026-10-03"}
    assert found.description == "**Kept out**" and store.version(model, v1).description == ""
    assert [v.version for v in store.versions(model)] == [v1, v2, v3]  # oldest first
    assert store.run(found.run_id).name == "train-1"
    store.set_model_tag(model, Tag.LAST_RETRAIN, "2026-10-09")
    assert store.model_tag(model, Tag.LAST_RETRAIN) == "2026-10-09"
    with pytest.raises(RegistryError):
        store.version(model, "9")
    with pytest.raises(RegistryError):
        store.set_version_tag(model, "9", "k", "v")
    with pytest.raises(RegistryError):
        store.set_model_tag(f"{model}_none", "k", "v")


def test_runs_are_found_by_kind_and_tags_oldest_first(store):
    day = {Tag.DAY: "2026-10-05", Tag.MODEL_NAME: "m"}
    newer = store.start_run(RunKind.DRIFT, "drift-2026-10-05", day, start_time=1_800_000_000_000)
    older = store.start_run(RunKind.DRIFT, "drift-2026-10-05", day, start_time=1_700_000_000_000)
    other_day = store.start_run(RunKind.DRIFT, "drift-2026-10-06", {**day, Tag.DAY: "2026-10-06"})
    other_kind = store.start_run(RunKind.PERFORMANCE, "performance-2026-10-05", day)
    other_model = store.start_run(RunKind.DRIFT, "drift-2026-10-05", {**day, Tag.MODEL_NAME: "m2"})
    assert [r.run_id for r in store.find_runs(RunKind.DRIFT, **day)] == [older, newer]
    assert {r.run_id for r in store.find_runs(RunKind.DRIFT)} == {older, newer, other_day, other_model}
    assert [r.run_id for r in store.find_runs(RunKind.PERFORMANCE, **{Tag.MODEL_NAME: "m"})] == [other_kind]
    assert store.find_runs(RunKind.PROMOTION) == []
    found = store.find_runs(RunKind.DRIFT, **day)[0]
    assert (found.name, found.start_time, found.status) == ("drift-2026-10-05", 1_700_000_000_000, "RUNNING")
    assert found.tags.items() >= {Tag.KIND: "drift", **day}.items()
    assert found.experiment_id == store.experiment_id
    store.delete_run(older)
    assert [r.run_id for r in store.find_runs(RunKind.DRIFT, **day)] == [newer]  # deleted runs are not found
    with pytest.raises(ValueError, match="quote"):
        store.find_runs(RunKind.PROMOTION, **{Tag.AIRFLOW_RUN_ID: "manual__it's"})


def test_a_run_ends_finished_or_failed_and_can_be_reopened(store):
    with tracked_run(store, RunKind.ROLLBACK, "rollback-v2-to-v1", {Tag.REASON: "r"}) as run_id:
        assert store.run(run_id).status == "RUNNING" and not store.run(run_id).finished
    assert store.run(run_id).finished
    with pytest.raises(ConnectionError), tracked_run(store, RunKind.PROMOTION, "promotion-x") as failed:
        raise ConnectionError("the registry went away")
    assert store.run(failed).status == "FAILED"
    store.set_tags(run_id, {Tag.ALERTED: "none"})  # a finished run is written to again, and ended again
    store.end_run(run_id)
    assert store.run(run_id).tags[Tag.ALERTED] == "none" and store.run(run_id).finished


def test_metrics_read_as_their_latest_value_with_every_step_in_the_history(store):
    run_id = store.start_run(RunKind.PERFORMANCE, "performance-2026-10-05", {Tag.DAY: "2026-10-05"})
    day_ms = 1_790_000_000_000
    store.log(run_id, metrics={"label_share": 0.3, "scored_rows": 600}, params={"n": 600}, step=1, timestamp=day_ms)
    store.log(run_id, metrics={"label_share": 0.9}, step=3, timestamp=day_ms)
    store.log(run_id, metrics={"label_share": 0.6}, step=2, timestamp=day_ms)  # a rerun of an older day: not latest
    store.log(run_id, metrics={"label_share": 0.9}, step=3, timestamp=day_ms, tags={Tag.LABELS_AS_OF: "2026-10-08"})
    run = store.run(run_id)  # the same point again: stored once; tags written in the same call
    assert dict(run.metrics) == {"label_share": 0.9, "scored_rows": 600.0} and dict(run.params) == {"n": "600"}
    assert run.tags[Tag.LABELS_AS_OF] == "2026-10-08" and run.tags[Tag.DAY] == "2026-10-05"
    history = store.metric_history(run_id, "label_share")
    assert sorted((p.step, p.value, p.timestamp) for p in history) == [
        (1, 0.3, day_ms),
        (2, 0.6, day_ms),
        (3, 0.9, day_ms),
    ]
    assert store.metric_history(run_id, "absent") == []
    with pytest.raises(RegistryError, match="no run"):  # a run id kept from another store
        store.log("0" * 32, metrics={"label_share": 0.9})


def test_artifacts_and_records_round_trip(store, tmp_path):
    run_id = store.start_run(RunKind.DRIFT, "drift-2026-10-05")
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "drift_report.html").write_text("<html>first</html>")
    (folder / "drift_summary.json").write_text("{}")
    store.log_artifacts(run_id, folder, "drift")
    (folder / "drift_report.html").write_text("<html>with a banner</html>")
    store.log_artifact(run_id, folder / "drift_report.html", "drift")  # replaces the file of the same name
    got = store.download_artifact(run_id, "drift/drift_report.html", tmp_path / "down")
    assert got.read_text() == "<html>with a banner</html>" and got.is_relative_to(tmp_path / "down")
    assert store.download_artifact(run_id, "drift/drift_summary.json", tmp_path / "down2").read_text() == "{}"
    with pytest.raises(FileNotFoundError):
        store.download_artifact(run_id, "reference/missing.parquet", tmp_path / "down3")
    record = {"promoted": False, "ci_low": None, "n": 150, "reason": "too few rows"}
    store.log_record(run_id, "decision.json", record)
    assert store.record(run_id, "decision.json") == record
    assert json.loads(json.dumps(store.record(run_id, "decision.json"))) == record
    with pytest.raises(FileNotFoundError):
        store.record(run_id, "absent.json")


def test_an_alert_is_sent_once_per_decision_run(store):
    run_id = store.start_run(RunKind.PROMOTION, "promotion-2026-10-09-v2")
    sent: list[str] = []

    def send() -> list[str]:
        sent.append("mail")
        return ["smtp:alerts"]

    assert alert_once(store, run_id, send) == ["smtp:alerts"]
    assert alert_once(store, run_id, send) is None  # a retry of the task
    assert sent == ["mail"] and store.run(run_id).tags[Tag.ALERTED] == "smtp:alerts"
    quiet = store.start_run(RunKind.PROMOTION, "promotion-2026-10-10-v3")
    assert alert_once(store, quiet, list) == [] and store.run(quiet).tags[Tag.ALERTED] == "none"
