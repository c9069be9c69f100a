"""The local cluster's worker specs: GPU workers' devices and resources, CPU workers' resources, memory limits."""

from __future__ import annotations

import pytest

from pipelines.cluster import worker_specs

pytestmark = pytest.mark.unit


def _options(specs: dict, name: str) -> dict:
    return specs[name]["options"]["worker_kwargs"]


def test_gpu_workers_see_one_device_each_or_share_the_ones_there_are():
    own = worker_specs(1, 2)
    assert [_options(own, f"gpu-{i}")["env"]["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0", "1"]
    assert _options(own, "gpu-1")["resources"] == {"GPU": 1} and _options(own, "cpu-0")["resources"] == {"CPU": 1}
    shared = worker_specs(0, 4, gpu_devices=1)  # four worker processes feeding one GPU
    assert {_options(shared, f"gpu-{i}")["env"]["CUDA_VISIBLE_DEVICES"] for i in range(4)} == {"0"}
    assert [
        _options(worker_specs(0, 3, gpu_devices=2), f"gpu-{i}")["env"]["CUDA_VISIBLE_DEVICES"] for i in range(3)
    ] == [
        "0",
        "1",
        "0",
    ]


def test_memory_limit_is_set_only_when_given():
    assert "memory_limit" not in _options(worker_specs(1, 0), "cpu-0")
    assert "resources" not in _options(worker_specs(1, 0), "cpu-0")  # no GPU workers: CPU workers declare nothing
    assert _options(worker_specs(1, 1, memory_limit="1GiB"), "gpu-0")["memory_limit"] == "1GiB"
