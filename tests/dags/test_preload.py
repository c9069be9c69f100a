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
_IMPORT_AS = """
import json, sys
sys.argv = ["airflow", sys.argv[1]]
import airflow_local_settings
print(json.dumps([name for name in %r if name in sys.modules]))
"""


def loaded_by(command: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS % HEAVY, command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_only_the_scheduler_preloads_the_task_libraries():
    assert loaded_by("scheduler") == HEAVY
    for command in ("dag-processor", "api-server", "triggerer", "dags"):
        assert loaded_by(command) == [], command
