"""The registry seam: what the pipeline asks of a model registry and run tracker, the names it writes, and the rules
built on it.

:class:`Registry` is the interface: aliases (resolve, move, delete), registered versions with their tags and
descriptions, registered-model tags, and runs by kind with their tags, metrics, params, artifacts and small JSON
records. Two implementations keep it: :class:`pipelines.registry_mlflow.MlflowRegistry` (the only code in
``pipelines/`` that calls MLflow's tracking and registry API) and :class:`pipelines.registry_memory.MemoryRegistry`
(for unit tests); ``tests/pipelines/test_registry_contract.py`` runs one contract against both, and against a real
``mlflow server``, so the fake cannot drift. Model artifacts (logging, loading, flavor) are
:mod:`pipelines.model_artifacts`'s.

Every run the pipeline writes has a :class:`RunKind` (its ``kind`` tag), and every tag name is one of :class:`Tag`:
the names users see in the MLflow UI are defined here once. One Registry is built per task (:func:`connect`) and
passed to the code that decides. Models are addressed through aliases (``champion``), never deprecated stages.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import RegistryError

if TYPE_CHECKING:
    from pipelines.config import Config

log = logging.getLogger(__name__)

CHAMPION = "champion"  # the version batch scoring, serving and drift checks use
CHALLENGER = "challenger"  # the last evaluated challenger that was kept out (no version once it is promoted)
PREVIOUS = "previous_champion"  # the champion before the last promotion: what a rollback restores


class RunKind(StrEnum):
    """The ``kind`` tag of every run the pipeline writes: what a search for "the drift check of day D" names."""

    TRAINING = "training"  # a fit that registered a version (``train-D``)
    DRIFT = "drift"  # a day's drift check and report (``drift-D``)
    PERFORMANCE = "performance"  # a scored day's realized metric, reopened as labels arrive (``performance-D``)
    RETRAIN_DECISION = "retrain_decision"  # the retraining decision of a day whose drift check was skipped
    PROMOTION = "promotion"  # a promotion decision and its record (``promotion-D-vN``)
    ROLLBACK = "rollback"  # a rollback (``rollback-vN-to-vM``)


class Tag:
    """Tag names, as the MLflow UI shows them (runs, versions, the registered model)."""

    # on runs: what the run is and what it is of, so it can be found again
    KIND = "kind"
    DAY = "day"
    MODEL_NAME = "model_name"
    MODEL_VERSION = "model_version"
    CHALLENGER_VERSION = "challenger_version"
    AIRFLOW_RUN_ID = "airflow_run_id"
    PREDICTIONS = "predictions"  # on a drift run: the predictions it checked ("<scoring run id> <scoring time>")
    # on runs: what was decided and done
    PROMOTED = "promoted"
    REASON = "reason"
    TRIGGER = "trigger"
    DECISION = "decision"  # a day's retraining verdict: "retrain" or "no retrain"
    DECISION_REASON = "decision.reason"
    DECISION_TRIGGERS = "decision.triggers"
    APPLIED = "applied"  # on a promotion record: "pending" until the registry says what it says, then "true"
    APPROVAL = "approval"  # on a promotion record awaiting a person: "pending", then "approved", "rejected", ...
    APPROVED_BY = "approval.by"
    APPROVED_AT = "approval.at"
    ALERTED = "alerted"  # on a decision's run: the channels its alert went through ("none": no channel)
    FROM_VERSION = "from_version"
    TO_VERSION = "to_version"
    LABELS_AS_OF = "labels_as_of"
    NOTE = "mlflow.note.content"  # what the MLflow UI shows as a run's description
    # on training runs and on the versions they register
    WINDOW_START = "window_start"
    WINDOW_END = "window_end"
    DATA_HASH = "data_hash"
    TASK = "task"
    FEATURES_DELTA_VERSION = "features_delta_version"  # the features table's version the window was read at
    FEATURE_DEFINITIONS = "feature_definitions"  # the hash of the feature definitions it was trained with
    RECOMPUTED_DAYS = "recomputed_days"  # window days computed again for changed definitions (how many)
    # on versions
    DECISION_RUN_ID = "decision.run_id"
    ROLLED_BACK = "rolled_back"
    RESTORED = "restored"
    # on the registered model
    LAST_RETRAIN = "last_retrain_day"

    @staticmethod
    def history_files(table: str) -> str:
        """A history table's file versions a training window could see, fingerprinted (``history.payments``)."""
        return f"history.{table}"

    @staticmethod
    def decision(field: str) -> str:
        """A promotion decision's field as a version tag (``decision.promoted``, ``decision.ci_low``, ...)."""
        return f"decision.{field}"


