"""Serving benchmark: dynamic batching against one-request-at-a-time, tail latency, memory, log completeness.

    .venv/bin/python bench/serving.py                       # ~3 minutes on 2 cores
    .venv/bin/python bench/serving.py --requests 1000000    # the memory goal: 1M requests (at most --max-minutes)
    .venv/bin/python bench/serving.py --workdir /tmp/bench  # prepare the registry once, reuse it in later runs
    .venv/bin/python bench/serving.py --smoke               # 1 s per measurement, 3,000 requests (CI); --out DIR

One run, printed. It trains the demo's model on a few days of demo data into a temporary registry, then starts
``python -m pipelines.serving`` on 127.0.0.1 twice over the same model: batching off (``max_batch_rows: 1``) and
on (the config's defaults). A load generator in this process (uvloop, raw HTTP/1.1 keep-alive, one row per
request, unique keys, bodies prepared before sending) measures
  (a) saturation throughput with 64 concurrent clients (closed loop), both servers; goal: on >= 5 x off;
  (b) latency at half (and a quarter of) the saturation throughput on the batching server, open loop: requests
      sent at a fixed rate whatever the answers, each timed from its scheduled send time; goal: p99 <=
      max_wait_ms + the model's predict time for a full batch (``predict_frame``, measured here, in process). The
      client's own overhead is printed beside it: how late it sent (p99) and the CPU it and the server used;
  (c) the RSS of the server and its scoring child over ``--requests`` requests (start, each tenth, end; goal: flat), and
  (d) after a SIGTERM, online rows in the prediction log = answered requests whose key is sampled (goal: equal);
  (e) the same model served with the demo's declared features (payments aggregates, a derived feature): requests
      carry the key, the account and the raw fields only, and the server looks the aggregates up in the Feast
      online store (SQLite, materialized from the extracted days): saturation, latency at half of it (open loop)
      and the in-process lookup of a full batch, beside (a)-(b) with every feature in the body.
The load generator shares the machine's cores with the server, and so do any other processes: latencies measured
on a busy machine include time the server spends waiting for a core (the load average is printed), unless
``--server-cores`` gives the server and its scoring child cores of their own and the benchmark is started under
``taskset`` on the others (``taskset -c 8-15 bench/serving.py --server-cores 0-7``, as ``scripts/gpu_check.sh`` runs
it): the fair test of the p99 goal. Both sets of cores are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import _results
import numpy as np
import pandas as pd
import psutil
import uvloop
import yaml
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
LOG_DAY = date(2031, 6, 1)
GRACE_S = 60  # a load loop waits at most this long past its time for the answers still due, then fails


LOOKUP = "lookup.yaml"  # beside config.yaml: the demo's declared features, looked up in the Feast online store


def prepare(workdir: Path, rows_per_day: int = 2000) -> Path:
    """Demo data, then twice features for four days and one trained champion, each in its own lake and registry:
    ``config.yaml`` with the demo's raw features only (every feature in the request body) and ``lookup.yaml`` with
    its declared features too (their Feast online store materialized from the extracted days)."""
    from pipelines import demo_data
    from pipelines.config import load_config
    from pipelines.feature_store import materialize_day
    from pipelines.features import extract_features
    from pipelines.training import train_and_register

    spec = demo_data.DemoSpec(rows_per_day=rows_per_day, days=5)
    demo_data.generate(workdir / "data", spec)
    for name, declared in (("config.yaml", False), (LOOKUP, True)):
        raw = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
        dataset, stem = raw["dataset"], name.removesuffix(".yaml")
        dataset["source"] = str(workdir / "data/raw/*.parquet")
        dataset["labels"] = str(workdir / "data/labels/*.parquet")
        if declared:
            dataset["history"]["payments"]["source"] = str(workdir / "data/payments/*.parquet")
            raw["feature_store"] = {"repo": str(workdir / "feature_repo")}
        else:
            dataset.pop("history")
            dataset["features"] = {k: dataset["features"][k] for k in ("numerical", "categorical")}
        raw["storage"]["root"] = str(workdir / "lake" / stem)
        raw["mlflow"]["tracking_uri"] = f"sqlite:///{workdir / f'mlruns-{stem}.db'}"
        (workdir / name).write_text(yaml.safe_dump(raw))
        _results.empty_mlflow_store(workdir / f"mlruns-{stem}.db")
        config = load_config(workdir / name)
        for i in range(4):
            extract_features(config, spec.start + timedelta(days=i))
            materialize_day(config, spec.start + timedelta(days=i))  # nothing to do without declared features
        with threadpool_limits(1):  # setup, not measured: a small model, and OpenMP spins on a busy machine
            train_and_register(config, spec.start + timedelta(days=3))
    return workdir / "config.yaml"


def request_rows(config_path: Path, n: int = 5000) -> list[dict]:
    """Request rows from the extracted features: the key and what a caller sends (every feature, or with declared
    features the join keys and the raw fields only: the server looks the rest up)."""
    from pipelines.config import load_config

    config = load_config(config_path)
    dataset = config.dataset
    fields = [*dataset.join_keys, *dataset.features.raw] if config.online_features else dataset.features.all
    features = pd.read_parquet(Path(config.storage.root) / "features")[[dataset.key, *fields]].head(n)
    return features.astype(object).where(features.notna(), None).to_dict("records")


def lookup_seconds(config_path: Path, rows: list[dict]) -> float:
    """Median time, in process, of the server's feature step for one full batch: the Feast online lookup of its
    rows' aggregates and the derived features (:class:`pipelines.serving.online_features.OnlineFeatures`)."""
    from pipelines.config import load_config
    from pipelines.serving.online_features import OnlineFeatures

    config = load_config(config_path)
    features = OnlineFeatures(config)
    features.start()
    batch = rows[: config.serving.max_batch_rows]
    times = []
    for _ in range(30):
        started = time.perf_counter()
        features.complete(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times[5:]))


