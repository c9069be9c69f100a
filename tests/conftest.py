"""Shared fixtures: an isolated Airflow home, small demo data and a config pointing at a temporary lake.

Airflow reads its configuration when first imported, so its environment is set here, before any test module
imports it; each test session gets its own SQLite metadata database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)  # one per test process, gone when it exits
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "NML_DISABLE_USAGE_LOGGING": "1",  # NannyML's usage telemetry (the estimators' oracle), off before any import
    }
)
for name in ("MLOPS_CONFIG", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS"):
    os.environ.pop(name, None)

from lakes import SMALL, extract_and_train, write_config  # noqa: E402  (after the environment above)

from pipelines import demo_data  # noqa: E402
from pipelines.config import Config, load_config  # noqa: E402

MARKERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test says what kind it is, once, so `-m unit` (make test-fast) selects exactly the quick ones."""
    wrong = [item.nodeid for item in items if sum(bool(item.get_closest_marker(m)) for m in MARKERS) != 1]
    if wrong:
        raise pytest.UsageError(f"tests without exactly one of the markers {', '.join(MARKERS)}: {', '.join(wrong)}")


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests() -> Iterator[None]:
    """MLflow exports MLFLOW_TRACKING_URI whenever a URI is set, and that variable overrides a config's store: cleared
    before each test and after it, so neither the next test nor a module fixture built before it inherits a store."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Airflow metadata database, migrated and holding the registry pool, made once per session.

    Every fresh Airflow home of the session (its own, the scheduler stack's) starts as a copy of this SQLite file
    instead of running ``airflow db migrate`` and ``airflow pools set`` again: two interpreters that import Airflow,
    several seconds of CPU each, for the same bytes.
    """
    home = tmp_path_factory.mktemp("airflow-template")
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    pool = ["mlops_registry", "1", "promotions and rollbacks, one at a time"]
    for args in (["db", "migrate"], ["pools", "set", *pool]):
        subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True, capture_output=True)
    return home / "airflow.db"


@pytest.fixture(scope="session")
def airflow_db(migrated_airflow_db: Path) -> Path:
    """A migrated Airflow metadata database for this session (a copy of the template)."""
    shutil.copyfile(migrated_airflow_db, _AIRFLOW_HOME / "airflow.db")
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of small demo data (raw events + labels), generated once per session and never modified."""
    out = tmp_path_factory.mktemp("demo")
    demo_data.generate(out, SMALL)
    return out


@pytest.fixture(scope="session")
def build_lake(tmp_path_factory: pytest.TempPathFactory, raw_data: Path) -> Callable[..., Config]:
    """Factory for a lake + MLflow store of its own: ``build_lake(n_days, train_day, **overrides)`` writes the config
    (``overrides`` as in ``lakes.write_config``), extracts ``n_days`` from ``lakes.START`` and, given ``train_day``,
    trains and registers the champion on the window ending there. Session-scoped so module fixtures can use it."""

    def build(n_days: int = 0, train_day: date | None = None, **overrides: Any) -> Config:
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # set by MLflow when the test used another store; it would win
        config = load_config(write_config(tmp_path_factory.mktemp("lake"), raw_data, **overrides))
        extract_and_train(config, n_days, train_day)
        return config

    return build


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


@pytest.fixture
def scheduler_address(dask_client, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's Dask cluster as the configured external scheduler (``DASK_SCHEDULER_ADDRESS``), as the demo does:
    DAG runs then score on it instead of starting a LocalCluster each."""
    address = dask_client.scheduler.address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    return address


@pytest.fixture(scope="session")
def dag_bag():
    """The DAG folder parsed once, as the DAG processor does (the folder is the bundle root, so ``_support``
    imports), for the checks that only read the DAGs."""
    from dag_runs import load_bag

    return load_bag()


@pytest.fixture
def dags(airflow_db: Path) -> dict:
    """The DAGs parsed afresh for each test that runs them: in-process ``dag.test()`` keeps one run's conf in the
    DAG's params, which a later run of the same DAG object would inherit."""
    from dag_runs import load_bag

    return load_bag().dags


@pytest.fixture
def alert_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real SMTP server on 127.0.0.1, reached through the Airflow connection that ``alert_inbox.SMTP_ALERTS``
    names (set as ``AIRFLOW_CONN_<ID>``, as a deployment would); yields its inbox and stops with the test."""
    from alert_inbox import SMTP_CONN_ID, smtp_server

    with smtp_server() as (inbox, connection):
        monkeypatch.setenv(f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}", connection)
        yield inbox
