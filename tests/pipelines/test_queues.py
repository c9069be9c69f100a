"""The worker queue of the scoring task: ``gpu`` only where the task itself starts GPU Dask workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakes import write_config

from pipelines.config import load_config
from pipelines.queues import GPU_QUEUE, scoring_queue

pytestmark = pytest.mark.unit

TORCH = {"name": "credit_default_torch", "flavor": "torch", "estimator": None, "params": {"epochs": 1}}


def _config(tmp_path: Path, model: dict | None = None, **scoring):
    return load_config(write_config(tmp_path, tmp_path, mlflow_store=False, model=model or {}, scoring=scoring))


@pytest.fixture(autouse=True)
def _no_scheduler_from_the_environment(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)


def test_torch_scoring_that_starts_gpu_workers_goes_to_the_gpu_queue(tmp_path):
    assert scoring_queue(_config(tmp_path, TORCH, gpu_workers=1)) == GPU_QUEUE == "gpu"
    assert scoring_queue(_config(tmp_path, TORCH, gpu_workers=4, n_workers=1)) == "gpu"


@pytest.mark.parametrize(
    ("model", "scoring", "why"),
    [
        ({}, {"gpu_workers": 1}, "sklearn never uses a GPU"),
        (TORCH, {}, "gpu_workers unset: which machine has GPUs is not known when the DAG is parsed"),
        (TORCH, {"gpu_workers": 0}, "no GPU workers asked for"),
        (TORCH, {"gpu_workers": 1, "scheduler_address": "tcp://dask:8786"}, "the GPUs are the Dask cluster's"),
    ],
)
def test_everything_else_stays_on_the_default_queue(tmp_path, model, scoring, why):
    assert scoring_queue(_config(tmp_path, model, **scoring)) is None, why


def test_an_external_scheduler_from_the_environment_counts_too(tmp_path, monkeypatch):
    """DASK_SCHEDULER_ADDRESS wins over the config at run time, so it decides the queue as well."""
    config = _config(tmp_path, TORCH, gpu_workers=1)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://dask-scheduler:8786")
    assert scoring_queue(config) is None
