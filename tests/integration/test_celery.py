"""Airflow on Celery workers, as the compose stack runs it: two workers share the chain, and a worker lost in the
middle of a task loses no row.

Processes on 127.0.0.1: PostgreSQL (the metadata database, initialised as the compose file's ``postgres``) and
Redis (the broker, the compose file's ``redis`` command) from Debian; a Dask scheduler and worker (scoring's
cluster, as ``DASK_SCHEDULER_ADDRESS`` names it in the stack); Airflow's API server, scheduler and DAG processor
(``tests/scheduler/scheduler_stack.py``) with the CeleryExecutor settings of the compose file's Airflow services;
and two ``airflow celery worker`` processes, each with its own Celery node name and host name, as two containers
would have. The champion is registered in-process first, on earlier days in a lake of its own.

Two days go through the chain: feature extraction, then scoring and drift monitoring through the partitioned
assets, one run of each per day. While the first scoring task runs, its worker is killed with SIGKILL together with
every process it started, as when a machine is lost. Its heartbeats stop, the scheduler fails that try once
``[scheduler] task_instance_heartbeat_timeout`` has passed, and the retry runs on the other worker. Both days end
with every valid row scored once.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from compose_stack import Stack, dotenv, postgres, redis, sql
from lakes import write_config
from scheduler.scheduler_stack import AirflowStack
from services import dask_cluster

from pipelines import demo_data
from pipelines.config import load_config
from pipelines.features import extract_features
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

CHAIN = ("feature_extraction__credit_default", "batch_scoring__credit_default", "drift_monitoring__credit_default")
WORKERS = ("worker-a", "worker-b")
OVERRIDES = {"dataset": {"label_time": None}, "monitoring": {"sample_rate": 0.5, "min_new_labels": 300}}
# Test-only timing, all of it standard Airflow configuration: a lost task is declared so after 15 s without a
# heartbeat (default 300 s), looked for every 2 s, and retried at once: [core] max_task_retry_delay caps the DAGs'
# retry delay (1 minute, doubling), so the retry waits for nothing but a free worker.
TIMING = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "1",
}


def _celery_settings(stack: Stack) -> dict[str, str]:
    """What the compose file gives every Airflow service to run on Celery: the executor, the metadata database,
    the broker and the result backend (localized: Postgres and Redis here)."""
    env = stack.env("airflow-worker")
    keep = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY")
    settings = {name: value for name, value in env.items() if name.startswith(keep)}
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    return settings


def _tries(metadata: str, dag_id: str, task_id: str = "score") -> list[tuple[str, int, str, str]]:
    """Every try of ``task_id`` in ``dag_id``'s runs, finished ones included: (partition key, try, state, host)."""
    columns = "r.partition_key, t.try_number, t.state, t.hostname"
    where = f"t.dag_id = '{dag_id}' AND t.task_id = '{task_id}'"
    join = "JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id"
    rows = sql(metadata, f"SELECT {columns} FROM task_instance t {join} WHERE {where}")
    rows += sql(metadata, f"SELECT {columns} FROM task_instance_history t {join} WHERE {where}")
    return sorted(rows, key=lambda row: tuple("" if value is None else str(value) for value in row))  # NULLs too


