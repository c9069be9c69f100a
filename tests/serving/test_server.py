"""The model server as a real process on 127.0.0.1 over a real registry (temp SQLite store, two versions)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
import yaml
from lakes import REPO, write_config

from pipelines import registry
from pipelines.config import Config, load_config
from pipelines.features import extract_features
from pipelines.monitoring import current_window
from pipelines.promotion import promote, rollback
from pipelines.scoring import score_day
from pipelines.serving import routing
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register

START = date(2026, 10, 1)
DAY = date(2026, 10, 4)


@dataclass(frozen=True)
class Registry:
    """The shared store: v1 is champion, v2 holds the challenger alias."""

    directory: Path
    config_file: Path
    config: Config
    champion: str
    challenger: str


@pytest.fixture(scope="module")
def served_registry(tmp_path_factory: pytest.TempPathFactory, raw_data: Path) -> Registry:
    """Features for five days, v1 trained (champion) and v2 trained with fewer iterations (challenger)."""
    directory = tmp_path_factory.mktemp("serving")
    config_file = write_config(directory, raw_data)
    config = load_config(config_file)
    for i in range(5):
        extract_features(config, START + timedelta(days=i))
    first = train_and_register(config, DAY - timedelta(days=1))
    second = train_and_register(
        config.model_copy(update={"model": config.model.model_copy(update={"params": {"max_iter": 10}})}), DAY
    )
    registry.connect(config).set_alias(config.model.name, "challenger", second.version)
    return Registry(directory, config_file, config, first.version, second.version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    config: Config
    log_path: Path

    def post(self, body, **kwargs) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/models/{self.config.model.name}:predict", json=body, timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, group: bool = False) -> str:
        """Signal the server (``group``: its whole process group, as Ctrl-C in a terminal does) and wait for it;
        its scoring child must end too, even when the server is killed."""
        if self.process.poll() is None:
            children = psutil.Process(self.process.pid).children(recursive=True)
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
            self.process.wait(timeout=30)
            _, alive = psutil.wait_procs(children, timeout=15)
            assert not alive, f"left running after {signal.Signals(sig).name}: {[c.cmdline() for c in alive]}"
        return self.log_path.read_text()


@pytest.fixture
def start_server(served_registry: Registry, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``python -m pipelines.serving`` with the shared registry and ``serving`` overrides; stopped after.
    ``start_server(name, **serving)`` starts one; ``start_server.many({name: serving, ...})`` starts several at once
    (their start-ups overlap) and returns them by name."""
    started: list[ServerProcess] = []

    def launch(name: str, serving: dict) -> ServerProcess:
        raw = yaml.safe_load(served_registry.config_file.read_text())
        raw["serving"] = {"reload_interval_s": 0.2, **serving}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        port = free_port()
        log_path = tmp_path / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serving", "--config", str(path), "--port", str(port)],
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,  # a group of its own, so a test can send it Ctrl-C
        )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", load_config(path), log_path)
        started.append(server)
        return server

    def ready(server: ServerProcess) -> ServerProcess:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(f"server exited: {server.log_path.read_text()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready in 60 s: {server.log_path.read_text()}")

    def start(name: str = "server", **serving) -> ServerProcess:
        return ready(launch(name, serving))

    def many(servings: dict[str, dict]) -> dict[str, ServerProcess]:
        launched = {name: launch(name, serving) for name, serving in servings.items()}
        return {name: ready(server) for name, server in launched.items()}

    start.many = many
    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def feature_rows(config: Config, day: date, count: int | None = None) -> list[dict]:
    """The day's feature rows as request bodies (key, event time, features), NaN as null."""
    lake = Lake.from_config(config)
    frame = lake.read(Table.FEATURES, day).head(count)
    frame = frame.astype(object).where(frame.notna(), None)
    frame[config.dataset.event_time] = frame[config.dataset.event_time].map(lambda t: t.isoformat())
    return frame.to_dict("records")


def logged_rows(config: Config, table: Table, day: date) -> pd.DataFrame:
    lake = Lake.from_config(config)
    return lake.read(table, day) if lake.exists(table, day) else pd.DataFrame()


