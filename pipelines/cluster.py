"""The Dask cluster scoring runs on: an external scheduler when one is configured, else a local one.

The same code path serves both, so moving from one machine to a cluster is a configuration change
(``DASK_SCHEDULER_ADDRESS`` or ``scoring.scheduler_address``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from pipelines.config import Config

log = logging.getLogger(__name__)


def local_cluster(n_workers: int | None = None) -> LocalCluster:
    """Worker processes (one thread each) on 127.0.0.1: sklearn's predict holds the GIL, processes sidestep it."""
    return LocalCluster(
        n_workers=n_workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


@contextmanager
def dask_client(config: Config) -> Iterator[Client]:
    """A client for the configured scheduler, or for a LocalCluster that lives as long as the context."""
    address = config.scheduler_address
    if address:
        log.info("using the Dask scheduler at %s", address)
        with Client(address) as client:
            yield client
        return
    with local_cluster(config.scoring.n_workers) as cluster, Client(cluster) as client:
        log.info("started a LocalCluster with %d worker processes", len(cluster.workers))
        yield client
