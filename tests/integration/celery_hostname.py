"""``[core] hostname_callable`` of the Celery test's workers: two workers on one machine, each reporting the host
name its own container would give it (task instances record the host name of the worker that ran them)."""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["MLOPS_WORKER_HOSTNAME"]