@pytest.mark.integration
def test_online_predictions_equal_batch_and_join_the_log(served_registry, start_server, dask_client):
    config = served_registry.config
    batch = score_day(config, DAY, "batch-1", dask_client)
    predictions = Lake.from_config(config).read(Table.PREDICTIONS, DAY).set_index("customer_id")
    server = start_server()
    rows = feature_rows(config, DAY)
    answers = []
    for start in range(0, len(rows), 200):
        response = server.post(rows[start : start + 200])
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
    online = pd.DataFrame(answers).set_index("key")
    assert len(online) == batch.rows_scored == len(rows)
    assert set(online["model_version"]) == {served_registry.champion} and set(online["arm"]) == {"champion"}
    assert (online["probability"] == predictions.loc[online.index, "probability"]).all()  # exactly equal
    assert (online["prediction"] == predictions.loc[online.index, "prediction"]).all()
    described = httpx.get(f"{server.url}/v1/models/{config.model.name}").json()
    assert described["version"] == served_registry.champion and described["alias"] == "champion"
    assert "loaded_at" in described
    server.stop()

    # The online appends join the batch log of the day: the same keys sampled, read as one table.
    log = logged_rows(config, Table.PREDICTION_LOG, DAY)
    online_log = log[log["source"] == "online"]
    assert len(online_log) == batch.rows_logged > 0
    assert set(online_log["customer_id"]) == set(log[log["source"] == "batch"]["customer_id"])
    assert set(online_log["arm"]) == {"champion"}
    assert len(current_window(config, DAY)) == 2 * batch.rows_logged  # drift monitoring's own reader
    # A batch rerun replaces the day's batch rows and keeps the online ones.
    score_day(config, DAY, "batch-2", dask_client)
    again = logged_rows(config, Table.PREDICTION_LOG, DAY)
    assert (again["source"] == "online").sum() == batch.rows_logged
    assert set(again.loc[again["source"] == "batch", "run_id"]) == {"batch-2"}


@pytest.mark.integration
def test_bad_bodies_get_422_naming_the_field_and_overflow_gets_429(served_registry, start_server):
    config = served_registry.config
    server = start_server(max_queue_rows=4, max_wait_ms=1500, max_batch_rows=1000)
    good = feature_rows(config, DAY, 1)[0]
    bodies = {
        "wrong type": ({**good, "income": "a lot"}, "income", "float_type"),
        "missing column": ({k: v for k, v in good.items() if k != "age"}, "age", "missing"),
        "unknown column": ({**good, "shoe_size": 44}, "shoe_size", "extra_forbidden"),
        "category as number": ({**good, "region": 3}, "region", "string_type"),
        "bad key": ({**good, "customer_id": [1]}, "customer_id", "key_type"),
    }
    for what, (body, field, kind) in bodies.items():
        response = server.post(body)
        assert response.status_code == 422, what
        assert response.json()["detail"][0]["loc"] == ["body", field] and response.json()["detail"][0]["type"] == kind
    url = f"{server.url}/v1/models/{config.model.name}:predict"
    infinite = httpx.post(url, content=json.dumps({**good, "income": float("inf")}), timeout=10)
    assert infinite.status_code == 422 and infinite.json()["detail"][0]["loc"] == ["body", "income"]
    two = [good, {**good, "customer_id": "other", "age": float("nan")}]
    not_a_number = httpx.post(url, content=json.dumps(two), timeout=10)
    assert not_a_number.status_code == 422 and not_a_number.json()["detail"][0]["loc"] == ["body", 1, "age"]
    assert httpx.post(url, content=b"{not json", timeout=10).status_code == 422
    assert server.post([good, good]).json()["detail"][0]["type"] == "duplicate_key"

    # The queue holds 4 rows and a batch waits 1.5 s to fill: the 5th queued row and after are refused.
    rows = feature_rows(config, DAY, 12)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(url, json=row) for row in rows))

    statuses = [r.status_code for r in asyncio.run(burst())]
    refused = [r for r in statuses if r == 429]
    assert statuses.count(200) == 4 and len(refused) == 8, statuses
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'serving_errors_total{kind="queue_full",model="credit_default"} 8.0' in metrics
    assert 'serving_errors_total{kind="invalid_body",model="credit_default"}' in metrics
    server.stop()


@pytest.mark.integration
def test_promotion_and_rollback_under_load_switch_versions_without_a_failed_request(served_registry, start_server):
    config = served_registry.config
    server = start_server(max_wait_ms=2)
    rows = feature_rows(config, DAY, 64)
    client = registry.connect(config)
    name, v1, v2 = config.model.name, served_registry.champion, served_registry.challenger
    seen: list[tuple[float, str]] = []
    failures: list[str] = []

    async def load(stop_at: float) -> None:
        async with httpx.AsyncClient(timeout=30) as http:

            async def one_client(i: int) -> None:
                while time.monotonic() < stop_at:
                    response = await http.post(f"{server.url}/v1/models/{name}:predict", json=rows[i])
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        seen.append((time.monotonic(), response.json()["predictions"][0]["model_version"]))

            await asyncio.gather(*(one_client(i) for i in range(16)))

    def move_aliases() -> None:
        time.sleep(1.0)
        promote(client, name, v1, v2)
        time.sleep(2.5)
        rollback(config, "serving test")

    mover = threading.Thread(target=move_aliases)
    started = time.monotonic()
    mover.start()
    asyncio.run(load(started + 6.0))
    mover.join()
    assert not failures, failures[:3]
    versions = [v for _, v in sorted(seen)]
    runs = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert runs == [v1, v2, v1], runs  # switched once each way, never back and forth
    assert client.alias(name, "champion").version == v1
    log = server.stop()
    assert f"champion is now version {v2}" in log and f"champion is now version {v1}" in log


