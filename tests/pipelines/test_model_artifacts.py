"""Model artifacts: the bounded model cache, keyed by version and device."""

from __future__ import annotations

import pytest

from pipelines import model_artifacts
from pipelines.registry import ModelRef

pytestmark = pytest.mark.unit


def test_model_cache_is_bounded_and_keyed_by_version_and_device(monkeypatch):
    import mlflow.sklearn

    loads: list[str] = []
    monkeypatch.setattr(mlflow.sklearn, "load_model", lambda uri: loads.append(uri) or object())
    monkeypatch.setattr(model_artifacts, "use_store", lambda uri: None)
    model_artifacts._load.cache_clear()
    refs = [ModelRef("m", str(v), None, flavor="sklearn") for v in range(1, 8)]
    first = model_artifacts.load_model(refs[0], "sqlite:///unused.db")
    assert model_artifacts.load_model(refs[0], "sqlite:///unused.db") is first and loads == ["models:/m/1"]
    for ref in refs:
        model_artifacts.load_model(ref, "sqlite:///unused.db")
    assert model_artifacts._load.cache_info().currsize == model_artifacts.MODEL_CACHE_SIZE < len(refs)
    model_artifacts.load_model(refs[0], "sqlite:///unused.db")  # evicted long ago: loaded again
    assert loads.count("models:/m/1") == 2
    model_artifacts._load.cache_clear()
