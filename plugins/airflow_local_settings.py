"""Airflow's local settings hook: the process that forks the tasks imports the pipeline's libraries once, first.

Under the LocalExecutor every task runs in a process forked from a worker that the scheduler forked at start. A
task that checks drift imported Evidently, MLflow, scikit-learn and pandas itself, ~6.5 s of CPU per task on the
2-core development machine, paid again by every task of every day (a backlog of 8 days: 8 check tasks). Imported
here, in the scheduler process only, they are in every worker and task from the fork on, shared copy-on-write:
the scheduler tests ran in 104 s instead of 190 s, one session, same machine. The DAG files stay light (nothing
heavy at their top level): the DAG processor and the API server do not import this work.

The CeleryExecutor runs tasks the same way one level down: each ``airflow celery worker`` forks its pool of
processes at start and each of them forks a task's process, so there the worker preloads, and the scheduler, which
runs no task, does not.

Airflow imports this module in every process (it is on ``sys.path`` because the plugins folder is); only those two
command lines preload. A library that fails to import is logged and left to the task that needs it.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

__all__: list[str] = []  # Airflow copies every exported name into airflow.settings: nothing to override there

# The modules the tasks of the pipeline's DAGs run; Evidently, which pipelines.drift_tests imports inside its
# functions, comes through drift_tests.import_evidently.
PRELOAD = (
    "pipelines.features",
    "pipelines.scoring",
    "pipelines.training",
    "pipelines.monitoring",
    "pipelines.performance",
    "pipelines.retrain_gate",
    "pipelines.promotion",
    "pipelines.registry_mlflow",
)


def _preload() -> None:
    """Import what is not imported yet. Airflow's plugin manager runs this file again in the scheduler and in each
    forked task (whose command line is still the scheduler's): there everything is loaded, and nothing is logged."""
    if all(name in sys.modules for name in PRELOAD):
        return
    log = logging.getLogger(__name__)
    started = time.monotonic()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # the scheduler must start; the task importing it will say what is wrong
            log.warning("could not preload %s for the tasks", name, exc_info=True)
    try:
        importlib.import_module("pipelines.drift_tests").import_evidently()
    except Exception:  # as above
        log.warning("could not preload Evidently for the tasks", exc_info=True)
    log.info("preloaded the pipeline's libraries for the tasks in %.1fs", time.monotonic() - started)


def forks_tasks(argv: list[str]) -> bool:
    """A Celery worker, or the scheduler when its executor is the LocalExecutor (whose workers it forks)."""
    if argv[1:3] == ["celery", "worker"]:
        return True
    if argv[1:2] == ["scheduler"]:
        from airflow.configuration import conf  # loaded already: Airflow reads its config before this module

        return "LocalExecutor" in conf.get("core", "executor")
    return False


if forks_tasks(sys.argv):
    _preload()