@pytest.mark.integration
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(served_registry, start_server, tmp_path):
    config = served_registry.config
    server = start_server()
    client = registry.connect(config)
    run_id = client.version(config.model.name, served_registry.champion).run_id
    broken = client.register_version(config.model.name, (tmp_path / "gone").as_uri(), run_id)
    client.set_alias(config.model.name, "champion", broken)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = httpx.get(f"{server.url}/readyz").json()
            if ready["models"][config.model.name]["reload_errors"]:
                break
            time.sleep(0.2)
        model = ready["models"][config.model.name]
        assert ready["ready"] and model["version"] == served_registry.champion
        assert "champion" in model["reload_errors"]["champion"]
        answer = server.post(feature_rows(config, DAY, 1))
        assert answer.status_code == 200 and answer.json()["model_versions"] == [served_registry.champion]
    finally:
        client.set_alias(config.model.name, "champion", served_registry.champion)
    assert "cannot load champion" in server.stop()


@pytest.mark.integration
def test_canary_routes_its_share_of_keys_stably_and_shadow_never_changes_an_answer(served_registry, start_server):
    config = served_registry.config
    rows = feature_rows(config, DAY)
    servers = start_server.many(
        {"canary": {"strategy": "canary", "challenger_share": 0.25}, "plain": {}, "shadow": {"strategy": "shadow"}}
    )
    canary, plain, shadow = servers["canary"], servers["plain"], servers["shadow"]
    first = [p for i in range(0, len(rows), 300) for p in canary.post(rows[i : i + 300]).json()["predictions"]]
    again = [p for i in range(0, len(rows), 300) for p in canary.post(rows[i : i + 300]).json()["predictions"]]
    assert [(p["key"], p["arm"]) for p in first] == [(p["key"], p["arm"]) for p in again]  # stable per key
    keys = pd.Series([p["key"] for p in first])
    expected = routing.to_challenger(keys, 0.25)
    assert [p["arm"] == "challenger" for p in first] == list(expected)
    assert {p["model_version"] for p in first if p["arm"] == "challenger"} == {served_registry.challenger}
    assert {p["model_version"] for p in first if p["arm"] == "champion"} == {served_registry.champion}
    canary.stop()

    body = rows[:300]
    assert shadow.post(body).json() == plain.post(body).json()  # the champion's answers only, unchanged
    plain.stop()
    shadow.stop()
    shadowed = logged_rows(config, Table.SHADOW_LOG, DAY)
    assert set(shadowed["model_version"]) == {served_registry.challenger} and set(shadowed["arm"]) == {"shadow"}
    assert len(shadowed) == routing.logged(pd.Series([r["customer_id"] for r in body]), 0.1).sum()


@pytest.mark.integration
def test_stopping_the_server_loses_no_acknowledged_log_row(served_registry, start_server):
    """SIGTERM and Ctrl-C (SIGINT to the process group, the scoring child included) flush the buffer: every
    answered sampled row is logged, and nothing fails on the way out. SIGKILL loses at most the buffer: fewer than
    ``log_flush_rows`` rows (here 50), none older than ``log_flush_s`` (once a full buffer's flush, which runs in a
    thread, has ended: killed during it, that flush is lost as well)."""
    config = served_registry.config
    rows = feature_rows(config, DAY + timedelta(days=1))
    cases = (
        (signal.SIGTERM, date(2031, 1, 1), 0),
        (signal.SIGINT, date(2031, 1, 3), 0),
        (signal.SIGKILL, date(2031, 1, 2), 49),
    )
    servers = start_server.many({f"kill-{sig}": {"log_flush_rows": 50, "log_flush_s": 600} for sig, _, _ in cases})
    for sig, day, lost_at_most in cases:
        server = servers[f"kill-{sig}"]
        answered = []
        for i in range(0, len(rows), 20):
            body = [{**r, "event_time": f"{day.isoformat()}T12:00:00+00:00"} for r in rows[i : i + 20]]
            response = server.post(body)
            assert response.status_code == 200
            answered += [p["key"] for p in response.json()["predictions"]]
        sampled = set(pd.Series(answered)[routing.logged(pd.Series(answered), 0.1)])
        if sig == signal.SIGKILL:  # a full buffer is flushed in a thread: killed before it ends, that flush is lost too
            deadline = time.monotonic() + 60
            while len(logged_rows(config, Table.PREDICTION_LOG, day)) < len(sampled) - lost_at_most:
                assert time.monotonic() < deadline, "a full buffer was not flushed within 60 s"
                time.sleep(0.2)
        output = server.stop(sig, group=sig == signal.SIGINT)
        assert "Traceback" not in output, output
        logged = set(logged_rows(config, Table.PREDICTION_LOG, day).get("customer_id", []))
        assert logged <= sampled and len(sampled - logged) <= lost_at_most, (len(sampled), len(logged))