def batch_seconds(config_path: Path, rows: list[dict]) -> tuple[float, float]:
    """Median times, in process, of one full batch (``max_batch_rows`` rows) with the served model: the model's
    predict through the batch path's :func:`predict_frame` (checked input, the model, isolation), and the server's
    whole batch step (:func:`run_job`: frame from the request rows, predict, log rows), without the trip to the
    scoring child."""
    from pipelines import model_artifacts, registry
    from pipelines.config import load_config
    from pipelines.predict import predict_frame
    from pipelines.serving.batch import Job, Stamp, run_job
    from pipelines.serving.schema import check_rows, to_frame

    config = load_config(config_path)
    ref = registry.require_alias(registry.connect(config), config.model.name)
    model = model_artifacts.load_model(ref, config.tracking_uri)
    threadpool_limits(1)  # as the server runs it (pipelines.serving.__main__ sets OMP_NUM_THREADS=1)
    checked = check_rows(json.dumps(rows[: config.serving.max_batch_rows]).encode(), config, 10**6)
    frame = to_frame(checked, config)
    n = len(checked)
    job = Job(
        checked, [1] * n, ["champion"] * n, ["prediction_log"] * n, [False] * n, Stamp(ref.name, ref.version, "", "b")
    )

    def median(work) -> float:
        times = []
        for _ in range(30):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return float(np.median(times[5:]))

    return median(lambda: predict_frame(frame, model, config)), median(lambda: run_job(job, model, config))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    config_path: Path, serving: dict, workdir: Path, name: str, cores: str | None = None
) -> tuple[subprocess.Popen, int]:
    """``python -m pipelines.serving`` on a free port, ready; with ``cores`` (a ``taskset -c`` list), the server and
    its scoring child (which inherits the affinity) run on those cores only."""
    raw = yaml.safe_load(config_path.read_text())
    raw["serving"] = serving
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    port = free_port()
    command = [sys.executable, "-m", "pipelines.serving", "--config", str(path), "--port", str(port)]
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
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


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (the server flushes its log), then a kill if it has not exited in 60 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise SystemExit("the server did not exit within 60 s of SIGTERM") from None


