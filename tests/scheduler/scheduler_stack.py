"""Real Airflow components as processes on a temporary home, driven through the REST API as a user would.

The scheduler (LocalExecutor), the DAG processor and the API server run as the `airflow` console script, the way
`make airflow-ui` starts them (the entry point matters: it is what Dask's spawned workers used to re-import). Every
listener is on 127.0.0.1, the API port is a free one, and :meth:`AirflowStack.stop` kills each process group it
started. Other components (Celery workers) start with :meth:`AirflowStack.launch` and stop with the rest.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
USER = "admin"
# SQLite allows one writer at a time: the CLI's backfill waits for the scheduler's lock instead of failing after 5 s.
SQLITE_CONNECT_ARGS = {"timeout": 60}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def makefile_airflow_ui_env() -> dict[str, str]:
    """The plain ``airflow-ui: export NAME := value`` settings of the Makefile (those computed by make are skipped)."""
    pattern = re.compile(r"^airflow-ui: export (\w+) :?= ([^$\n]+)$", re.MULTILINE)
    return dict(pattern.findall((REPO / "Makefile").read_text()))


def stack_env(home: Path, port: int, password_file: Path, extra: dict[str, str | None]) -> dict[str, str]:
    """The environment of every component: what `make airflow-ui` sets, plus a temporary home and fast polling;
    then ``extra``, where None removes a setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "DASK_", "MLOPS_"))}
    env.update(makefile_airflow_ui_env())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{Path(__file__).stem}.SQLITE_CONNECT_ARGS",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # Poll often: the chain below is a few minutes of work, not of waiting.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The DAG files do not change during a test: parsed once at start, not again every 30 s (each parse is a
            # process importing Airflow's SDK and the DAG file, CPU the tasks need on a small machine).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        }
    )
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


class AirflowStack:
    """API server, scheduler and DAG processor on ``home``; ``api`` calls the REST API with a bearer token."""

    def __init__(self, home: Path, extra_env: dict[str, str | None]) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        password_file = home / "passwords.json"
        password_file.write_text(json.dumps({USER: self.password}))
        self.env = stack_env(home, self.port, password_file, extra_env)
        self.processes: dict[str, subprocess.Popen] = {}
        self.killed: dict[str, subprocess.Popen] = {}  # by kill(): no longer watched or stopped
        self.token: str | None = None

    def airflow(self, *args: str, timeout: float = 120) -> str:
        """One `airflow` CLI command against this home (as a user would type it); its output."""
        done = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def backfill(self, dag_id: str, first: str, last: str, wait: float = 120) -> str:
        """`airflow backfill create` over ``first..last``, repeated while Airflow says it cannot take it yet.

        On SQLite the scheduler's write can make the CLI's transaction fail at once with "database is locked" (a
        lock upgrade SQLite refuses rather than wait on); Airflow then removes the partial backfill so the command
        can simply be repeated, which is what the docs tell users to do. And a DAG takes one backfill at a time: an
        earlier backfill whose runs have all finished counts as running until the scheduler's next loop marks it
        complete, so a second one right after it is refused (``AlreadyRunningBackfill``) for a moment.
        """
        args = ("backfill", "create", "--dag-id", dag_id, "--from-date", first, "--to-date", last)
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.airflow(*args)
            except RuntimeError as error:
                transient = "database is locked" in str(error) or "AlreadyRunningBackfill" in str(error)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def start(self, database: Path | None, timeout: float = 120) -> None:
        """Start the components on a copy of ``database`` (a migrated SQLite metadata DB holding the registry
        pool), or on the database the environment names (None: migrated already)."""
        if database is not None:
            shutil.copyfile(database, self.home / "airflow.db")
        self.launch("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"])
        self.launch("scheduler", ["scheduler", "--skip-serve-logs"])
        self.launch("dag-processor", ["dag-processor"])
        self.wait_for(self._api_up, timeout, "the API server to answer")
        self.token = self._token()

    def launch(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `airflow *args` as component ``name``, in a process group (a session) of its own."""
        with (self.home / f"{name}.out").open("w") as log:
            process = subprocess.Popen(
                [AIRFLOW, *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL component ``name`` and every process it started, as a machine or container dies: its own
        process group and its descendants' (Airflow's task runner puts each task in a group of its own)."""
        import psutil

        process = self.processes.pop(name)
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for member in tree:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        process.wait()
        self.killed[name] = process

    def _api_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _token(self) -> str:
        body = json.dumps({"username": USER, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.base}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["access_token"]

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """One call to ``/api/v2{path}`` with the bearer token; the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read().decode()}") from error

    def wait_for(self, ready: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
        """Poll ``ready`` until it returns something truthy; on timeout, fail with the components' log tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}\n{self.log_tails()}")
            value = ready()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f}s for {what}\n{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        tails = []
        for name in [*self.processes, *self.killed]:
            text = (self.home / f"{name}.out").read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(tails)

    def stop(self) -> None:
        """Terminate each component's process group (its task and Dask worker processes included), then kill."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()

    # --- what the tests ask of the API -------------------------------------------------------------------------

    def unpause(self, dag_id: str) -> None:
        self.wait_for(lambda: self._dag_known(dag_id), 90, f"the DAG processor to parse {dag_id}")
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def _dag_known(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/dags/{dag_id}/details")
        except RuntimeError:
            return False
        return True

    def trigger(self, dag_id: str, conf: dict[str, Any], partition_key: str | None = None) -> str:
        body = {"logical_date": None, "conf": conf, "partition_key": partition_key}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"]

    def task_log_lines(self, level: str, states: tuple[str, ...] = ("success",)) -> list[str]:
        """Every line recorded at ``level`` in the task logs of the runs in ``states`` (task logs are JSON lines)."""
        found = []
        for dag in (self.home / "logs").glob("dag_id=*"):
            dag_id = dag.name.removeprefix("dag_id=")
            for run in (r for r in self.runs(dag_id) if r["state"] in states):
                for path in (dag / f"run_id={run['dag_run_id']}").glob("**/*.log"):
                    for line in path.read_text(errors="replace").splitlines():
                        if line.startswith("{") and json.loads(line).get("level") == level:
                            found.append(f"{path.relative_to(self.home)}: {line[:300]}")
        return found

    def listening(self) -> set[str]:
        """The addresses the components and their children (task processes, Dask workers) listen on."""
        import psutil

        pids = set()
        for process in self.processes.values():
            parent = psutil.Process(process.pid)
            pids |= {parent.pid, *(child.pid for child in parent.children(recursive=True))}
        return {c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids}

    def settled(self, *dag_ids: str) -> bool:
        """No run of these DAGs is queued or running."""
        return all(run["state"] in ("success", "failed") for dag_id in dag_ids for run in self.runs(dag_id))
