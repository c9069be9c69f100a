"""Serving benchmark: dynamic batching against one-request-at-a-time, tail latency, memory, log completeness.

    .venv/bin/python bench/serving.py                       # ~2 minutes on 2 cores
    .venv/bin/python bench/serving.py --seconds 20 --memory-requests 200000

One run, printed. It trains the demo's model on a few days of demo data into a temporary registry, then starts
``python -m pipelines.serving`` on 127.0.0.1 twice over the same model: batching off (``max_batch_rows: 1``) and
on (the config's defaults). A load generator (asyncio, raw HTTP/1.1 keep-alive, one row per request, unique keys)
measures
  (a) throughput with 64 concurrent clients, both servers; goal: on >= 5 x off;
  (b) p99 latency at half the saturated throughput (open loop, fixed arrival rate) on the batching server;
      goal: <= 2 x max_wait_ms + the model's predict time for a full batch (measured here, in process);
  (c) the server's RSS after each round of requests (goal: flat), and
  (d) after a SIGTERM, online rows in the prediction log = answered requests whose key is sampled (goal: equal).
The load generator shares the machine's cores with the server (on 2 cores, a large share of one), and so do any
other processes: latencies measured on a busy machine include time the server spends waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
LOG_DAY = date(2031, 6, 1)


def prepare(workdir: Path) -> Path:
    """Demo data, features for four days and one trained champion in a temporary lake and registry."""
    from pipelines import demo_data
    from pipelines.config import load_config
    from pipelines.features import extract_features
    from pipelines.training import train_and_register

    spec = demo_data.DemoSpec(rows_per_day=2000, days=5)
    demo_data.generate(workdir / "data", spec)
    raw = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    raw["dataset"]["source"] = str(workdir / "data/raw/*.parquet")
    raw["dataset"]["labels"] = str(workdir / "data/labels/*.parquet")
    raw["storage"]["root"] = str(workdir / "lake")
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{workdir / 'mlruns.db'}"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    for i in range(4):
        extract_features(config, spec.start + timedelta(days=i))
    train_and_register(config, spec.start + timedelta(days=3))
    return path


def batch_predict_seconds(config_path: Path, rows: list[dict]) -> float:
    """Median time of the batch path's frame scorer on one full batch, with the served model: the model's part
    of a batch's latency."""
    from pipelines import registry
    from pipelines.config import load_config
    from pipelines.scoring import score_frame
    from pipelines.serving.schema import parse_rows

    config = load_config(config_path)
    client = registry.connect(config)
    ref = registry.require_alias(client, config.model.name)
    model = registry.load_model(ref, config.tracking_uri)
    threadpool_limits(1)  # as the server runs it (pipelines.serving.__main__ sets OMP_NUM_THREADS=1)
    frame = parse_rows(json.dumps(rows[: config.serving.max_batch_rows]).encode(), config, 10**6)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        score_frame(frame, model, config)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config_path: Path, serving: dict, workdir: Path, name: str) -> tuple[subprocess.Popen, int]:
    raw = yaml.safe_load(config_path.read_text())
    raw["serving"] = serving
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    port = free_port()
    command = [sys.executable, "-m", "pipelines.serving", "--config", str(path), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"server {name} not ready in 90 s")


class Connection:
    """One keep-alive HTTP/1.1 connection: the cheapest client Python has, so the server is what is measured."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        head = f"POST {self.path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed a connection idle past its keep-alive timeout: reopen, resend
            self.writer.close()
            await self.open()
            self.writer.write(request)
            status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return int(status_line.split()[1]), await self.reader.readexactly(length)


class Load:
    """Requests with unique keys, and what came back."""

    def __init__(self, rows: list[dict], key: str, event_time: str, prefix: str) -> None:
        self.rows, self.key, self.event_time, self.prefix = rows, key, event_time, prefix
        self.sent = 0
        self.answered: list[str] = []
        self.errors = 0

    def body(self) -> tuple[str, bytes]:
        row = self.rows[self.sent % len(self.rows)]
        key = f"{self.prefix}-{self.sent}"
        self.sent += 1
        return key, json.dumps({**row, self.key: key, self.event_time: f"{LOG_DAY}T12:00:00+00:00"}).encode()

    async def one(self, connection: Connection) -> float:
        key, body = self.body()
        started = time.perf_counter()
        status, _ = await connection.post(body)
        if status == 200:
            self.answered.append(key)
        else:
            self.errors += 1
        return time.perf_counter() - started


async def closed_loop(port: int, path: str, load: Load, clients: int, seconds: float, limit: int) -> float:
    """``clients`` connections each sending its next request when the last is answered; answered requests/s."""
    connections = [Connection(port, path) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    stop = time.monotonic() + seconds
    before = len(load.answered)

    async def client(connection: Connection) -> None:
        while time.monotonic() < stop and load.sent < limit:
            await load.one(connection)

    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in connections))
    elapsed = time.monotonic() - started
    for c in connections:
        c.writer.close()
    return (len(load.answered) - before) / elapsed


async def open_loop(port: int, path: str, load: Load, rate: float, seconds: float) -> np.ndarray:
    """Requests at a fixed rate (whether or not earlier ones were answered); the latencies, in seconds."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(128):
        connection = Connection(port, path)
        await connection.open()
        pool.put_nowait(connection)
    latencies: list[float] = []

    async def fire() -> None:
        connection = await pool.get()
        latencies.append(await load.one(connection))
        pool.put_nowait(connection)

    tasks = []
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(fire()))
    await asyncio.gather(*tasks)
    return np.array(latencies)