async def bounded(work, seconds: float, what: str):
    """``work`` awaited for at most ``seconds``: a server that stops answering fails the run instead of hanging it."""
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise SystemExit(f"{what}: answers still missing {seconds:.0f} s in; the server stopped answering") from None


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
        try:
            status_line = await self.reader.readline()
        except ConnectionResetError:
            status_line = b""
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
    """Requests with unique keys, and what came back. Bodies are prepared once per row (the key spliced in per
    request), so the load generator spends its core on sending, not on encoding JSON."""

    def __init__(self, rows: list[dict], key: str, event_time: str, prefix: str) -> None:
        stamp = f"{LOG_DAY}T12:00:00+00:00"
        self.tails = [
            json.dumps({**{c: v for c, v in row.items() if c != key}, event_time: stamp}).encode()[1:] for row in rows
        ]  # '"income": ..., ...}': the body after its key
        self.key, self.prefix = key, prefix
        self.sent = 0
        self.answered: list[str] = []
        self.errors = 0

    def body(self) -> tuple[str, bytes]:
        tail = self.tails[self.sent % len(self.tails)]
        key = f"{self.prefix}-{self.sent}"
        self.sent += 1
        return key, b'{"%s": "%s", ' % (self.key.encode(), key.encode()) + tail

    async def one(self, connection: Connection) -> float:
        """Send one request and wait for its answer; when it was answered (perf_counter)."""
        key, body = self.body()
        status, _ = await connection.post(body)
        if status == 200:
            self.answered.append(key)
        else:
            self.errors += 1
        return time.perf_counter()


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
    await bounded(asyncio.gather(*(client(c) for c in connections)), seconds + GRACE_S, "closed loop")
    elapsed = time.monotonic() - started
    for c in connections:
        c.writer.close()
    return (len(load.answered) - before) / elapsed


@dataclass
class OpenLoop:
    """What an open-loop run measured, all in seconds: each request's latency from its scheduled send time, how
    late the client sent it (its own overhead), and the CPU seconds the client and the server (with its scoring
    child) used per second."""

    latency: np.ndarray
    send_lag: np.ndarray
    client_cpu: float
    server_cpu: float


async def open_loop(port: int, path: str, load: Load, rate: float, seconds: float, server: int) -> OpenLoop:
    """Requests at a fixed rate whether or not earlier ones were answered (the arrival process of independent
    users; a closed loop at a lower concurrency would slow its own arrivals whenever the server stalls and so
    hide the stall). Latency counts from the scheduled send time, so a late client or a busy connection counts
    against the result, never for it."""
    pool: collections.deque[Connection] = collections.deque()  # oldest idle first: none idles past keep-alive
    for _ in range(256):
        connection = Connection(port, path)
        await connection.open()
        pool.append(connection)
    latencies: list[float] = []
    lags: list[float] = []

    async def fire(scheduled: float) -> None:
        if pool:
            connection = pool.popleft()
        else:  # every connection busy: one more, its connect time counted in the latency
            connection = Connection(port, path)
            await connection.open()
        lags.append(time.perf_counter() - scheduled)
        latencies.append(await load.one(connection) - scheduled)
        pool.append(connection)

    client, served = psutil.Process(), server_processes(server)

    def server_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in served)

    cpu = (sum(client.cpu_times()[:2]), server_cpu())
    tasks = []
    # No collection during the run: the thousands of request tasks it keeps make each full collection a pause of
    # the client's loop (sends up to ~180 ms late in one run), a tail that would be charged to the server.
    gc.disable()
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        scheduled = started + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(fire(scheduled)))
    await bounded(asyncio.gather(*tasks), seconds + GRACE_S, "open loop")
    elapsed = time.perf_counter() - started
    gc.enable()
    for connection in pool:
        connection.writer.close()
    return OpenLoop(
        np.array(latencies),
        np.array(lags),
        (sum(client.cpu_times()[:2]) - cpu[0]) / elapsed,
        (server_cpu() - cpu[1]) / elapsed,
    )


def server_processes(pid: int) -> list[psutil.Process]:
    """The server and the processes it started (its scoring child): what the server costs is their sum."""
    server = psutil.Process(pid)
    return [server, *server.children(recursive=True)]


def rss_mib(pid: int) -> float:
    return sum(p.memory_info().rss for p in server_processes(pid)) / 2**20


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


