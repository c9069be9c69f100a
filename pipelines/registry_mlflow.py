"""The registry seam on MLflow: the only code in ``pipelines/`` that calls MLflow's tracking and registry API.

(Model artifacts, which MLflow's flavors log and load through the process-wide store, are
:mod:`pipelines.model_artifacts`'s.) Everything here goes through one ``MlflowClient`` with explicit tracking and
registry URIs: nothing sets the process-wide tracking URI or an active run, so several stores can be used in one
process (the demo's two models, ``dag.test()``) without one's setting leaking into the other's calls.

Runs are created with the tags MLflow's own ``mlflow.start_run`` adds (user, source), so they look in the UI as they
did when the pipeline used the fluent API.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as context_registry
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from pipelines.config import Config
from pipelines.errors import RegistryError
from pipelines.registry import (
    MetricPoint,
    ModelRef,
    Registry,
    RunInfo,
    RunKind,
    Tag,
    VersionInfo,
    searchable,
)

log = logging.getLogger(__name__)

_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")  # how stores say "no such thing"
_PAGE = 1000


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite store, keep artifacts next to the database file rather than in the process's working folder."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix) :]).parent / "mlartifacts").as_uri()
    return None


def _write_ahead_log(tracking_uri: str) -> None:
    """Put a SQLite store in write-ahead-log mode (a setting of the database file, kept once set), as Airflow does
    with its own SQLite database.

    MLflow's SQLite store commits a few times per ``log_batch``, each commit in the default rollback-journal mode
    waiting on several syncs to disk: a daily run's dozens of writes spent most of their time there (~50 ms a write
    on a busy disk, ~19 ms with the log). Readers (``mlflow ui`` beside a running DAG) no longer block the writer
    either. Other stores are left as they are."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri in _WAL:
        return
    with closing(sqlite3.connect(tracking_uri[len(prefix) :].split("?")[0], timeout=20)) as database:
        database.execute("PRAGMA journal_mode=WAL")
    _WAL.add(tracking_uri)


_WAL: set[str] = set()


def _missing(exc: MlflowException) -> bool:
    return exc.error_code in _MISSING


@contextmanager
def _not_found(what: str) -> Iterator[None]:
    """A store's "does not exist" as :class:`RegistryError`, which the DAGs' retry policy fails at once."""
    try:
        yield
    except MlflowException as exc:
        if _missing(exc):
            raise RegistryError(f"no {what} in the registry: {exc.message}") from exc
        raise