def rss_mib(process: subprocess.Popen) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def count_logged(config_path: Path, answered: list[str], prefix: str) -> tuple[int, int]:
    """(answered requests whose key the log samples, online rows of those keys in the log partition)."""
    from pipelines.config import load_config
    from pipelines.serving.routing import logged
    from pipelines.storage import Lake, Table

    config = load_config(config_path)
    sampled = int(logged(pd.Series(answered), config.monitoring.sample_rate).sum())
    lake = Lake.from_config(config)
    if not lake.exists(Table.PREDICTION_LOG, LOG_DAY):
        return sampled, 0
    keys = lake.read(Table.PREDICTION_LOG, LOG_DAY, [config.dataset.key])[config.dataset.key]
    return sampled, int(keys.str.startswith(f"{prefix}-").sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput / latency measurement")
    parser.add_argument("--memory-requests", type=int, default=60_000, help="requests in the memory rounds")
    args = parser.parse_args(argv)
    from pipelines.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        print("preparing a registry (demo data, features, one trained model) ...", flush=True)
        config_path = prepare(workdir)
        config = load_config(config_path)
        defaults = config.serving
        features = pd.read_parquet(Path(config.storage.root) / "features")
        features = features[[config.dataset.key, *config.dataset.features.all]].head(5000)
        rows = features.astype(object).where(features.notna(), None).to_dict("records")
        predict_s = batch_predict_seconds(config_path, rows)
        path = f"/v1/models/{config.model.name}:predict"
        key, event_time = config.dataset.key, config.dataset.event_time
        results: dict[str, float] = {}

        off, port = start_server(config_path, {"max_batch_rows": 1, "max_wait_ms": 0}, workdir, "off")
        try:
            load = Load(rows, key, event_time, "off")
            asyncio.run(closed_loop(port, path, load, args.clients, 2, 10**9))  # warm up
            results["off"] = asyncio.run(closed_loop(port, path, load, args.clients, args.seconds, 10**9))
            print(f"batching off: {results['off']:.0f} req/s", flush=True)
        finally:
            off.send_signal(signal.SIGTERM)
            off.wait(60)

        on, port = start_server(config_path, {"log_flush_s": 5.0}, workdir, "on")
        try:
            load = Load(rows, key, event_time, "on")
            asyncio.run(closed_loop(port, path, load, args.clients, 2, 10**9))
            results["on"] = asyncio.run(closed_loop(port, path, load, args.clients, args.seconds, 10**9))
            print(f"batching on: {results['on']:.0f} req/s", flush=True)
            rate = results["on"] / 2
            latencies = asyncio.run(open_loop(port, path, load, rate, args.seconds))
            quarter = asyncio.run(open_loop(port, path, load, rate / 2, args.seconds))  # how the tail falls with load
            memory = [rss_mib(on)]
            per_round = args.memory_requests // 4
            for _ in range(4):
                asyncio.run(closed_loop(port, path, load, args.clients, 600, load.sent + per_round))
                memory.append(rss_mib(on))
        finally:
            on.send_signal(signal.SIGTERM)
            on.wait(60)
        sampled, logged = count_logged(config_path, load.answered, "on")

    budget = 2 * defaults.max_wait_ms / 1000 + predict_s
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"\n== Serving benchmark ({os.cpu_count()} cores, {args.clients} clients, one row per request) ==")
    print(f"throughput, batching off (max_batch_rows=1):  {results['off']:8.0f} req/s")
    print(
        f"throughput, batching on  (max_batch_rows={defaults.max_batch_rows}, max_wait_ms={defaults.max_wait_ms:g}):"
        f" {results['on']:8.0f} req/s   ratio {results['on'] / results['off']:.1f}x (goal >= 5x)"
    )
    print(
        f"latency at half saturation ({rate:.0f} req/s, open loop, {len(latencies)} requests):"
        f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms;"
        f" budget 2 x {defaults.max_wait_ms:g} ms + batch predict {predict_s * 1000:.1f} ms = {budget * 1000:.1f} ms"
        f" ({'met' if p99 <= budget else 'NOT met'})"
    )
    print(
        f"  at quarter saturation ({rate / 2:.0f} req/s): p50 {np.percentile(quarter, 50) * 1000:.1f} ms,"
        f" p99 {np.percentile(quarter, 99) * 1000:.1f} ms"
    )
    print(
        f"server RSS (MiB) after warm-up and after each of 4 rounds of {per_round} requests: "
        + ", ".join(f"{m:.0f}" for m in memory)
        + f"  (growth {memory[-1] - memory[1]:+.0f} MiB after the first round)"
    )
    print(
        f"prediction log: {load.sent} requests sent, {len(load.answered)} answered, {load.errors} errors;"
        f" {sampled} answered keys sampled, {logged} online rows logged, lost {sampled - logged}"
    )


if __name__ == "__main__":
    main()
