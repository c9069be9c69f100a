"""Declared features from extraction to training to the online server (Feast): the model trains on the columns
extraction published; a request carries the key and the raw fields only, and a row gets the features and the
prediction the batch path gave it; an entity the store lacks gets the declared defaults (what a row without history
gets in batch), is answered, and is counted in /metrics. One-row requests batched together share one store call."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from lakes import REPO, declared_features, write_config, write_payments
from test_server import free_port

from pipelines import feature_store, registry
from pipelines.aggregates import add_declared
from pipelines.config import load_config
from pipelines.features import extract_features
from pipelines.predict import predict_frame
from pipelines.scoring import score_day
from pipelines.serving.app import Metrics
from pipelines.serving.engine import Batcher, FeatureLookupFailed, load_version
from pipelines.serving.online_features import OnlineFeatures
from pipelines.serving.schema import check_rows
from pipelines.serving.scorer import make_scorer
from pipelines.storage import Lake, Table
from pipelines.training import labeled_window, train_and_register

START = date(2026, 10, 1)
DAY = date(2026, 10, 4)


@pytest.mark.integration
def test_a_key_only_request_gets_the_batch_features_and_prediction_and_a_missing_entity_the_defaults(
    tmp_path: Path, raw_data: Path, dask_client
):
    payments = write_payments(raw_data, tmp_path / "payments")
    overrides = {"dataset": declared_features(payments), "feature_store": {"repo": str(tmp_path / "feature_repo")}}
    config_file = write_config(tmp_path, raw_data, **overrides)
    config = load_config(config_file)
    for i in range(4):
        extract_features(config, START + timedelta(days=i))
        feature_store.materialize_day(config, START + timedelta(days=i))
    trained = train_and_register(config, DAY - timedelta(days=1))
    # Training read the declared features extraction published for its rows, and the model takes them as inputs.
    window, days = labeled_window(config, DAY - timedelta(days=1))
    computed = config.dataset.features.computed
    published = Lake.from_config(config).read_days(Table.FEATURES, days).set_index(config.dataset.key)
    expected = published.loc[window[config.dataset.key], computed].reset_index(drop=True)
    pd.testing.assert_frame_equal(window[computed], expected)
    mlflow.set_tracking_uri(config.tracking_uri)
    model = mlflow.sklearn.load_model(f"models:/{config.model.name}/{trained.version}")
    assert list(model.feature_names_in_) == config.dataset.features.all
    score_day(config, DAY, "batch-1", dask_client)
    batch = Lake.from_config(config).read(Table.PREDICTIONS, DAY).set_index("customer_id")
    features = Lake.from_config(config).read(Table.FEATURES, DAY)

    port = free_port()
    log_path = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.serving", "--config", str(config_file), "--port", str(port)],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError(f"server not ready: {log_path.read_text()}")

        # Key, event time and the raw features only: the declared ones come from the store.
        raw = features[[config.dataset.key, config.dataset.event_time, *config.dataset.features.raw]]
        raw = raw.astype(object).where(raw.notna(), None)
        raw[config.dataset.event_time] = raw[config.dataset.event_time].map(lambda t: t.isoformat())
        rows = raw.to_dict("records")
        has_history = features["paid_sum_30d"].gt(0)
        assert has_history.any() and (~has_history).any()
        predict = f"{url}/v1/models/{config.model.name}:predict"
        answers = []
        for start in range(0, len(rows), 200):
            response = httpx.post(predict, json=rows[start : start + 200], timeout=60)
            assert response.status_code == 200, response.text
            answers += response.json()["predictions"]
        online = pd.DataFrame(answers).set_index("key")
        assert len(online) == len(rows)
        same = online["probability"] == batch.loc[online.index, "probability"]  # exactly equal
        assert same.all() and len(same[has_history.to_numpy()]) and len(same[~has_history.to_numpy()])

        # A body carrying a declared feature is refused: it comes from the store, not the caller.
        refused = httpx.post(predict, json={**rows[0], "paid_sum_30d": 1.0}, timeout=30)
        assert refused.status_code == 422 and "paid_sum_30d" in refused.text

        # An entity the store has never seen: answered with the declared defaults, and counted.
        new = {**rows[0], config.dataset.key: "never-seen"}
        response = httpx.post(predict, json=new, timeout=30)
        assert response.status_code == 200, response.text
        alone = features.head(1).drop(columns=config.dataset.features.computed).assign(customer_id="never-seen")
        expected, _ = predict_frame(add_declared(config, alone), model, config)
        response_probability = response.json()["predictions"][0]["probability"]
        assert response_probability == expected["probability"].iloc[0]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        pattern = r'serving_feature_lookups_total\{model="credit_default",result="(\w+)"\} (\S+)'
        counts = {result: float(value) for result, value in re.findall(pattern, metrics)}
        assert counts == {"found": len(rows), "missing": 1}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    # One-row requests queued together: one batch, one Feast call per entity kind (each entity asked once, the
    # repeated and the never-seen one included), and each request its own row's batch prediction.
    serving = config.serving.model_copy(update={"predict_in": "thread", "max_wait_ms": 5000.0})
    config = config.model_copy(update={"serving": serving})
    online = OnlineFeatures(config)
    online.start()
    store = online._lookup.store = CountingStore(online._lookup.store)
    loaded = load_version(config, registry.connect(config), "champion")
    metrics = Metrics()
    batcher = Batcher(config, metrics, lambda table, rows: None, make_scorer(config, keep=2), "test", online)
    requests = [*rows[:20], rows[0], new]
    checked = [check_rows(json.dumps(row).encode(), config, 1) for row in requests]

    async def serve() -> tuple[list, list]:
        """The requests, then the same ones with the store failing, through one batch loop."""
        loop = asyncio.create_task(batcher.run())
        try:
            ok = asyncio.gather(*(batcher.predict(loaded, row, "champion") for row in checked))
            answered = await asyncio.wait_for(ok, 60)  # bounded: a dead loop fails the test, never hangs it
            store.failing = True
            failing = asyncio.gather(
                *(batcher.predict(loaded, row, "champion") for row in checked), return_exceptions=True
            )
            return answered, await asyncio.wait_for(failing, 60)
        finally:
            loop.cancel()

    answered, failed = asyncio.run(serve())
    assert store.calls == len(feature_store.views(config)) + 1  # one batch of them all, then the failing batch
    assert metrics.batch_rows.labels(config.model.name)._sum.get() == 2 * len(requests)
    expected = [*batch.loc[[r[config.dataset.key] for r in requests[:-1]], "probability"], response_probability]
    assert [a["probability"][0] for a in answered] == expected
    assert metrics.lookups.labels(config.model.name, "missing")._value.get() == 1

    # The store failing: that batch's requests fail with the cause named; the loop goes on.
    assert all(isinstance(f, FeatureLookupFailed) and "store down" in str(f) for f in failed)
    assert metrics.errors.labels(config.model.name, "feature_lookup")._value.get() == 1


class CountingStore:
    """The real Feast store, its online reads counted (and made to fail on demand)."""

    def __init__(self, store) -> None:
        self.store, self.calls, self.failing = store, 0, False

    def get_online_features(self, **kwargs):
        self.calls += 1
        if self.failing:
            raise ConnectionError("store down")
        return self.store.get_online_features(**kwargs)
