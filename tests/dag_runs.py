"""The project's DAGs as Airflow parses them, and runs of them in-process with ``dag.test()``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pendulum
from airflow.dag_processing.dagbag import BundleDagBag

DAGS = Path(__file__).resolve().parents[1] / "dags"


def load_bag() -> BundleDagBag:
    """The DAG folder parsed as the DAG processor does (the folder is the bundle root, so `_support` imports)."""
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    assert bag.import_errors == {}
    return bag


def load_dags() -> dict:
    """A fresh parse of the DAG folder, by DAG id (a DAG object's params keep one run's conf for the next)."""
    return load_bag().dags


def dag_run(dags: dict, dag_id: str, day: date | None = None, logical=None, **conf):
    """One run for ``day`` (logical date = the end of the day) or at ``logical``; returns the finished DagRun."""
    logical = logical or pendulum.datetime(day.year, day.month, day.day, tz="UTC").add(days=1)
    return dags[dag_id].test(logical_date=logical, run_conf=conf or None)


def run_dag(dags: dict, dag_id: str, day: date | None = None, logical=None, **conf) -> str:
    """As :func:`dag_run`, returning the run's state."""
    state = dag_run(dags, dag_id, day, logical, **conf).state
    return str(getattr(state, "value", state))


def task_tries(run) -> dict[str, tuple[str, int]]:
    """Each task instance of a DagRun, from the metadata DB: its state and how many tries it took."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        )
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in found}