class MlflowRegistry(Registry):
    """:class:`~pipelines.registry.Registry` on an MLflow tracking store and model registry (one URI for both)."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self._client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        found = self._client.get_experiment_by_name(experiment)
        if found is None:
            try:
                self._client.create_experiment(experiment, artifact_location=_artifact_location(tracking_uri))
            except MlflowException:  # created concurrently by another task: fine, it exists now
                log.info("experiment %s was created concurrently", experiment)
            found = self._client.get_experiment_by_name(experiment)
        self._experiment_id = found.experiment_id
        _write_ahead_log(tracking_uri)  # the store's tables exist now

    @classmethod
    def from_config(cls, config: Config) -> MlflowRegistry:
        return cls(config.tracking_uri, config.mlflow.experiment)

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    # --- aliases ---------------------------------------------------------------------------------------------

    def alias(self, name: str, alias: str) -> ModelRef | None:
        try:
            version = self._client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if _missing(exc):
                return None
            raise
        return ModelRef(name=name, version=str(version.version), run_id=version.run_id)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _not_found(f"{name!r} version {version!r}"):
            self._client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._client.delete_registered_model_alias(name, alias)

    # --- versions --------------------------------------------------------------------------------------------

    def register_version(self, name: str, source: str, run_id: str) -> str:
        """As ``mlflow.register_model`` does it (which reads the process-wide registry URI): the registered model
        if new, the version, and on a logged model (``models:/<model_id>``) the tag that links it to the version."""
        try:
            self._client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        model_id = source.removeprefix("models:/") if source.startswith("models:/m-") else None
        created = self._client.create_model_version(name, source, run_id=run_id, model_id=model_id)
        version = str(created.version)
        if model_id is not None:
            logged = self._client.get_logged_model(model_id)
            linked = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
            linked.append({"name": name, "version": int(version)})
            self._client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(linked)})
        log.info("registered %s version %s from run %s", name, version, run_id)
        return version

    def version(self, name: str, version: str) -> VersionInfo:
        with _not_found(f"{name!r} version {version!r}"):
            found = self._client.get_model_version(name, version)
        return VersionInfo(
            name=name,
            version=str(found.version),
            run_id=found.run_id,
            tags=dict(found.tags or {}),
            description=found.description or "",
            aliases=tuple(sorted(found.aliases or ())),
        )

    def versions(self, name: str) -> list[VersionInfo]:
        found, token = [], None
        while True:
            page = self._client.search_model_versions(
                f"name = '{searchable(name)}'", max_results=_PAGE, page_token=token
            )
            found.extend(page)
            token = page.token
            if not token:
                break
        if not found:
            return []
        held: dict[str, list[str]] = {}
        for alias, version in self._client.get_registered_model(name).aliases.items():  # searches omit aliases
            held.setdefault(str(version), []).append(alias)
        return sorted(
            (
                VersionInfo(
                    name=name,
                    version=str(v.version),
                    run_id=v.run_id,
                    tags=dict(v.tags or {}),
                    description=v.description or "",
                    aliases=tuple(sorted(held.get(str(v.version), ()))),
                )
                for v in found
            ),
            key=lambda v: int(v.version),
        )

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        with _not_found(f"{name!r} version {version!r}"):
            self._client.set_model_version_tag(name, version, key, value)

    def set_version_description(self, name: str, version: str, text: str) -> None:
        with _not_found(f"{name!r} version {version!r}"):
            self._client.update_model_version(name, version, description=text)

    def model_tag(self, name: str, key: str) -> str | None:
        try:
            return self._client.get_registered_model(name).tags.get(key)
        except MlflowException as exc:
            if _missing(exc):
                return None
            raise

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        with _not_found(f"registered model {name!r}"):
            self._client.set_registered_model_tag(name, key, value)

    # --- runs ------------------------------------------------------------------------------------------------

    def start_run(
        self, kind: RunKind, name: str, tags: Mapping[str, str] | None = None, start_time: int | None = None
    ) -> str:
        resolved = context_registry.resolve_tags({Tag.KIND: str(kind), **(tags or {})})
        run = self._client.create_run(self.experiment_id, start_time=start_time, tags=resolved, run_name=name)
        return run.info.run_id

    def end_run(self, run_id: str, failed: bool = False) -> None:
        status = RunStatus.FAILED if failed else RunStatus.FINISHED
        self._client.set_terminated(run_id, RunStatus.to_string(status))

    def run(self, run_id: str) -> RunInfo:
        with _not_found(f"run {run_id!r}"):
            return _run_info(self._client.get_run(run_id))

    def find_runs(self, kind: RunKind, **tags: str) -> list[RunInfo]:
        wanted = {Tag.KIND: str(kind), **tags}
        query = " and ".join(f"tags.`{key}` = '{searchable(value)}'" for key, value in wanted.items())
        found, token = [], None
        while True:
            page = self._client.search_runs(
                [self.experiment_id],
                query,
                max_results=_PAGE,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            found.extend(_run_info(run) for run in page)
            token = page.token
            if not token:
                return found

    def delete_run(self, run_id: str) -> None:
        self._client.delete_run(run_id)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])

    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        step: int = 0,
        timestamp: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        at = timestamp if timestamp is not None else int(time.time() * 1000)
        with _not_found(f"run {run_id!r}"):
            self._client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), at, step) for key, value in (metrics or {}).items()],
                params=[Param(key, str(value)) for key, value in (params or {}).items()],
                tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()],
            )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return [MetricPoint(m.step, m.value, m.timestamp) for m in self._client.get_metric_history(run_id, key)]

    def log_artifact(self, run_id: str, local_file: Path, folder: str) -> None:
        self._client.log_artifact(run_id, str(local_file), folder)

    def log_artifacts(self, run_id: str, local_dir: Path, folder: str) -> None:
        self._client.log_artifacts(run_id, str(local_dir), folder)

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        try:
            local = Path(self._client.download_artifacts(run_id, path, str(destination)))
        except (MlflowException, OSError) as exc:  # the stores say "not found" in several ways
            raise FileNotFoundError(f"no artifact {path!r} in run {run_id}: {exc}") from exc
        if not local.exists():
            raise FileNotFoundError(f"no artifact {path!r} in run {run_id}")
        return local

    def log_record(self, run_id: str, name: str, record: Mapping[str, Any]) -> None:
        self._client.log_dict(run_id, dict(record), name)

    def record(self, run_id: str, name: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(self.download_artifact(run_id, name, Path(tmp)).read_text())


def _run_info(run: Any) -> RunInfo:
    return RunInfo(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time=int(run.info.start_time),
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
    )
