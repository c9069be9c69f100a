"""The scheduler preloads the task libraries (plugins/airflow_local_settings.py); other Airflow processes do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lakes import REPO

HEAVY = ["pandas", "mlflow", "distributed", "sklearn", "evidently", "pandera", "pyarrow"]
# What Airflow does in each process: the plugins folder on sys.path, then `import airflow_local_settings`.
# The plugin manager then runs the file again (in the scheduler and in every forked task): that must stay silent.
_IMPORT_AS = """
import json, logging, runpy, sys
logging.basicConfig(level=logging.INFO)
sys.argv = ["airflow", sys.argv[1]]
import airflow_local_settings
runpy.run_path(airflow_local_settings.__file__)
print(json.dumps([name for name in %r if name in sys.modules]))
"""


def loaded_by(command: str) -> tuple[list[str], str]:
    """The heavy modules loaded in a process started as ``airflow <command>``, and what it logged."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS % HEAVY, command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])},
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.integration
def test_only_the_scheduler_preloads_the_task_libraries():
    loaded, logged = loaded_by("scheduler")
    assert loaded == HEAVY
    assert logged.count("preloaded the pipeline's libraries") == 1, logged
    for command in ("dag-processor", "api-server", "triggerer", "dags"):
        assert loaded_by(command) == ([], ""), command
