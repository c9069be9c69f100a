"""Running the project's DAGs in-process with ``dag.test()``, as the e2e tests do.

The DAGs are generated per config file at parse time, and ``dag.test()`` parses the folder again to serialize
them: set ``MLOPS_CONFIG`` (one model) or ``MLOPS_CONFIGS`` (a glob) for the whole test, before :func:`load_dags`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pendulum
from airflow.dag_processing.dagbag import BundleDagBag

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_dags() -> dict:
    """The DAG folder parsed as the DAG processor does (the folder is the bundle root, so `_support` imports)."""
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    assert bag.import_errors == {}
    return bag.dags


def run_dag(dags: dict, dag_id: str, day: date | None = None, logical=None, **conf) -> str:
    """One run for ``day`` (logical date = the end of the day) or at ``logical``; returns the run's state."""
    logical = logical or pendulum.datetime(day.year, day.month, day.day, tz="UTC").add(days=1)
    dag_run = dags[dag_id].test(logical_date=logical, run_conf=conf or None)
    return str(getattr(dag_run.state, "value", dag_run.state))
