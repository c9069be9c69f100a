"""Which worker queue a task is sent to: ``gpu`` for scoring that needs the worker's own GPUs, the default else.

Under Airflow's CeleryExecutor a task runs on a worker that listens on its queue (``airflow celery worker
--queues gpu`` on a machine with GPUs; every other worker takes the default queue). Only one task here needs a
particular machine: scoring a torch model when the task starts its own Dask cluster with ``scoring.gpu_workers``
GPU workers, which must run where the GPUs are. With an external Dask scheduler the task is only a client (the GPUs
belong to the Dask cluster's workers, which scoring finds by their ``GPU`` resource), and sklearn models never use
a GPU: those tasks stay on the default queue, so a deployment without a GPU worker never leaves a task waiting on a
queue no worker serves. ``scoring.gpu_workers`` left unset (one per GPU the task's machine happens to have) routes
nothing: a queue is chosen when the DAG file is parsed, before any machine is known. The LocalExecutor
(``make airflow-ui``) ignores queues.

The choice is made where the DAG processor parses the DAG files and must hold where the task runs, so the DAG
processor and the workers need the same ``DASK_SCHEDULER_ADDRESS`` (the compose file gives every Airflow service
one environment).
"""

from __future__ import annotations

from pipelines.config import Config

GPU_QUEUE = "gpu"


def scoring_queue(config: Config) -> str | None:
    """``gpu`` when the scoring task starts GPU Dask workers itself, else None: Airflow's default queue
    (``[operators] default_queue``)."""
    starts_gpu_workers = config.scheduler_address is None and bool(config.scoring.gpu_workers)
    return GPU_QUEUE if config.model.flavor == "torch" and starts_gpu_workers else None