def memory_run(port: int, path: str, load: Load, clients: int, requests: int, minutes: float, server: int) -> list:
    """``requests`` more requests in ten rounds (closed loop), bounded by ``minutes``: (requests sent, RSS of the
    server and its child in MiB) before the first round and after each."""
    samples = [(load.sent, rss_mib(server))]
    stop = time.monotonic() + minutes * 60
    target = load.sent + requests
    for round_ in range(1, 11):
        left = stop - time.monotonic()
        if left <= 0:
            break
        limit = target - requests + requests * round_ // 10
        uvloop.run(closed_loop(port, path, load, clients, left, limit))
        samples.append((load.sent, rss_mib(server)))
    return samples


def prepared(workdir: Path | None, tmp: Path, rows_per_day: int) -> Path:
    """The benchmark's config: prepared once in ``workdir`` (and reused from there), or in a temporary folder."""
    if workdir is None:
        return prepare(tmp, rows_per_day)
    if not (workdir / LOOKUP).exists():
        workdir.mkdir(parents=True, exist_ok=True)
        prepare(workdir, rows_per_day)
    return workdir / "config.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput / latency measurement")
    parser.add_argument("--requests", type=int, default=60_000, help="one-row requests in the memory run (1000000)")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="bound on the memory run's time")
    parser.add_argument("--rows-per-day", type=int, default=2000, help="demo events a day the model is trained on")
    parser.add_argument("--workdir", type=Path, help="prepare the registry here once and reuse it (default: temp)")
    parser.add_argument(
        "--server-cores",
        help="taskset -c list for the server and its scoring child, e.g. 0-7; start this benchmark (the load"
        " generator) under taskset on the other cores (scripts/gpu_check.sh does) so neither waits for the other",
    )
    return _results.add_arguments(parser)


