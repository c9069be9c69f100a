"""The process that forks the tasks preloads their libraries (plugins/airflow_local_settings.py): the scheduler
under the LocalExecutor, each Celery worker under the CeleryExecutor; other Airflow processes do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lakes import REPO

HEAVY = ["pandas", "mlflow", "distributed", "sklearn", "evidently", "pandera", "pyarrow"]
# What Airflow does in each process: the plugins folder on sys.path, then `import airflow_local_settings`.
# The plugin manager then runs the file again (in the process that preloaded and in every forked task): that must
# stay silent. (Deciding for the scheduler reads Airflow's config, which starts Airflow's logging: on stdout.)
_IMPORT_AS = """
import json, logging, runpy, sys
logging.basicConfig(level=logging.INFO)
sys.argv = ["airflow", *sys.argv[1].split()]
import airflow_local_settings
runpy.run_path(airflow_local_settings.__file__)
print(json.dumps([name for name in %r if name in sys.modules]))
"""


def loaded_by(command: str) -> tuple[list[str], str]:
    """The heavy modules loaded in a process started as ``airflow <command>`` under the LocalExecutor, and what it
    logged."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS % HEAVY, command],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        },
    )
    *logged, loaded = out.stdout.strip().splitlines()
    return json.loads(loaded), "\n".join(logged) + out.stderr


@pytest.mark.integration
def test_under_the_local_executor_only_the_scheduler_preloads_the_task_libraries():
    loaded, logged = loaded_by("scheduler")
    assert loaded == HEAVY
    assert logged.count("preloaded the pipeline's libraries") == 1, logged
    for command in ("dag-processor", "api-server", "triggerer", "dags"):
        assert loaded_by(command) == ([], ""), command


@pytest.mark.unit
def test_under_the_celery_executor_the_workers_preload_and_the_scheduler_does_not(monkeypatch):
    """Which command lines preload (the import itself is the test above): a Celery worker forks the tasks under the
    CeleryExecutor, the scheduler only under the LocalExecutor."""
    import airflow_local_settings

    forks = airflow_local_settings.forks_tasks
    assert forks(["airflow", "celery", "worker", "--queues", "gpu"])
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert forks(["airflow", "scheduler"])
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    assert not forks(["airflow", "scheduler"])
    for command in (["airflow", "dag-processor"], ["airflow", "api-server"], ["airflow", "celery", "flower"]):
        assert not forks(command), command
