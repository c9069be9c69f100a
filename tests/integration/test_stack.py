"""The compose stack, started as local processes from docker-compose.yaml's own commands and environment.

No Docker engine runs here, so each service the compose file declares runs as the process its container would run:
PostgreSQL (Debian's build, initialised as the ``postgres`` image does, with the compose file's init SQL), Redis
(Debian's ``redis-server``, the Celery broker), an S3 server (moto's server mode stands in for MinIO, with the
buckets ``minio-buckets`` creates), ``mlflow server`` on the Postgres backend with artifacts in S3, ``airflow-init``,
the ``demo-data`` loader, a Dask scheduler with the declared number of CPU workers, and the Airflow api-server,
scheduler, dag-processor, triggerer and a Celery worker (the CeleryExecutor: the worker runs every task). Commands and
environments are read from the compose file; only what a container network provides is translated: service host
names become 127.0.0.1 with free ports, ``/opt/mlops`` becomes this checkout, and secrets are random. Once up, every
Airflow service's and Redis's health check, as the compose file writes it, passes against its process.

Then one demo day goes through the chain the way the stack runs it: ``feature_extraction`` for the day (through
``airflow dags test`` against the stack's metadata database) publishes the features event keyed by the day, and the
scheduler runs ``batch_scoring`` for that day on the stack's Dask cluster and ``drift_monitoring`` for it through the
partitioned assets. The last loaded day is scored first (``airflow dags trigger``), so the day's drift run finds a
scored day whose labels have arrived.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from compose_stack import REPO, SERVICES, Stack, dotenv, postgres, redis, sql
from services import BIN, MLFLOW_SERVER_ENV, http_ok, port_open, wait_for

DAY = date(2026, 10, 8)  # the day after the bootstrap's training window (2026-10-01 .. 2026-10-07)
LABELED = date(2026, 10, 7)  # a loaded day: scored before DAY, its labels (1 to 3 days late) partly known by DAY
# Asset-driven: unpaused for the run. Not retraining: unpausing its weekly schedule starts a run for today at once,
# and a pre-drift day does not trigger it.
DOWNSTREAM = ("batch_scoring__credit_default", "drift_monitoring__credit_default")
# Small enough to be quick, large enough that the day's 10% prediction log passes monitoring.min_rows (100).
DEMO_ARGS = ["--days", "8", "--rows-per-day", "1500"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


class Processes:
    """The stack's processes, started as compose would (in parallel, as dependencies allow), stopped all at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        # One OpenMP thread per process: on a small shared machine, model fitting with a thread per core was 10x
        # slower (21 s instead of 2 s) while the other services competed for the cores.
        env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
        with open(self.directory / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = proc
        return proc

    def output(self, name: str, chars: int = 6000) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-chars:]

    def finish(self, name: str, timeout: float = 240) -> str:
        """Wait for a one-shot service (as ``service_completed_successfully``); its output."""
        returncode = self.running[name].wait(timeout=timeout)
        assert returncode == 0, f"{name} exited with {returncode}:\n{self.output(name)}"
        return self.output(name)

    def stop(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in self.running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _healthy(check: list[str], env: dict[str, str]) -> bool:
    """Whether a health-check command succeeds (what Docker asks of it: exit status 0)."""
    done = subprocess.run(check, env={**os.environ, **env}, cwd=REPO, capture_output=True, timeout=60, check=False)
    return done.returncode == 0


def _task_logs(home: Path, lines: int = 40) -> str:
    tails = []
    for log in sorted((home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-4:]:
        tails.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(tails)


def _wait_for_run(metadata: str, dag_id: str, home: Path, timeout: float, day: date) -> str:
    """The run id of ``dag_id``'s run keyed ``day`` once it succeeds; its task logs if it fails or never ends."""
    deadline = time.monotonic() + timeout
    where = f"dag_id = '{dag_id}' AND partition_key = '{day.isoformat()}'"
    while time.monotonic() < deadline:
        rows = sql(metadata, f"SELECT run_id, state FROM dag_run WHERE {where} ORDER BY id")
        if rows and rows[0][1] == "success":
            return rows[0][0]
        assert not rows or rows[0][1] != "failed", f"{dag_id} failed:\n{_task_logs(home)}"
        time.sleep(1)
    raise AssertionError(f"{dag_id} did not succeed within {timeout:.0f}s: {rows}\n{_task_logs(home)}")


def test_one_day_runs_through_the_chain_on_the_stack_started_from_the_compose_file(tmp_path, monkeypatch):
    started = time.monotonic()

    def phase(what: str) -> None:
        print(f"[stack {time.monotonic() - started:5.1f}s] {what}", flush=True)

    stack = Stack(dotenv=dotenv())
    airflow_home = tmp_path / "airflow"
    # Test-only settings for a 2-core machine and loopback-only listening; everything else is the compose file's.
    airflow_extra = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # The scheduler's health-check server: on loopback and the port its health check is pointed at here.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(stack.port("airflow-scheduler", 8974)),
        # Parse the DAG files once (they do not change during the test), not every 30 s beside the tasks.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    }
    user, password = stack.dotenv["POSTGRES_USER"], stack.dotenv["POSTGRES_PASSWORD"]
    pg = f"postgresql://{user}:{password}@127.0.0.1:{stack.port('postgres', 5432)}"
    metadata = f"{pg}/airflow"
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(postgres(stack))
        cleanup.enter_context(redis(stack, tmp_path))
        processes = Processes(tmp_path)
        cleanup.callback(processes.stop)

        # MinIO -> moto's S3 server on the port the stack's S3 URLs now point at; the buckets minio-buckets makes.
        s3_port = stack.port("minio", 9000)
        processes.start("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], {})
        # airflow-init needs only Postgres; the MLflow server and the Dask cluster start beside it.
        processes.start("airflow-init", stack.command("airflow-init"), stack.env("airflow-init", **airflow_extra))
        processes.start(
            "mlflow", [*stack.command("mlflow"), "--workers", "1"], stack.env("mlflow", **MLFLOW_SERVER_ENV)
        )
        dask_port = stack.port("dask-scheduler", 8786)
        scheduler = [*stack.command("dask-scheduler"), "--host", "127.0.0.1"]
        processes.start("dask-scheduler", scheduler, stack.env("dask-scheduler"))
        replicas = SERVICES["dask-worker"]["deploy"]["replicas"]
        wait_for(lambda: port_open(dask_port), "dask scheduler")
        for index in range(replicas):
            worker = [*stack.command("dask-worker"), "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
            processes.start(f"dask-worker-{index}", worker, stack.env("dask-worker"))

        wait_for(lambda: http_ok(f"http://127.0.0.1:{s3_port}/moto-api/"), "S3 server")
        entrypoint = SERVICES["minio-buckets"]["entrypoint"]
        buckets = re.findall(r"\blocal/([a-z0-9.-]+)", entrypoint.split("mc mb")[1])
        s3_env = stack.env("demo-data")
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=s3_env["AWS_ENDPOINT_URL"],
            aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
            region_name=s3_env["AWS_DEFAULT_REGION"],
        )
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        mlflow_port = stack.port("mlflow", 5000)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{mlflow_port}/health"), "mlflow server", timeout=180)
        phase("postgres, S3 (buckets), mlflow server up")

        # The one-shot loader: demo data into S3, the first week extracted, the first champion registered.
        loader = stack.command("demo-data")
        loader[0] = sys.executable if loader[0] == "python" else loader[0]
        processes.start("demo-data", [*loader, *DEMO_ARGS], stack.env("demo-data"))

        # Airflow, once airflow-init completed: the api-server (tasks report through its execution API), scheduler,
        # dag-processor, triggerer and the Celery worker. Their log servers bind every interface (not configurable in
        # Airflow 3.3): skipped here, where the task logs are on the one shared disk.
        processes.finish("airflow-init")
        phase("airflow-init done")
        for name, extra in (
            ("airflow-apiserver", []),
            ("airflow-scheduler", ["--skip-serve-logs"]),
            ("airflow-dag-processor", []),
            ("airflow-triggerer", ["--skip-serve-logs"]),
            ("airflow-worker", ["--skip-serve-logs"]),
        ):
            processes.start(name, [*stack.command(name), *extra], stack.env(name, **airflow_extra))
        assert sql(metadata, "SELECT slots FROM slot_pool WHERE pool = 'mlops_registry'") == [(1,)]

        loaded = processes.finish("demo-data")
        assert "{'raw': 8, 'labels': 10, 'payments': 98}" in loaded and "{'champion': '1'}" in loaded, loaded
        phase("demo-data loaded, first champion registered")
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{dask_port}", timeout=30) as client:
            client.wait_for_workers(replicas, timeout=60)
            stack_workers = set(client.scheduler_info(n_workers=-1)["workers"])
        api_port = stack.port("airflow-apiserver", 8080)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{api_port}/api/v2/version"), "airflow api-server", timeout=120)
        wait_for(
            lambda: len(sql(metadata, f"SELECT dag_id FROM dag WHERE dag_id IN {DOWNSTREAM}")) == len(DOWNSTREAM),
            "the dag-processor parsing the DAGs",
            timeout=120,
        )

        # The compose file's health checks, run against the processes (each as its container would run it), beside
        # the chain below (each Airflow one is an interpreter importing Airflow); all of them must pass.
        def healthy(name: str) -> None:
            env = {**stack.env(name, **airflow_extra), "HOSTNAME": socket.gethostname()}  # as in a container
            wait_for(lambda: _healthy(stack.health_check(name), env), f"{name}'s health check", timeout=120)

        checked = ("redis", *(s for s in SERVICES if s.startswith("airflow-") and "healthcheck" in SERVICES[s]))
        pool = ThreadPoolExecutor(len(checked))
        cleanup.callback(pool.shutdown)
        health = [pool.submit(healthy, name) for name in checked]
        airflow_env = stack.env("airflow-scheduler", **airflow_extra)
        unpause = ["airflow", "dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^({'|'.join(DOWNSTREAM)})$"]
        processes.start("unpause", unpause, airflow_env)
        processes.finish("unpause")
        setup = time.monotonic() - started
        phase("Airflow up, DAGs parsed, downstream DAGs unpaused")

        # The last loaded day scored first (a manual run, queued ahead of DAY's), then one trigger: feature
        # extraction for the day; the scheduler does the rest through the assets, keyed by the day.
        score_labeled = ["airflow", "dags", "trigger", DOWNSTREAM[0], "-c", json.dumps({"date": LABELED.isoformat()})]
        processes.start("trigger", score_labeled, airflow_env)
        processes.finish("trigger")
        extract = [
            "airflow",
            "dags",
            "test",
            "feature_extraction__credit_default",
            "-c",
            json.dumps({"date": DAY.isoformat()}),
        ]
        processes.start("feature_extraction__credit_default", extract, airflow_env)
        processes.finish("feature_extraction__credit_default")
        phase("feature_extraction done")
        scoring_run = _wait_for_run(metadata, "batch_scoring__credit_default", airflow_home, timeout=180, day=DAY)
        phase("batch_scoring done")
        _wait_for_run(metadata, "drift_monitoring__credit_default", airflow_home, timeout=180, day=DAY)
        chain = time.monotonic() - started - setup
        for check in health:
            check.result()
        phase("every Airflow service's and Redis's health check passed")
        phase("drift_monitoring done")

        # Scored on the stack's Dask workers, with the champion, into the lake on S3: one run per day (the manual
        # run of LABELED and the asset-triggered run keyed DAY).
        keyed = sql(metadata, f"SELECT partition_key, run_type FROM dag_run WHERE dag_id = '{DOWNSTREAM[0]}'")
        assert set(keyed) == {(DAY.isoformat(), "asset_triggered"), (None, "manual")}
        drifts = sql(metadata, f"SELECT partition_key FROM dag_run WHERE dag_id = '{DOWNSTREAM[1]}'")
        assert sorted(drifts) == [(LABELED.isoformat(),), (DAY.isoformat(),)]  # each scored day checked, once
        scored = sql(
            metadata, "SELECT value FROM xcom WHERE dag_id = 'batch_scoring__credit_default' AND task_id = 'score'"
        )
        results = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in scored]
        (result,) = [r for r in results if r["day"] == DAY.isoformat()]
        assert result["day"] == DAY.isoformat() and result["model_version"] == "1"
        assert set(result["workers"]) <= stack_workers and result["workers"]

        from pipelines.config import load_config

        for name, value in stack.env("airflow-scheduler").items():  # what the stack's tasks see
            monkeypatch.setenv(name, value)
        config = load_config()
        assert config.storage.root == "s3://mlops/lake" and config.tracking_uri == f"http://127.0.0.1:{mlflow_port}"
        from pipelines.storage import Lake, Table

        features, predictions = (Lake.from_config(config).read(t, DAY) for t in (Table.FEATURES, Table.PREDICTIONS))
        assert len(predictions) == len(features) == result["rows_scored"] > 1000
        assert set(predictions["run_id"]) == {scoring_run} and set(predictions["model_version"]) == {"1"}

        # The extraction materialized the day's declared features into the stack's Redis (FEAST_REDIS): the model
        # server's lookup answers each account's latest row of the day, as extraction computed it.
        from pipelines.feature_store import OnlineLookup

        assert config.feature_store.online_store["type"] == "redis"
        aggregated = config.dataset.features.aggregated
        latest = features.sort_values(config.dataset.event_time).drop_duplicates("account_id", keep="last").head(200)
        found = OnlineLookup(config).lookup(latest[["account_id"]].to_dict("records"))
        assert found.missing == 0
        pd.testing.assert_frame_equal(found.values[aggregated], latest[aggregated].reset_index(drop=True))

        # Drift checked on the MLflow server, whose metadata is in Postgres and artifacts in S3.
        from mlflow.tracking import MlflowClient

        client = MlflowClient(config.tracking_uri)
        experiment = client.get_experiment_by_name(config.mlflow.experiment)
        (drift,) = client.search_runs(
            [experiment.experiment_id], filter_string=f"attributes.run_name = 'drift-{DAY.isoformat()}'"
        )
        assert "drift_share" in drift.data.metrics
        # Labels arrive 1-3 days late: the day's realized metric is in the performance runs, filled in as they come;
        # the day scored before it has some of its labels by DAY, so its realized metric is there.
        performance = {
            run.data.tags["day"]: run.data.metrics
            for run in client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'performance'")
        }
        assert performance[DAY.isoformat()]["scored_rows"] == result["rows_scored"]
        assert f"realized_{config.model.metric}" in performance[LABELED.isoformat()]
        assert sql(f"{pg}/mlflow", "SELECT name FROM registered_models") == [(config.model.name,)]
        reports = s3.list_objects_v2(Bucket="mlops", Prefix=f"lake/reports/date={DAY.isoformat()}/")
        assert reports["KeyCount"] > 0
        assert s3.list_objects_v2(Bucket="mlflow")["KeyCount"] > 0
        print(f"stack up + seeded in {setup:.0f}s; the chain for {DAY} in {chain:.0f}s")