def holdout_metric(metric: str) -> str:
    """The training holdout's metric, as a training run's metric and a version's tag (``holdout_roc_auc``)."""
    return f"holdout_{metric}"


def realized_metric(metric: str) -> str:
    """The champion's metric on labeled live rows, as a drift or performance run's metric (``realized_roc_auc``)."""
    return f"realized_{metric}"


@dataclass(frozen=True)
class ModelRef:
    """One registered version, resolved from an alias so a whole run scores with the same model."""

    name: str
    version: str
    run_id: str | None
    flavor: str | None = None  # "sklearn" or "torch", read from the MLmodel file (None: not read yet)

    def __post_init__(self) -> None:
        """Only registered versions are ever loaded: the registry is the trust boundary, never a path or a URL."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) or ".." in self.name or not str(self.version).isdigit():
            raise RegistryError(
                f"refusing to load {self.name!r} version {self.version!r}: not a registered model version"
            )

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as the registry holds it."""

    name: str
    version: str
    run_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version, self.run_id)


@dataclass(frozen=True)
class RunInfo:
    """A run as the tracker holds it. ``start_time`` in epoch milliseconds; ``status`` ``RUNNING``, ``FINISHED``
    or ``FAILED``."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric."""

    step: int
    value: float
    timestamp: int  # epoch milliseconds


class Registry(ABC):
    """What the pipeline needs of a model registry and run tracker, in its own words.

    Runs live in one experiment (:attr:`experiment_id`); searches skip deleted runs and list the oldest first. A tag
    value searched for may not hold a single quote (MLflow's filter language cannot say it): ``ValueError``.
    """

    @property
    @abstractmethod
    def experiment_id(self) -> str:
        """The experiment the runs are in (the Airflow plugin links to runs through it)."""

    # --- aliases ---------------------------------------------------------------------------------------------

    @abstractmethod
    def alias(self, name: str, alias: str) -> ModelRef | None:
        """The version holding ``alias``, or None when the model or the alias does not exist."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (an alias names one version at a time: it moves, never doubles)."""

    @abstractmethod
    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; removing one that does not exist is an error of the store."""

    # --- versions --------------------------------------------------------------------------------------------

    @abstractmethod
    def register_version(self, name: str, source: str, run_id: str) -> str:
        """Register the model at ``source`` (logged by run ``run_id``) as the next version of ``name``, creating the
        registered model on first use; returns the version."""

    @abstractmethod
    def version(self, name: str, version: str) -> VersionInfo:
        """A registered version with its tags, description and aliases; a missing one is :class:`RegistryError`."""

    @abstractmethod
    def versions(self, name: str) -> list[VersionInfo]:
        """Every registered version of ``name``, oldest first (none when the model does not exist)."""

    @abstractmethod
    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None: ...

    @abstractmethod
    def set_version_description(self, name: str, version: str, text: str) -> None: ...

    @abstractmethod
    def model_tag(self, name: str, key: str) -> str | None:
        """A tag of the registered model (not of a version), or None."""

    @abstractmethod
    def set_model_tag(self, name: str, key: str, value: str) -> None: ...

    # --- runs ------------------------------------------------------------------------------------------------

    @abstractmethod
    def start_run(
        self, kind: RunKind, name: str, tags: Mapping[str, str] | None = None, start_time: int | None = None
    ) -> str:
        """A new run (``RUNNING``) tagged with its ``kind`` and ``tags``; ``start_time`` in epoch ms (default now).
        Returns its id. Prefer :func:`tracked_run`, which ends it."""

    @abstractmethod
    def end_run(self, run_id: str, failed: bool = False) -> None:
        """Mark the run ``FINISHED`` (or ``FAILED``); a finished run can be written to and ended again."""

    @abstractmethod
    def run(self, run_id: str) -> RunInfo: ...

    @abstractmethod
    def find_runs(self, kind: RunKind, **tags: str) -> list[RunInfo]:
        """The runs of ``kind`` whose tags equal ``tags``, oldest first."""

    @abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log(
        self,
        run_id: str,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        step: int = 0,
        timestamp: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Metrics (at ``step`` and ``timestamp``, epoch ms, default now), params (written as text; a param is
        written once) and tags (as :meth:`set_tags`) in one call: one write to the store."""

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of a run's metric, in the order logged."""

    @abstractmethod
    def log_artifact(self, run_id: str, local_file: Path, folder: str) -> None:
        """Copy a file into the run's artifact ``folder`` (replacing one of the same name)."""

    @abstractmethod
    def log_artifacts(self, run_id: str, local_dir: Path, folder: str) -> None:
        """Copy every file of ``local_dir`` into the run's artifact ``folder``."""

    @abstractmethod
    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        """The run's artifact ``path`` as a local file under ``destination``; a missing one is
        ``FileNotFoundError``."""

    @abstractmethod
    def log_record(self, run_id: str, name: str, record: Mapping[str, Any]) -> None:
        """A small JSON document as the run's artifact ``name`` (finite numbers only: see
        :func:`pipelines.records.jsonable`)."""

    @abstractmethod
    def record(self, run_id: str, name: str) -> dict[str, Any]:
        """The JSON document :meth:`log_record` wrote; a missing one is ``FileNotFoundError``."""