SMOKE = {"seconds": 1.0, "requests": 3_000, "max_minutes": 2.0, "rows_per_day": 500}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("serving", args)
    from pipelines.config import load_config

    warm_up_s = min(2.0, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        print("preparing a registry (demo data, features, one trained model) ...", flush=True)
        config_path = prepared(args.workdir, Path(tmp), args.rows_per_day)
        workdir = config_path.parent
        config = load_config(config_path)
        defaults = config.serving
        rows = request_rows(config_path)
        predict_s, step_s = batch_seconds(config_path, rows)
        lookup_path = workdir / LOOKUP
        lookup_rows = request_rows(lookup_path)
        lookup_s = lookup_seconds(lookup_path, lookup_rows)
        declared = len(load_config(lookup_path).dataset.features.computed)
        path = f"/v1/models/{config.model.name}:predict"
        key, event_time = config.dataset.key, config.dataset.event_time
        prefix = f"run{time.time_ns()}"  # the keys of this run, in a log a reused workdir may already hold
        results: dict[str, float] = {}

        off, port = start_server(
            config_path, {"max_batch_rows": 1, "max_wait_ms": 0}, workdir, "off", args.server_cores
        )
        try:
            load = Load(rows, key, event_time, f"{prefix}-off")
            uvloop.run(closed_loop(port, path, load, args.clients, warm_up_s, 10**9))  # warm up
            results["off"] = uvloop.run(closed_loop(port, path, load, args.clients, args.seconds, 10**9))
            print(f"batching off: {results['off']:.0f} req/s", flush=True)
        finally:
            stop(off)
        errors = load.errors

        on, port = start_server(config_path, {"log_flush_s": 5.0}, workdir, "on", args.server_cores)
        try:
            load = Load(rows, key, event_time, f"{prefix}-on")
            uvloop.run(closed_loop(port, path, load, args.clients, warm_up_s, 10**9))
            results["on"] = uvloop.run(closed_loop(port, path, load, args.clients, args.seconds, 10**9))
            print(f"batching on: {results['on']:.0f} req/s", flush=True)
            rate = results["on"] / 2
            half = uvloop.run(open_loop(port, path, load, rate, args.seconds, on.pid))
            quarter = uvloop.run(open_loop(port, path, load, rate / 2, args.seconds, on.pid))
            print(
                f"p99 at half saturation {np.percentile(half.latency, 99) * 1000:.1f} ms;"
                f" memory run: {args.requests} requests, at most {args.max_minutes:g} minutes ...",
                flush=True,
            )
            started = time.monotonic()
            memory = memory_run(port, path, load, args.clients, args.requests, args.max_minutes, on.pid)
            memory_s = time.monotonic() - started
        finally:
            stop(on)
        sampled, logged = count_logged(config_path, load.answered, f"{prefix}-on")

        served, port = start_server(lookup_path, {"log_flush_s": 5.0}, workdir, "lookup", args.server_cores)
        try:
            keyed = Load(lookup_rows, key, event_time, f"{prefix}-lookup")
            uvloop.run(closed_loop(port, path, keyed, args.clients, warm_up_s, 10**9))
            results["lookup"] = uvloop.run(closed_loop(port, path, keyed, args.clients, args.seconds, 10**9))
            looked_up = uvloop.run(open_loop(port, path, keyed, results["lookup"] / 2, args.seconds, served.pid))
            print(f"with the feature lookup: {results['lookup']:.0f} req/s", flush=True)
        finally:
            stop(served)

    goal = defaults.max_wait_ms / 1000 + predict_s  # the batch wait plus one batch
    ms = 1000
    print(
        f"\n== Serving benchmark ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f};"
        " one row per request) =="
    )
    print(
        f"cores: load generator {sorted(os.sched_getaffinity(0))},"
        f" server and its scoring child {args.server_cores or 'shared with it (no --server-cores)'}"
    )
    print(
        f"saturation, {args.clients} clients (closed loop): batching off (max_batch_rows=1)"
        f" {results['off']:.0f} req/s;"
        f" on (max_batch_rows={defaults.max_batch_rows}, max_wait_ms={defaults.max_wait_ms:g})"
        f" {results['on']:.0f} req/s;"
        f" ratio {results['on'] / results['off']:.1f}x (goal >= 5x)"
    )
    print(
        f"full batch of {defaults.max_batch_rows} rows, in process: model predict (predict_frame)"
        f" {predict_s * ms:.1f} ms;"
        f" the server's whole batch step (frame, predict, log rows) {step_s * ms:.1f} ms"
    )
    for name, run, at in (("half", half, rate), ("quarter", quarter, rate / 2)):
        p50, p99 = np.percentile(run.latency, [50, 99])
        print(
            f"{name} saturation: {at:.0f} req/s open loop, {len(run.latency)} requests: p50 {p50 * ms:.1f} ms,"
            f" p99 {p99 * ms:.1f} ms, max {run.latency.max() * ms:.1f} ms"
            f" | client send lag p99 {np.percentile(run.send_lag, 99) * ms:.1f} ms,"
            f" CPU cores used: client {run.client_cpu:.2f}, server {run.server_cpu:.2f}"
        )
    p50_lookup, p99_lookup = np.percentile(looked_up.latency, [50, 99])
    p50_body, p99_body = np.percentile(half.latency, [50, 99])
    print(
        f"with the feature lookup (requests carry the key, the account and the raw fields; the"
        f" {len(config.dataset.features.all)} raw features + {declared} declared ones from the Feast online store,"
        f" SQLite): saturation {results['lookup']:.0f} req/s"
        f" ({results['lookup'] / results['on']:.2f} x the server with every feature in the body);"
        f" half saturation {results['lookup'] / 2:.0f} req/s open loop: p50 {p50_lookup * ms:.1f} ms,"
        f" p99 {p99_lookup * ms:.1f} ms (every feature in the body, at {rate:.0f} req/s: p50 {p50_body * ms:.1f} ms,"
        f" p99 {p99_body * ms:.1f} ms); lookup of a full batch in process {lookup_s * ms:.1f} ms;"
        f" {keyed.errors} errors"
    )
    p99 = np.percentile(half.latency, 99)
    print(
        f"goal: p99 at half saturation <= max_wait_ms {defaults.max_wait_ms:g} + batch predict"
        f" {predict_s * ms:.1f} = {goal * ms:.1f} ms; measured {p99 * ms:.1f} ms = {p99 / goal:.2f} x goal"
        f" ({'met' if p99 <= goal else 'NOT met'})"
    )
    sent = [n for n, _ in memory]
    rss = [m for _, m in memory]
    print(
        f"memory: {sent[-1] - sent[0]} requests in {memory_s:.0f} s ({(sent[-1] - sent[0]) / memory_s:.0f} req/s);"
        f" RSS of server and child: start {rss[0]:.0f} MiB, middle {rss[len(rss) // 2]:.0f} MiB,"
        f" end {rss[-1]:.0f} MiB,"
        f" max {max(rss):.0f} MiB (after {', '.join(str(n - sent[0]) for n in sent)} requests:"
        f" {', '.join(f'{m:.0f}' for m in rss)})"
    )
    print(
        f"prediction log: {load.sent} requests sent, {len(load.answered)} answered, {load.errors} errors;"
        f" {sampled} answered keys sampled, {logged} online rows logged, lost {sampled - logged}"
    )

    latency = [
        {
            "measurement": f"{name} saturation, open loop",
            "rate_req_s": at,
            "requests": len(r.latency),
            "p50_ms": float(np.percentile(r.latency, 50) * ms),
            "p99_ms": float(np.percentile(r.latency, 99) * ms),
            "max_ms": float(r.latency.max() * ms),
            "send_lag_p99_ms": float(np.percentile(r.send_lag, 99) * ms),
            "client_cpu_cores": r.client_cpu,
            "server_cpu_cores": r.server_cpu,
        }
        for name, r, at in (
            ("half", half, rate),
            ("quarter", quarter, rate / 2),
            ("with the feature lookup: half", looked_up, results["lookup"] / 2),
        )
    ]
    record.goal("saturation_ratio_on_off", results["on"] / results["off"], 5, at_most=False)
    record.goal("p99_half_saturation_over_goal", p99 / goal, 1.0)
    record.check("no_answered_log_row_lost", sampled == logged)
    record.check("feature_lookup_requests_answered", keyed.errors == 0 and len(keyed.answered) > 0)
    record.write(
        {
            "cores": os.cpu_count(),
            "clients": args.clients,
            "saturation_req_s": results,
            "saturation_ratio": results["on"] / results["off"],
            "serving_defaults": {"max_batch_rows": defaults.max_batch_rows, "max_wait_ms": defaults.max_wait_ms},
            "batch_predict_ms": predict_s * ms,
            "batch_step_ms": step_s * ms,
            "batch_lookup_ms": lookup_s * ms,
            "p99_goal_ms": goal * ms,
            "p99_half_ms": p99 * ms,
            "p99_over_goal": p99 / goal,
            "memory": {"seconds": memory_s, "requests_sent": sent, "rss_mib": rss},
            "prediction_log": {
                "sent": load.sent,
                "answered": len(load.answered),
                "errors": load.errors,
                "errors_batching_off": errors,
                "sampled": sampled,
                "logged": logged,
                "lost": sampled - logged,
            },
        },
        rows=latency,
        plot=lambda figure: _plot(figure, results, latency, goal * ms, sent, rss),
    )


def _plot(figure, saturation: dict, latency: list[dict], goal_ms: float, sent: list[int], rss: list[float]) -> None:
    """Saturation throughput off/on, latency percentiles against the goal, RSS over the memory run."""
    figure.set_size_inches(13, 4.5)
    left, middle, right = figure.subplots(1, 3)
    left.bar(["batching off", "batching on"], [saturation["off"], saturation["on"]], color=["grey", "C0"])
    left.set_ylabel("requests / s (closed loop)")
    left.set_title(f"saturation: {saturation['on'] / saturation['off']:.1f} x (goal >= 5 x)")
    x = np.arange(len(latency))
    for offset, key in zip((-0.27, 0, 0.27), ("p50_ms", "p99_ms", "max_ms"), strict=True):
        middle.bar(x + offset, [r[key] for r in latency], 0.27, label=key.removesuffix("_ms"))
    middle.axhline(goal_ms, color="red", linestyle="--", label=f"p99 goal {goal_ms:.1f} ms")
    middle.set_xticks(x, [f"{r['measurement'].split(',')[0]}\n{r['rate_req_s']:.0f} req/s" for r in latency])
    middle.set_ylabel("latency, ms (from scheduled send)")
    middle.set_title("latency, open loop")
    middle.legend(fontsize=8)
    right.plot([n - sent[0] for n in sent], rss, marker="o")
    right.set_ylim(bottom=0)
    right.set_xlabel("requests in the memory run")
    right.set_ylabel("RSS of server and scoring child, MiB")
    right.set_title("memory (goal: flat)")


if __name__ == "__main__":
    main()
