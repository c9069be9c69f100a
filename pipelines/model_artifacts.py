"""Model artifacts in MLflow: logging a fitted model into a run, reading a version's flavor, loading a version.

The one place besides :mod:`pipelines.registry_mlflow` that calls MLflow, because MLflow's model flavors
(``mlflow.sklearn``, ``mlflow.pytorch``) log and load only through the process-wide store: ``log_model`` writes into
the active run, and ``models:/`` URIs are resolved through the process-wide registry URI; neither takes a client.
So this module points the process at the store right before it logs or loads (:func:`use_store`), and logs into the
run the registry created by resuming it for that one call. Everything else about runs and versions (params, tags,
registration, aliases) goes through :class:`pipelines.registry.Registry`.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import replace
from typing import Any

import mlflow
import pandas as pd

from pipelines.registry import ModelRef

log = logging.getLogger(__name__)

MODEL_CACHE_SIZE = 4  # champion + challenger, each on up to two devices: a long-lived worker keeps no more


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


def pip_requirements(flavor: str) -> list[str]:
    """The logged model's pip requirements, stated instead of inferred: MLflow infers them by loading the model in a
    subprocess (about 5 s per logged version on 2 cores), and in a process that has torch imported it lists torch for
    an sklearn model too. The flavor's own defaults at the installed versions (the estimator's library and
    cloudpickle; torch for torch) plus what the model's input frames and preprocessing need."""
    import numpy
    import sklearn

    frames = [f"pandas=={pd.__version__}", f"numpy=={numpy.__version__}"]
    if flavor == "torch":
        return [*mlflow.pytorch.get_default_pip_requirements(), f"scikit-learn=={sklearn.__version__}", *frames]
    return [*mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True), *frames]


def log_model(tracking_uri: str, run_id: str, model: Any, flavor: str, example: pd.DataFrame) -> str:
    """Log ``model`` into run ``run_id`` with its flavor's own MLflow API; the signature describes the raw feature
    frame. Returns the logged model's URI, for :meth:`pipelines.registry.Registry.register_version`."""
    from mlflow.models import infer_signature

    use_store(tracking_uri)
    common = {
        "name": "model",
        "signature": infer_signature(example, model.predict(example)),
        "pip_requirements": pip_requirements(flavor),
    }
    with mlflow.start_run(run_id=run_id):  # the flavors log into the active run only
        if flavor == "torch":
            info = mlflow.pytorch.log_model(model, serialization_format="pickle", **common)  # keeps its preprocessing
        else:
            info = mlflow.sklearn.log_model(model, input_example=example, serialization_format="cloudpickle", **common)
    return info.model_uri


def with_flavor(ref: ModelRef, tracking_uri: str) -> ModelRef:
    """``ref`` with the flavor it was logged with (read from its MLmodel file): where and how it is loaded."""
    if ref.flavor is not None:
        return ref
    use_store(tracking_uri)
    return replace(ref, flavor="torch" if "pytorch" in mlflow.models.get_model_info(ref.uri).flavors else "sklearn")


def load_model(ref: ModelRef, tracking_uri: str, device: str = "cpu", torch_batch_rows: int | None = None) -> Any:
    """The model behind a registered version, on ``device``; reused within a process (a version never changes).

    The cache is bounded (least recently used first out), so a worker that scores version after version for
    months holds at most ``MODEL_CACHE_SIZE`` models.
    """
    ref = with_flavor(ref, tracking_uri)
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


def load_mapped(ref: ModelRef, tracking_uri: str) -> Any:
    """A torch version whose weights are memory-mapped from its artifact, not read: a page is read when a tensor is
    first used. So the client sizes a sharded model's layers without reading them, and a stage reads only its own
    layers' pages. Not cached: a stage keeps the layers it needs and lets the rest go."""
    use_store(tracking_uri)
    return mlflow.pytorch.load_model(ref.uri, map_location="cpu", mmap=True)


def stored_bytes(ref: ModelRef, tracking_uri: str) -> int:
    """Bytes of a torch version's serialized network (its weights, and a small pickle around them) as the artifact
    store lists them: nothing is downloaded or unpickled, so an unsharded run can afford to ask every time."""
    use_store(tracking_uri)
    return sum(f.file_size or 0 for f in mlflow.artifacts.list_artifacts(artifact_uri=f"{ref.uri}/data"))