def connect(config: Config) -> Registry:
    """The configured store as a :class:`Registry` (its experiment created on first use): one per task."""
    from pipelines.registry_mlflow import MlflowRegistry

    return MlflowRegistry.from_config(config)


@contextmanager
def tracked_run(
    registry: Registry, kind: RunKind, name: str, tags: Mapping[str, str] | None = None, start_time: int | None = None
) -> Iterator[str]:
    """A new run for the block: ``FINISHED`` when it completes, ``FAILED`` when it raises (so a reader can tell a
    complete record from one a dying try left behind)."""
    run_id = registry.start_run(kind, name, tags, start_time)
    try:
        yield run_id
    except BaseException:
        registry.end_run(run_id, failed=True)
        raise
    registry.end_run(run_id)


def require_alias(registry: Registry, name: str, alias: str = CHAMPION) -> ModelRef:
    """The version holding ``alias``; a missing alias is an error that says what to run."""
    ref = registry.alias(name, alias)
    if ref is None:
        raise RegistryError(f"registered model {name!r} has no {alias!r} alias; run the model_training DAG first")
    return ref


def crown_if_vacant(registry: Registry, name: str, version: str) -> str:
    """Give the first registered version the champion alias; later versions must earn it. Returns the champion."""
    current = registry.alias(name, CHAMPION)
    if current is not None:
        return current.version
    registry.set_alias(name, CHAMPION, version)
    log.info("model %s had no champion: version %s is champion now", name, version)
    return version


def alert_once(registry: Registry, run_id: str, send: Callable[[], list[str]]) -> list[str] | None:
    """Send the alert of the decision recorded on run ``run_id`` unless a try before this one did (the run's
    ``alerted`` tag says so); returns the channels that took it, or None when it had been sent. Recorded right after
    sending: a try that dies in between sends it again on the retry (at least once), never once per retry."""
    sent = registry.run(run_id).tags.get(Tag.ALERTED)
    if sent is not None:
        log.info("the alert of the decision on run %s was already sent (%s): not again", run_id, sent)
        return None
    channels = send()
    registry.set_tags(run_id, {Tag.ALERTED: ",".join(channels) or "none"})
    return channels


def searchable(value: str) -> str:
    """A tag value a search can name; one holding a quote is refused (both implementations refuse it alike)."""
    if "'" in value:
        raise ValueError(f"a tag value with a quote cannot be searched for: {value!r}")
    return value


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics whose value is a finite number: what a run's metrics may hold when NaN means "not known yet"."""
    return {key: float(value) for key, value in metrics.items() if value is not None and math.isfinite(value)}
