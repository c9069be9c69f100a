"""Shared fixtures: an isolated Airflow home, small demo data and a config pointing at a temporary lake.

Airflow reads its configuration when first imported, so its environment is set here, before any test module
imports it; each test session gets its own SQLite metadata database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
)
for name in ("MLOPS_CONFIG", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
    os.environ.pop(name, None)

from pipelines import demo_data  # noqa: E402  (after the environment above)
from pipelines.config import Config, load_config  # noqa: E402

SMALL = demo_data.DemoSpec(rows_per_day=600, days=10, drift_day=6, bad_rows_per_day=8)


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow exports MLFLOW_TRACKING_URI whenever a URI is set; each test starts without it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database for this session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "pools",
            "set",
            "mlops_registry",
            "1",
            "promotions and rollbacks, one at a time",
        ],
        check=True,
        capture_output=True,
    )
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of small demo data (raw events + labels), generated once per session and never modified."""
    out = tmp_path_factory.mktemp("demo")
    demo_data.generate(out, SMALL)
    return out


def write_config(directory: Path, raw: Path, **overrides: dict) -> Path:
    """The demo config pointed at ``raw`` with a lake and MLflow store inside ``directory``."""
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    config["dataset"]["source"] = str(raw / "raw" / "*.parquet")
    config["dataset"]["labels"] = str(raw / "labels" / "*.parquet")
    config["storage"]["root"] = str(directory / "lake")
    config["mlflow"]["tracking_uri"] = f"sqlite:///{directory / 'mlruns.db'}"
    config["model"]["params"] = {"max_iter": 50}
    config["scoring"] = {"partition_rows": 250, "n_workers": 2}
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def config_file(tmp_path: Path, raw_data: Path) -> Path:
    return write_config(tmp_path, raw_data)


@pytest.fixture
def config(config_file: Path) -> Config:
    return load_config(config_file)


@pytest.fixture(scope="session")
def dask_client() -> Iterator:
    """One LocalCluster of two worker processes for every test that scores."""
    from distributed import Client

    from pipelines.cluster import local_cluster

    with local_cluster(2) as cluster, Client(cluster) as client:
        yield client
