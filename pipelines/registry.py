"""MLflow tracking and registry access: one place that knows the store, the experiment and the aliases.

Models are always addressed through registry aliases (``champion``), never through the deprecated stages.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.config import Config
from pipelines.errors import RegistryError

log = logging.getLogger(__name__)

CHAMPION = "champion"
ALERTED_TAG = "alerted"  # on a decision's run: the channels its alert went through ("none": no channel configured)
MODEL_CACHE_SIZE = 4  # champion + challenger, each on up to two devices: a long-lived worker keeps no more


@dataclass(frozen=True)
class ModelRef:
    """One registered version, resolved from an alias so a whole run scores with the same model."""

    name: str
    version: str
    run_id: str | None
    flavor: str = "sklearn"  # "sklearn" or "torch": how the version was logged, read from its MLmodel file

    def __post_init__(self) -> None:
        """Only registered versions are ever loaded: the registry is the trust boundary, never a path or a URL."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) or ".." in self.name or not str(self.version).isdigit():
            raise RegistryError(
                f"refusing to load {self.name!r} version {self.version!r}: not a registered model version"
            )

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside a SQLite store, keep artifacts next to the database file rather than in the process's working folder."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        return (Path(tracking_uri[len(prefix) :]).parent / "mlartifacts").as_uri()
    return None


def use_store(uri: str) -> None:
    """Point this process's MLflow at ``uri`` for tracking and registry, leaving the environment as it was.

    MLflow exports the URIs it is set to into the environment, where the next ``load_config`` would read them as a
    deployment's override: several configs in one process (the demo, ``dag.test()``) would then share one store.
    """
    exported = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in exported.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def connect(config: Config) -> MlflowClient:
    """Point MLflow at the configured store and experiment (created on first use); return a client."""
    uri = config.tracking_uri
    use_store(uri)
    client = MlflowClient(uri, registry_uri=uri)
    if client.get_experiment_by_name(config.mlflow.experiment) is None:
        try:
            client.create_experiment(config.mlflow.experiment, artifact_location=_artifact_location(uri))
        except MlflowException:  # created concurrently by another task: fine, it exists now
            log.info("experiment %s was created concurrently", config.mlflow.experiment)
    mlflow.set_experiment(config.mlflow.experiment)
    return client


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    """The version holding ``alias``, or None when the model or the alias does not exist."""
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return ModelRef(name=name, version=str(version.version), run_id=version.run_id)


def require_alias(client: MlflowClient, name: str, alias: str = CHAMPION) -> ModelRef:
    """The version holding ``alias``, with its flavor; a missing alias is an error that says what to run."""
    ref = alias_version(client, name, alias)
    if ref is None:
        raise RegistryError(f"registered model {name!r} has no {alias!r} alias; run the model_training DAG first")
    return replace(ref, flavor=_flavor(ref.uri))


def version_ref(client: MlflowClient, name: str, version: str) -> ModelRef:
    """A registered version by number, with its run and flavor."""
    found = client.get_model_version(name, version)
    ref = ModelRef(name=name, version=str(found.version), run_id=found.run_id)
    return replace(ref, flavor=_flavor(ref.uri))


def _flavor(uri: str) -> str:
    return "torch" if "pytorch" in mlflow.models.get_model_info(uri).flavors else "sklearn"


def crown_if_vacant(client: MlflowClient, name: str, version: str) -> str:
    """Give the first registered version the champion alias; later versions must earn it. Returns the champion."""
    current = alias_version(client, name, CHAMPION)
    if current is not None:
        return current.version
    client.set_registered_model_alias(name, CHAMPION, version)
    log.info("model %s had no champion: version %s is champion now", name, version)
    return version


def load_model(ref: ModelRef, tracking_uri: str, device: str = "cpu", torch_batch_rows: int | None = None) -> Any:
    """The model behind a registered version, on ``device``; reused within a process (a version never changes).

    The cache is bounded (least recently used first out), so a worker that scores version after version for
    months holds at most ``MODEL_CACHE_SIZE`` models.
    """
    model = _load(ref.uri, ref.flavor, tracking_uri, device)
    if torch_batch_rows is not None and ref.flavor == "torch":
        model.batch_rows = torch_batch_rows
    return model


@functools.lru_cache(maxsize=MODEL_CACHE_SIZE)
def _load(uri: str, flavor: str, tracking_uri: str, device: str) -> Any:
    use_store(tracking_uri)
    if flavor == "torch":
        model = mlflow.pytorch.load_model(uri, map_location=device).to(device)
    else:
        model = mlflow.sklearn.load_model(uri)
    log.info("loaded %s on %s", uri, device)
    return model


def alert_once(client: MlflowClient, run_id: str, send: Callable[[], list[str]]) -> list[str] | None:
    """Send the alert of the decision recorded on run ``run_id`` unless a try before this one did (the run's
    ``alerted`` tag says so); returns the channels that took it, or None when it had been sent. Recorded right after
    sending: a try that dies in between sends it again on the retry (at least once), never once per retry."""
    sent = client.get_run(run_id).data.tags.get(ALERTED_TAG)
    if sent is not None:
        log.info("the alert of the decision on run %s was already sent (%s): not again", run_id, sent)
        return None
    channels = send()
    client.set_tag(run_id, ALERTED_TAG, ",".join(channels) or "none")
    return channels
