"""The Dask cluster scoring runs on: an external scheduler when one is configured, else a local one.

The same code path serves both, so moving from one machine to a cluster is a configuration change
(``DASK_SCHEDULER_ADDRESS`` or ``scoring.scheduler_address``). Workers that own a GPU declare the Dask resource
``GPU=1`` (``dask worker ... --resources GPU=1``); torch scoring asks for it, sklearn scoring stays off those workers.

The local cluster's workers are fresh interpreters (``python -m dask spec``), not multiprocessing children of the
calling process. Dask's ``LocalCluster`` starts workers with multiprocessing "spawn", which re-imports the parent's
``__main__``: inside an Airflow task that is the ``airflow`` entry point, which configures Airflow again and dies on
the metadata-DB URL Airflow deliberately invalidates in tasks, so scoring could not start under the scheduler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client, Scheduler, SpecCluster
from distributed.deploy.subprocess import SubprocessWorker

from pipelines.config import Config

log = logging.getLogger(__name__)

GPU = "GPU"
CPU = "CPU"
START_TIMEOUT_S = 120  # workers import dask, pandas and the pipeline on start; a 2-core machine under load is slow
ORPHAN_TIMEOUT_S = 60  # a worker whose scheduler is gone (its task was killed) exits after this long


def visible_gpus() -> int:
    """GPUs torch can see here; 0 without torch's CUDA build (imports torch, so only asked for torch models)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class WorkerProcess(SubprocessWorker):
    """A Dask worker (a Nanny) in a fresh ``python -m distributed.cli.dask_spec`` interpreter with our ``sys.path``.

    Dask's own ``SubprocessWorker``, except that the child gets this process's ``sys.path`` as ``PYTHONPATH``, as
    multiprocessing's spawn would have given it: tasks may refer to modules importable here only through a path
    added at run time (the DAG folder inside an Airflow task, a test module under pytest).
    """

    async def _start(self) -> None:
        spec = json.dumps({"cls": self.worker_class, "opts": self.worker_kwargs})
        cmd = [sys.executable, "-m", "distributed.cli.dask_spec", self.scheduler, "--spec", spec]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = await asyncio.create_subprocess_exec(*cmd, env=env)


def worker_specs(
    n_workers: int, gpu_workers: int, memory_limit: str | int | None = None, gpu_devices: int | None = None
) -> dict[str, dict[str, Any]]:
    """SpecCluster worker specs: ``n_workers`` CPU workers and ``gpu_workers`` GPU workers, one thread each.

    Each is a Nanny in its own interpreter (so a killed worker process is restarted). Each GPU worker declares
    ``GPU=1`` and sees one device (``CUDA_VISIBLE_DEVICES``): its own, or, given ``gpu_devices``, device
    ``i % gpu_devices``, so several worker processes can feed one GPU. When there are GPU workers, the CPU workers
    declare ``CPU=1`` so sklearn tasks can be kept off the GPU ones. ``memory_limit`` (e.g. ``"1GiB"``) is each
    worker's; Dask's default otherwise (the machine's memory shared out).
    """

    def spec(name: str, resources: dict[str, int] | None, env: dict[str, str] | None) -> dict[str, Any]:
        options = {
            "name": name,
            "host": "127.0.0.1",
            "nthreads": 1,  # processes, not threads: sklearn's predict holds the GIL
            "dashboard_address": "127.0.0.1:0",
            "silence_logs": logging.WARNING,
            "death_timeout": ORPHAN_TIMEOUT_S,
            **({"resources": resources} if resources else {}),
            **({"env": env} if env else {}),
            **({"memory_limit": memory_limit} if memory_limit is not None else {}),
        }
        return {"cls": WorkerProcess, "options": {"name": name, "worker_kwargs": options}}

    cpu_resources = {CPU: 1} if gpu_workers else None
    specs = {f"cpu-{i}": spec(f"cpu-{i}", cpu_resources, None) for i in range(n_workers)}
    devices = gpu_devices or gpu_workers or 1
    specs.update(
        {f"gpu-{i}": spec(f"gpu-{i}", {GPU: 1}, {"CUDA_VISIBLE_DEVICES": str(i % devices)}) for i in range(gpu_workers)}
    )
    return specs


def local_cluster(
    n_workers: int | None = None,
    gpu_workers: int = 0,
    memory_limit: str | int | None = None,
    gpu_devices: int | None = None,
) -> SpecCluster:
    """A scheduler in this process on 127.0.0.1 and CPU + GPU worker processes, returned once all have joined.

    CPU workers default to one per core. Built from public ``SpecCluster`` worker specs; see the module docstring
    for why the workers are started as fresh interpreters.
    """
    scheduler = {
        "cls": Scheduler,
        "options": {"host": "127.0.0.1", "port": 0, "dashboard": True, "dashboard_address": "127.0.0.1:0"},
    }
    specs = worker_specs(n_workers or os.cpu_count() or 1, gpu_workers, memory_limit, gpu_devices)
    cluster = SpecCluster(workers=specs, scheduler=scheduler, name="mlops-local", silence_logs=logging.WARNING)
    try:
        cluster.wait_for_workers(len(specs), timeout=START_TIMEOUT_S)
    except BaseException:
        cluster.close()
        raise
    return cluster


def resource_workers(client: Client, resource: str) -> set[str]:
    """Addresses of the workers that declare ``resource`` (e.g. ``GPU`` or ``CPU``)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {address for address, info in workers.items() if info.get("resources", {}).get(resource)}


@contextmanager
def dask_client(config: Config) -> Iterator[Client]:
    """A client for the configured scheduler, or for a local cluster that lives as long as the context."""
    address = config.scheduler_address
    if address:
        log.info("using the Dask scheduler at %s", address)
        with Client(address) as client:
            yield client
        return
    gpus = config.scoring.gpu_workers
    if gpus is None:
        gpus = visible_gpus() if config.model.flavor == "torch" else 0
    with local_cluster(config.scoring.n_workers, gpus) as cluster, Client(cluster) as client:
        log.info("started a local Dask cluster: %d CPU + %d GPU worker processes", len(cluster.workers) - gpus, gpus)
        yield client
