"""The HTTP face of the model server (FastAPI): predict, describe, health, readiness and Prometheus metrics.

``POST /v1/models/{name}:predict`` takes one row (an object) or many (a list) and answers, per row, the key,
the prediction (and probability), the version that produced it and its arm. Release strategy per model
(``serving.strategy``): ``champion``; ``canary`` and ``ab`` send ``challenger_share`` of the keys (by the stable key
hash) to the challenger, ``ab`` logging every row of both arms; ``shadow`` has the challenger score every request
off the response path (logged to ``shadow_log``), and only the champion answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pipelines import registry
from pipelines.config import Config
from pipelines.serving import routing
from pipelines.serving.engine import FeatureLookupFailed, Loaded, QueueFull, RowsFailed, ServedModel
from pipelines.serving.online_features import OnlineFeatures
from pipelines.serving.predlog import PredictionLogWriter
from pipelines.serving.schema import BodyError, check_rows
from pipelines.storage import Lake, Table

log = logging.getLogger(__name__)


class Metrics:
    """The server's Prometheus series, in a registry of its own (one per app, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "serving_request_seconds",
            "Predict request latency",
            ["model"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.rows = Counter("serving_rows", "Rows predicted (rate() = rows/s)", ["model", "arm"], registry=r)
        self.errors = Counter("serving_errors", "Errors by kind", ["model", "kind"], registry=r)
        self.queue_rows = Gauge("serving_queue_rows", "Rows waiting for a batch", ["model"], registry=r)
        self.batch_rows = Histogram(
            "serving_batch_rows",
            "Rows per predicted batch",
            ["model"],
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.version = Gauge(
            "serving_model_version", "1 for the version each arm serves", ["model", "arm", "version"], registry=r
        )
        self.logged = Counter("serving_log_rows", "Prediction-log rows written", ["table"], registry=r)
        self.lookups = Counter(
            "serving_feature_lookups",
            "Rows whose declared features were looked up in the feature store, by result (found, missing: the"
            " entity is not in the store and got the declared defaults)",
            ["model", "result"],
            registry=r,
        )


class Server:
    """Every configured model, the shared prediction-log writer and the background tasks."""

    def __init__(self, configs: list[Config]) -> None:
        names = [c.model.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"two configs serve the same model name: {names}")
        self.metrics = Metrics()
        self.writers = {
            c.model.name: PredictionLogWriter(Lake.from_config(c), c.dataset.event_time, c.serving.log_flush_rows)
            for c in configs
        }
        self.features = {c.model.name: OnlineFeatures(c) for c in configs if c.online_features}
        self.models = {
            c.model.name: ServedModel(
                c,
                self.metrics,
                self._log_sink(c.model.name),
                self.writers[c.model.name].run_id,
                self.features.get(c.model.name),
            )
            for c in configs
        }
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Load every champion (a missing one is reported by /readyz), then start batching, reloads and flushes.

        The scoring children start first: their imports run while the server reads the registry."""
        for served in self.models.values():
            await served.scorer.start()
        for features in self.features.values():  # the feature store opens while the scoring children start
            await asyncio.to_thread(features.start)
        for served in self.models.values():
            store = registry.connect(served.config)
            await served.refresh(store)
            self._tasks += [
                asyncio.create_task(served.batcher.run()),
                asyncio.create_task(self._reload_loop(served, store)),
                asyncio.create_task(self._flush_loop(served)),
            ]

    async def stop(self) -> None:
        """Stop the loops and write every buffered log row (what SIGTERM/Ctrl-C ends in)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name, served in self.models.items():
            self._flush(name)
            await served.scorer.close()

    async def _reload_loop(self, served: ServedModel, store: registry.Registry) -> None:
        while True:
            await asyncio.sleep(served.config.serving.reload_interval_s)
            await served.refresh(store)

    async def _flush_loop(self, served: ServedModel) -> None:
        while True:
            await asyncio.sleep(served.config.serving.log_flush_s)
            await asyncio.to_thread(self._flush, served.name)

    def _flush(self, name: str) -> None:
        try:
            written = self.writers[name].flush()
        except Exception:  # a failed write is counted and logged; serving goes on
            log.exception("%s: prediction-log flush failed", name)
            self.metrics.errors.labels(name, "log_write").inc()
            return
        if written:
            self.metrics.logged.labels(Table.PREDICTION_LOG).inc(written)

    def _log_sink(self, name: str) -> Callable[[Table, pd.DataFrame], None]:
        """What a model's batcher calls, on the event loop, with each batch's stamped log rows: buffer them; a full
        buffer is flushed in a thread (off the response path)."""
        writer = self.writers[name]

        def sink(table: Table, rows: pd.DataFrame) -> None:
            if writer.add(table, rows):
                self._background(asyncio.to_thread(self._flush, name))

        return sink

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` off the response path; kept referenced (and cancelled on stop) until it ends."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(work))

    async def predict(self, served: ServedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Route rows to arms, predict, and answer each row with the version and arm that produced it."""
        config = served.config
        serving = config.serving
        champion, challenger = served.arms.get("champion"), served.arms.get("challenger")
        if champion is None:
            raise NotReady(f"model {served.name} has no champion loaded")
        keys = [row[config.dataset.key] for row in rows]
        routed = np.zeros(len(rows), bool)
        if challenger is not None and serving.strategy in ("canary", "ab"):
            routed = routing.to_challenger(pd.Series(keys), serving.challenger_share)
        parts = [
            (arm, loaded, np.flatnonzero(mask))
            for arm, loaded, mask in (("champion", champion, ~routed), ("challenger", challenger, routed))
            if mask.any()
        ]
        log_all = serving.strategy == "ab"
        if len(parts) == 1:  # one arm (the usual case): awaited directly, no task in between to wake up
            arm, loaded, _ = parts[0]
            results = [await served.batcher.predict(loaded, rows, arm, log_all=log_all)]
        else:
            results = await asyncio.gather(
                *(
                    served.batcher.predict(loaded, [rows[i] for i in where], arm, log_all=log_all)
                    for arm, loaded, where in parts
                )
            )
        if challenger is not None and serving.strategy == "shadow":
            self._background(self._shadow(served, challenger, rows))
        answers: list[dict[str, Any]] = [{} for _ in rows]
        for (arm, loaded, where), predicted in zip(parts, results, strict=True):
            self.metrics.rows.labels(served.name, arm).inc(len(where))
            columns = {c: v.tolist() for c, v in predicted.items()}
            for j, i in enumerate(where.tolist()):
                answers[i] = {
                    "key": keys[i],
                    **{c: v[j] for c, v in columns.items()},
                    "model_version": loaded.ref.version,
                    "arm": arm,
                }
        return answers

    async def _shadow(self, served: ServedModel, challenger: Loaded, rows: list[dict[str, Any]]) -> None:
        """The challenger scores the same rows after the champion answered; its rows go to the shadow log."""
        try:
            await served.batcher.predict(challenger, rows, "shadow", table=Table.SHADOW_LOG)
        except Exception as exc:  # noqa: BLE001 (a shadow failure is counted, never seen by the client)
            self.metrics.errors.labels(served.name, f"shadow_{type(exc).__name__}").inc()
            return
        self.metrics.rows.labels(served.name, "shadow").inc(len(rows))


class NotReady(RuntimeError):
    """No champion is loaded for the model (yet)."""


def create_app(configs: list[Config]) -> FastAPI:
    """The FastAPI app serving ``configs`` (one model each); models load in its lifespan."""
    server = Server(configs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(title="mlops-pipeline model server", lifespan=lifespan)
    app.state.server = server

    def _error(status: int, name: str, kind: str, detail: Any, headers: dict[str, str] | None = None) -> Response:
        server.metrics.errors.labels(name, kind).inc()
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request) -> Response:
        started = time.perf_counter()
        served = server.models.get(name)
        if served is None:
            return JSONResponse({"detail": f"unknown model {name!r}; serving {sorted(server.models)}"}, 404)
        try:
            rows = check_rows(await request.body(), served.config, served.config.serving.max_request_rows)
            predictions = await server.predict(served, rows)
        except BodyError as exc:
            return _error(422, name, "invalid_body", exc.detail)
        except QueueFull as exc:
            retry = max(1, math.ceil(served.config.serving.max_wait_ms / 1000))
            return _error(429, name, "queue_full", str(exc), {"Retry-After": str(retry)})
        except RowsFailed as exc:
            detail = [{"loc": ["body", i], "msg": e, "type": "model_error"} for i, e in sorted(exc.errors.items())]
            return _error(422, name, "model_error", {"model_version": exc.version, "errors": detail})
        except NotReady as exc:
            return _error(503, name, "not_ready", str(exc), {"Retry-After": "5"})
        except FeatureLookupFailed as exc:
            return _error(503, name, "feature_lookup", str(exc), {"Retry-After": "1"})
        server.metrics.latency.labels(name).observe(time.perf_counter() - started)
        versions = sorted({p["model_version"] for p in predictions})
        return JSONResponse({"model": name, "model_versions": versions, "predictions": predictions})

    @app.get("/v1/models/{name}")
    async def describe(name: str) -> Response:
        served = server.models.get(name)
        if served is None:
            return JSONResponse({"detail": f"unknown model {name!r}"}, 404)
        return JSONResponse(served.describe())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        """Ready when every model has a champion loaded; a version that failed to load is named here too."""
        models = {name: served.describe() for name, served in server.models.items()}
        ready = all("champion" in served.arms for served in server.models.values())
        return JSONResponse({"ready": ready, "models": models}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
