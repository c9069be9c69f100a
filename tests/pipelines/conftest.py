"""Fixtures of the library's unit tests: the demo config as it is committed, read once."""

from __future__ import annotations

import pytest
from lakes import REPO

from pipelines.config import Config, load_config


@pytest.fixture(scope="session")
def demo() -> Config:
    """``include/config/demo.yaml``, validated, with its raw features only (the units here build frames of raw
    columns; the declared features have their own tests, e.g. test_aggregates.py and test_demo_data.py); frozen, so
    no test can change it for another."""
    config = load_config(REPO / "include" / "config" / "demo.yaml")
    features = config.dataset.features.model_copy(update={"aggregates": [], "derived": {}})
    return config.model_copy(
        update={"dataset": config.dataset.model_copy(update={"features": features, "history": {}})}
    )
