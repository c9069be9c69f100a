"""Real services as local processes on 127.0.0.1 for integration tests: each is stopped when its context ends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
# `mlflow server` also starts a job runner by default (seven huey consumer processes, each importing MLflow) for
# GenAI jobs and trace rollups; this project submits none, so the test servers run without it.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` (bounded in time) until it returns truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status < 500


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def moto_s3(directory: Path) -> Iterator[str]:
    """An S3-compatible server (moto's server mode); yields its endpoint URL."""
    port = free_port()
    with process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], directory / "moto.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/moto-api/"), "moto server")
        yield url


@contextmanager
def dask_cluster(directory: Path, workers: list[list[str]]) -> Iterator[str]:
    """``dask scheduler`` plus one ``dask worker`` process per entry of extra worker arguments; yields the address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    with process(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
        directory / "scheduler.log",
    ):
        wait_for(lambda: port_open(port), "dask scheduler")
        with _workers(dask, address, workers, directory):
            from distributed import Client

            with Client(address) as client:
                client.wait_for_workers(len(workers), timeout=60)
            yield address


@contextmanager
def _workers(dask: str, address: str, workers: list[list[str]], directory: Path) -> Iterator[None]:
    if not workers:
        yield
        return
    extra, rest = workers[0], workers[1:]
    args = [
        dask,
        "worker",
        address,
        "--host",
        "127.0.0.1",
        "--nthreads",
        "1",
        "--dashboard-address",
        "127.0.0.1:0",
        *extra,
    ]
    with process(args, directory / f"worker-{len(rest)}.log"), _workers(dask, address, rest, directory):
        yield


@contextmanager
def mlflow_server(directory: Path) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and artifact serving; yields its URL."""
    port = free_port()
    args = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{directory / 'server.db'}",
        "--artifacts-destination",
        str(directory / "server-artifacts"),
        "--serve-artifacts",
        "--workers",
        "1",
        "--allowed-hosts",
        f"127.0.0.1:{port},localhost:{port}",
    ]
    with process(args, directory / "mlflow.log", env=MLFLOW_SERVER_ENV):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/health"), "mlflow server", timeout=120)
        yield url
