"""Fixtures of the library's unit tests: the demo config as it is committed, read once."""

from __future__ import annotations

import pytest
from lakes import REPO

from pipelines.config import Config, load_config


@pytest.fixture(scope="session")
def demo() -> Config:
    """``include/config/demo.yaml``, validated; frozen, so no test can change it for another."""
    return load_config(REPO / "include" / "config" / "demo.yaml")