def test_two_celery_workers_share_the_chain_and_a_lost_workers_task_is_retried_on_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    started = time.monotonic()

    def phase(what: str) -> None:
        print(f"[celery {time.monotonic() - started:5.1f}s] {what}", flush=True)

    today = datetime.now(UTC).date()
    spec = demo_data.DemoSpec(start=today - timedelta(days=5), days=5, rows_per_day=300, drift_day=5)
    demo_data.generate(tmp_path / "raw", spec)
    days = [spec.start + timedelta(days=i) for i in range(spec.days)]
    trained, chain_days = days[:3], days[3:]  # unpausing feature_extraction runs yesterday, days[4]
    registry = {"tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    for folder in ("train", "stack", "home"):
        (tmp_path / folder).mkdir()

    stack = Stack(dotenv=dotenv())
    metadata = sql_dsn(stack)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(postgres(stack))
        cleanup.enter_context(redis(stack, tmp_path))
        config_file = write_config(tmp_path / "stack", tmp_path / "raw", **OVERRIDES, mlflow=registry)
        airflow = AirflowStack(
            tmp_path / "home",
            {
                **_celery_settings(stack),
                **TIMING,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": None,  # SQLite's, not Postgres's
                "MLOPS_CONFIG": str(config_file),
            },
        )
        cleanup.callback(airflow.stop)
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # the Dask worker's pipelines
        airflow.env["DASK_SCHEDULER_ADDRESS"] = cleanup.enter_context(dask_cluster(tmp_path, [[]]))
        phase("postgres, redis, dask up")
        # Airflow comes up in the background (airflow-init's work, then the components and the two workers) while
        # the champion is trained and registered in-process.
        with ThreadPoolExecutor(1) as background:
            airflow_up = background.submit(_start_airflow, airflow)
            training = load_config(write_config(tmp_path / "train", tmp_path / "raw", **OVERRIDES, mlflow=registry))
            for day in trained:
                extract_features(training, day)
            train_and_register(training, trained[-1])
            phase("champion registered")
            airflow_up.result()
        phase("Airflow up")

        for dag_id in CHAIN:
            airflow.unpause(dag_id)  # feature_extraction's scheduled run: yesterday
        airflow.trigger(CHAIN[0], {}, partition_key=chain_days[0].isoformat())

        # The first scoring task to run: its worker is lost with everything it started.
        def scoring_host() -> str | None:
            running = [host for _, _, state, host in _tries(metadata, CHAIN[1]) if state == "running"]
            return running[0] if running else None

        lost = airflow.wait_for(scoring_host, 240, "a scoring task to run", every=0.2)
        airflow.kill(lost)
        (survivor,) = set(WORKERS) - {lost}
        phase(f"{lost} killed while scoring")

        def chain_done() -> bool:
            keys = {day.isoformat() for day in chain_days}
            runs = [r for r in airflow.runs(CHAIN[2]) if r["partition_key"] in keys and r["state"] == "success"]
            return len(runs) == len(keys) and airflow.settled(*CHAIN)

        airflow.wait_for(chain_done, 240, "both days scored and checked", every=1)
        phase("both days through the chain")

        keys = [day.isoformat() for day in chain_days]
        for dag_id in CHAIN:  # one run per day of each DAG, all successful
            runs = [run for run in _runs(metadata, dag_id) if run[0] in keys]
            assert sorted(runs) == [(key, "success") for key in keys], dag_id

        # The killed try ran on the lost worker, the retry (the next try) on the other; each other scoring ran once.
        scoring = _tries(metadata, CHAIN[1])
        retried = [key for key, number, _, _ in scoring if number > 1]
        assert len(retried) == 1, scoring
        assert [(n, state, host) for key, n, state, host in scoring if key == retried[0]] == [
            (1, "failed", lost),
            (2, "success", survivor),
        ]
        assert [(n, state) for key, n, state, _ in scoring if key != retried[0]] == [(1, "success")]
        # Both workers ran tasks of the chain: task instances record each worker's host name.
        history = "SELECT hostname FROM task_instance_history UNION SELECT hostname FROM task_instance"
        assert set(WORKERS) <= {row[0] for row in sql(metadata, history)}

    # Nothing lost, nothing twice: per day, the valid rows = scored + dead-lettered, each valid key scored once.
    lake = Lake.from_config(load_config(config_file))
    for day in chain_days:
        features = lake.read(Table.FEATURES, day, columns=["customer_id"])
        predictions = lake.read(Table.PREDICTIONS, day, columns=["customer_id"])
        dead = lake.count_rows(Table.DEAD_LETTER, day)
        assert len(features) > 250 and dead == 0
        assert len(predictions) == len(features) and predictions["customer_id"].is_unique
        assert set(predictions["customer_id"]) == set(features["customer_id"])
    phase("rows checked")


def _start_airflow(airflow: AirflowStack) -> None:
    """What the compose file's airflow-init does (the metadata schema, then the registry pool), then the API server,
    scheduler and DAG processor, and two workers as two containers would run them: a Celery node name and a host
    name each, one task at a time."""
    airflow.airflow("db", "migrate")
    airflow.airflow("pools", "set", "mlops_registry", "1", "promotions and rollbacks, one at a time")
    airflow.start(None)
    identity = {
        "PYTHONPATH": f"{airflow.env['PYTHONPATH']}{os.pathsep}{Path(__file__).parent}",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_hostname.hostname",
    }
    for name in WORKERS:
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1", "--skip-serve-logs"]
        airflow.launch(name, args, {**identity, "MLOPS_WORKER_HOSTNAME": name})


def sql_dsn(stack: Stack) -> str:
    """The metadata database's DSN here (for psycopg2)."""
    user, password = stack.dotenv["POSTGRES_USER"], stack.dotenv["POSTGRES_PASSWORD"]
    return f"postgresql://{user}:{password}@127.0.0.1:{stack.port('postgres', 5432)}/airflow"


def _runs(metadata: str, dag_id: str) -> list[tuple[str, str]]:
    return sql(metadata, f"SELECT partition_key, state FROM dag_run WHERE dag_id = '{dag_id}' ORDER BY id")
