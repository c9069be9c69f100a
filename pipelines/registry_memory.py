"""The registry seam in memory: for unit tests of the code that decides (promotion, retraining, performance).

It keeps what :class:`~pipelines.registry_mlflow.MlflowRegistry` keeps, with MLflow's rules where the pipeline
depends on them (an alias names one version; searches skip deleted runs and list the oldest first; a run's metric
reads as its latest value by step, then time; an identical metric point is stored once; a missing version is an
error, a missing alias is None). ``tests/pipelines/test_registry_contract.py`` runs the same contract against this
class, a SQLite MLflow store and an ``mlflow server``, so it cannot drift from the real thing. It lives in the
package, beside the interface it implements, so that it is typed and documented with it and any test can use it.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


@dataclass
class _Model:
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Run:
    info: RunInfo
    history: dict[str, list[MetricPoint]] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    deleted: bool = False
    order: int = 0


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryRegistry(Registry):
    """:class:`~pipelines.registry.Registry` in dictionaries; one instance is one store."""

    def __init__(self, experiment_id: str = "1") -> None:
        self._experiment_id = experiment_id
        self._models: dict[str, _Model] = {}
        self._runs: dict[str, _Run] = {}
        self._order = itertools.count()

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    # --- aliases ---------------------------------------------------------------------------------------------

    def alias(self, name: str, alias: str) -> ModelRef | None:
        model = self._models.get(name)
        if model is None or alias not in model.aliases:
            return None
        return model.versions[model.aliases[alias]].ref

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._version(name, version)
        self._models[name].aliases[alias] = str(version)

    def delete_alias(self, name: str, alias: str) -> None:
        if name in self._models:
            self._models[name].aliases.pop(alias, None)

    # --- versions --------------------------------------------------------------------------------------------

    def register_version(self, name: str, source: str, run_id: str) -> str:
        model = self._models.setdefault(name, _Model())
        version = str(len(model.versions) + 1)
        model.versions[version] = VersionInfo(name=name, version=version, run_id=run_id)
        return version

    def _version(self, name: str, version: str) -> VersionInfo:
        model = self._models.get(name)
        if model is None or str(version) not in model.versions:
            raise RegistryError(f"no {name!r} version {version!r} in the registry")
        return model.versions[str(version)]

    def version(self, name: str, version: str) -> VersionInfo:
        found = self._version(name, version)
        held = tuple(sorted(a for a, v in self._models[name].aliases.items() if v == found.version))
        return replace(found, tags=dict(found.tags), aliases=held)

    def versions(self, name: str) -> list[VersionInfo]:
        model = self._models.get(name)
        if model is None:
            return []
        return [self.version(name, v) for v in sorted(model.versions, key=int)]

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        found = self._version(name, version)
        self._models[name].versions[found.version] = replace(found, tags={**found.tags, key: str(value)})

    def set_version_description(self, name: str, version: str, text: str) -> None:
        found = self._version(name, version)
        self._models[name].versions[found.version] = replace(found, description=text)

    def model_tag(self, name: str, key: str) -> str | None:
        model = self._models.get(name)
        return model.tags.get(key) if model is not None else None

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        if name not in self._models:
            raise RegistryError(f"no registered model {name!r} in the registry")
        self._models[name].tags[key] = str(value)

    # --- runs ------------------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise RegistryError(f"no run {run_id!r} in the registry")
        return run

    def start_run(
        self, kind: RunKind, name: str, tags: Mapping[str, str] | None = None, start_time: int | None = None
    ) -> str:
        run_id = uuid.uuid4().hex
        info = RunInfo(
            run_id=run_id,
            experiment_id=self._experiment_id,
            name=name,
            status="RUNNING",
            start_time=start_time if start_time is not None else _now_ms(),
            tags={Tag.KIND: str(kind), **{k: str(v) for k, v in (tags or {}).items()}},
        )
        self._runs[run_id] = _Run(info, order=next(self._order))
        return run_id

    def end_run(self, run_id: str, failed: bool = False) -> None:
        run = self._run(run_id)
        run.info = replace(run.info, status="FAILED" if failed else "FINISHED")

    def run(self, run_id: str) -> RunInfo:
        info = self._run(run_id).info
        return replace(info, tags=dict(info.tags), metrics=dict(info.metrics), params=dict(info.params))

    def find_runs(self, kind: RunKind, **tags: str) -> list[RunInfo]:
        wanted = {Tag.KIND: str(kind), **{k: searchable(v) for k, v in tags.items()}}
        found = [
            run
            for run in self._runs.values()
            if not run.deleted and all(run.info.tags.get(k) == v for k, v in wanted.items())
        ]
        return [self.run(r.info.run_id) for r in sorted(found, key=lambda r: (r.info.start_time, r.order))]

    def delete_run(self, run_id: str) -> None:
        self._run(run_id).deleted = True

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        run = self._run(run_id)
        run.info = replace(run.info, tags={**run.info.tags, **{k: str(v) for k, v in tags.items()}})

    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        step: int = 0,
        timestamp: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        run = self._run(run_id)
        at = timestamp if timestamp is not None else _now_ms()
        if tags:
            self.set_tags(run_id, tags)
        for key, value in (params or {}).items():
            if key in run.info.params and run.info.params[key] != str(value):
                raise ValueError(f"param {key!r} of run {run_id} was {run.info.params[key]!r}: params are written once")
        latest = dict(run.info.metrics)
        for key, value in (metrics or {}).items():
            point = MetricPoint(step, float(value), at)
            history = run.history.setdefault(key, [])
            if point in history:
                continue
            newest = max(history, key=lambda p: (p.step, p.timestamp, p.value), default=None)
            history.append(point)
            if newest is None or (point.step, point.timestamp, point.value) > (
                newest.step,
                newest.timestamp,
                newest.value,
            ):
                latest[key] = point.value
        run.info = replace(
            run.info, metrics=latest, params={**run.info.params, **{k: str(v) for k, v in (params or {}).items()}}
        )

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return sorted(self._run(run_id).history.get(key, []), key=lambda p: (p.timestamp, p.step, p.value))

    def log_artifact(self, run_id: str, local_file: Path, folder: str) -> None:
        self._run(run_id).artifacts[f"{folder}/{Path(local_file).name}"] = Path(local_file).read_bytes()

    def log_artifacts(self, run_id: str, local_dir: Path, folder: str) -> None:
        for file in sorted(Path(local_dir).rglob("*")):
            if file.is_file():
                relative = file.relative_to(local_dir).as_posix()
                self._run(run_id).artifacts[f"{folder}/{relative}"] = file.read_bytes()

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        artifacts = self._run(run_id).artifacts
        if path not in artifacts:
            raise FileNotFoundError(f"no artifact {path!r} in run {run_id}")
        local = Path(destination) / path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(artifacts[path])
        return local

    def log_record(self, run_id: str, name: str, record: Mapping[str, Any]) -> None:
        self._run(run_id).artifacts[name] = json.dumps(dict(record), indent=2, default=str).encode()

    def record(self, run_id: str, name: str) -> dict[str, Any]:
        artifacts = self._run(run_id).artifacts
        if name not in artifacts:
            raise FileNotFoundError(f"no artifact {name!r} in run {run_id}")
        return json.loads(artifacts[name])
