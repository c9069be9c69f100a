"""The model cache: bounded, keyed by version and device."""

from __future__ import annotations

import pytest

from pipelines import registry

pytestmark = pytest.mark.unit


def test_model_cache_is_bounded_and_keyed_by_version_and_device(monkeypatch):
    import mlflow.sklearn

    loads: list[str] = []
    monkeypatch.setattr(mlflow.sklearn, "load_model", lambda uri: loads.append(uri) or object())
    for setter in ("set_tracking_uri", "set_registry_uri"):
        monkeypatch.setattr(mlflow, setter, lambda uri: None)
    registry._load.cache_clear()
    refs = [registry.ModelRef("m", str(v), None) for v in range(1, 8)]
    first = registry.load_model(refs[0], "sqlite:///unused.db")
    assert registry.load_model(refs[0], "sqlite:///unused.db") is first and loads == ["models:/m/1"]
    for ref in refs:
        registry.load_model(ref, "sqlite:///unused.db")
    assert registry._load.cache_info().currsize == registry.MODEL_CACHE_SIZE < len(refs)
    registry.load_model(refs[0], "sqlite:///unused.db")  # evicted long ago: loaded again
    assert loads.count("models:/m/1") == 2
    registry._load.cache_clear()
