"""The Dask cluster scoring runs on: an external scheduler when one is configured, else a local one.

The same code path serves both, so moving from one machine to a cluster is a configuration change
(``DASK_SCHEDULER_ADDRESS`` or ``scoring.scheduler_address``). Workers that own a GPU declare the Dask resource
``GPU=1`` (``dask worker ... --resources GPU=1``); torch scoring asks for it, sklearn scoring stays off those workers.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from pipelines.config import Config

log = logging.getLogger(__name__)

GPU = "GPU"
CPU = "CPU"


def visible_gpus() -> int:
    """GPUs torch can see here; 0 without torch's CUDA build (imports torch, so only asked for torch models)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_cluster(n_workers: int | None = None, gpu_workers: int = 0) -> LocalCluster:
    """CPU worker processes (one thread each, one per core by default) plus ``gpu_workers`` GPU workers, on 127.0.0.1.

    Processes, not threads: sklearn's predict holds the GIL. Each GPU worker declares ``GPU=1`` and sees one device;
    when there are GPU workers, the CPU workers declare ``CPU=1`` so sklearn tasks can be kept off the GPU ones.
    """
    cluster = LocalCluster(
        n_workers=n_workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        resources={CPU: 1} if gpu_workers else None,
    )
    if gpu_workers:
        for index in range(gpu_workers):
            spec = copy.deepcopy(cluster.new_spec)
            spec["options"]["resources"] = {GPU: 1}
            spec["options"]["env"] = {"CUDA_VISIBLE_DEVICES": str(index)}
            cluster.worker_spec[f"gpu-{index}"] = spec
        cluster.sync(cluster._correct_state)
        cluster.wait_for_workers(len(cluster.worker_spec))
    return cluster


def resource_workers(client: Client, resource: str) -> set[str]:
    """Addresses of the workers that declare ``resource`` (e.g. ``GPU`` or ``CPU``)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return {address for address, info in workers.items() if info.get("resources", {}).get(resource)}


@contextmanager
def dask_client(config: Config) -> Iterator[Client]:
    """A client for the configured scheduler, or for a LocalCluster that lives as long as the context."""
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
        log.info("started a LocalCluster: %d CPU + %d GPU worker processes", len(cluster.workers) - gpus, gpus)
        yield client
