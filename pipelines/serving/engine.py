"""One served model: its loaded versions (per arm), the dynamic batcher and the hot reload.

Versions are loaded only through the registry aliases, with the batch path's own loader
(:func:`pipelines.model_artifacts.load_model`), and scored with the batch path's own frame scorer
(:func:`pipelines.predict.predict_frame`: checked input, the model, failing rows isolated by bisection), so a row
gets the same prediction online and in batch, and a row the model rejects fails its own request only.

Batching: requests queue; one loop takes the first, then whatever arrives within ``max_wait_ms`` up to
``max_batch_rows`` rows, and scores them in one call (:func:`pipelines.serving.batch.run_job`, off the event loop: in
the model's child process by default, see :mod:`pipelines.serving.scorer`), so the loop keeps accepting requests.
More than ``max_queue_rows`` queued rows is a :class:`QueueFull` (429), never an unbounded queue.

Declared features (a model with ``online_features``): the loop completes the batch's rows in one feature-store
lookup (:class:`pipelines.serving.online_features.OnlineFeatures`: one Feast call per entity kind, each entity once)
before scoring it, so one-row requests share a lookup as they share a model call. A failed lookup fails that
batch's requests with a :class:`FeatureLookupFailed` (503), never the server.

Reload: a background task reads the aliases every ``reload_interval_s``; a moved alias is loaded off the event
loop and then swapped in with one assignment. Each request takes its arms' versions when it is queued, so it is
scored by the version it started with; a version that fails to load leaves the old one serving and is reported.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines import lineage, model_artifacts
from pipelines.config import Config
from pipelines.registry import CHAMPION, ModelRef, Registry
from pipelines.serving.batch import Job, Stamp
from pipelines.serving.online_features import OnlineFeatures
from pipelines.serving.scorer import Scorer, make_scorer
from pipelines.storage import Table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """A registered version in memory, and when it was loaded."""

    ref: ModelRef
    model: Any = field(repr=False)
    alias: str
    loaded_at: float


class QueueFull(RuntimeError):
    """More rows are waiting than ``serving.max_queue_rows``: the client should retry later."""


class RowsFailed(RuntimeError):
    """The model could not score some rows of a request (the other requests of the batch are unaffected)."""

    def __init__(self, errors: dict[int, str], version: str) -> None:
        super().__init__(f"model version {version} failed on {len(errors)} row(s)")
        self.errors = errors
        self.version = version


class FeatureLookupFailed(RuntimeError):
    """The feature store could not be read for a batch: its requests fail, the next batch tries again."""


@dataclass
class _Pending:
    loaded: Loaded
    rows: list[dict[str, Any]]  # checked request rows (completed with the declared features by the batch loop)
    arm: str
    table: Table  # where its logged rows go
    log_all: bool  # every row logged (an A/B test), not only the sampled keys
    future: asyncio.Future
    queued_at: float  # event-loop time: a batch waits at most max_wait_ms from its first request's arrival


def load_version(config: Config, registry: Registry, alias: str) -> Loaded | None:
    """The version holding ``alias``, loaded like batch scoring loads it; None when no version holds it. A version
    trained with feature definitions other than the config's is refused, as batch scoring refuses it."""
    ref = registry.alias(config.model.name, alias)
    if ref is None:
        return None
    lineage.require_own_definitions(registry, ref, config, alias)
    ref = model_artifacts.with_flavor(ref, config.tracking_uri)  # read from the MLmodel file
    model = model_artifacts.load_model(ref, config.tracking_uri, "cpu", config.scoring.torch_batch_rows)
    return Loaded(ref, model, alias, time.time())


# Called on the event loop with each table's stamped log rows of a batch (key, event time, features, prediction(s),
# arm, version), before any request of the batch is answered, so an answered row is always at least in the log's
# buffer.
LogSink = Callable[[Table, pd.DataFrame], None]


class Batcher:
    """The queue and the loop that predicts queued requests together."""

    def __init__(
        self,
        config: Config,
        metrics: Any,
        log_sink: LogSink,
        scorer: Scorer,
        run_id: str,
        features: OnlineFeatures | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id  # the server's, in every logged row
        self.metrics = metrics
        self.log_sink = log_sink
        self.scorer = scorer
        self.features = features  # the declared features' reader, when the rows come without them
        self.queued_rows = 0
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def predict(
        self,
        loaded: Loaded,
        rows: list[dict[str, Any]],
        arm: str,
        table: Table = Table.PREDICTION_LOG,
        log_all: bool = False,
    ) -> dict[str, np.ndarray]:
        """Prediction columns for ``rows`` by ``loaded``, in order; may raise :class:`QueueFull` or
        :class:`RowsFailed`."""
        serving = self.config.serving
        if self.queued_rows + len(rows) > serving.max_queue_rows:
            raise QueueFull(f"{self.queued_rows} rows queued; at most {serving.max_queue_rows}")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queued_rows += len(rows)
        self.metrics.queue_rows.labels(self.config.model.name).set(self.queued_rows)
        self._queue.put_nowait(_Pending(loaded, rows, arm, table, log_all, future, loop.time()))
        return await future

    async def run(self) -> None:
        """Forever: gather one batch (size or time, whichever first), score it, answer its requests.

        The wait is counted from the first request's arrival, not from when the previous batch finished: requests
        that queued while a batch was being predicted have waited already and go in the next batch at once."""
        serving = self.config.serving
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            rows = len(batch[0].rows)
            deadline = batch[0].queued_at + serving.max_wait_ms / 1000
            while rows < serving.max_batch_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                rows += len(item.rows)
            self.queued_rows -= rows
            self.metrics.queue_rows.labels(self.config.model.name).set(self.queued_rows)
            self.metrics.batch_rows.labels(self.config.model.name).observe(rows)
            if self.features is not None:
                batch = await self._complete(batch)
            for version in {id(p.loaded): p.loaded for p in batch}.values():
                await self._score(version, [p for p in batch if p.loaded is version])
            # A scoring thread: let the answered requests write their responses before the next batch's thread
            # competes with this loop for the GIL (they would wait on it, up to a switch interval at a time). A child
            # process: send the next batch first, so the child scores it while this loop writes the answers.
            if self.config.serving.predict_in == "thread":
                await asyncio.sleep(0)

    async def _complete(self, batch: list[_Pending]) -> list[_Pending]:
        """Add the declared features to every row of the batch with one lookup (in a thread: Feast blocks); the
        requests left to score. Rows of the shadow arm are looked up too but not counted: their request was."""
        name = self.config.model.name
        rows = [row for p in batch for row in p.rows]
        try:
            completed, absent = await asyncio.to_thread(self.features.complete, rows)
        except Exception as exc:  # noqa: BLE001 (a store outage fails this batch's requests, not the server)
            error = FeatureLookupFailed(
                f"feature store lookup failed for {len(rows)} row(s) of {len(batch)} request(s):"
                f" {type(exc).__name__}: {exc}"
            )
            log.error("%s: %s", name, error)
            self.metrics.errors.labels(name, "feature_lookup").inc()
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return []
        start = 0
        for pending in batch:
            stop = start + len(pending.rows)
            pending.rows = completed[start:stop]
            if pending.arm != "shadow":
                missing = sum(absent[start:stop])
                self.metrics.lookups.labels(name, "found").inc(stop - start - missing)
                self.metrics.lookups.labels(name, "missing").inc(missing)
            start = stop
        return batch

    async def _score(self, loaded: Loaded, batch: list[_Pending]) -> None:
        """Score one version's share of a batch; each request gets its rows back, or the errors of its own rows."""
        ref = loaded.ref
        job = Job(
            rows=[row for p in batch for row in p.rows],
            sizes=[len(p.rows) for p in batch],
            arms=[p.arm for p in batch],
            tables=[str(p.table) for p in batch],
            log_all=[p.log_all for p in batch],
            stamp=Stamp(ref.name, ref.version, ref.run_id or "", self.run_id),
        )
        try:
            result = await self.scorer.score(version_key(ref), loaded.model, job)
        except Exception as exc:  # noqa: BLE001 (predict_frame isolates model errors; anything else fails the batch)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for table, rows in result.logs:
            self.log_sink(Table(table), rows)
        start = 0
        for pending in batch:
            stop = start + len(pending.rows)
            failed = {i - start: e for i, e in result.errors.items() if start <= i < stop}
            if pending.future.done():  # the client went away
                pass
            elif failed:
                pending.future.set_exception(RowsFailed(failed, ref.version))
            else:
                pending.future.set_result({c: v[start:stop] for c, v in result.values.items()})
            start = stop


class ServedModel:
    """One configured model: champion (and challenger, by the strategy), its batcher and the reload loop."""

    def __init__(
        self, config: Config, metrics: Any, log_sink: LogSink, run_id: str, features: OnlineFeatures | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        # The scorer keeps what the server may serve at once: champion and challenger, and each one's successor.
        self.scorer = make_scorer(config, keep=model_artifacts.MODEL_CACHE_SIZE)
        self.batcher = Batcher(config, metrics, log_sink, self.scorer, run_id, features)
        self.arms: dict[str, Loaded] = {}
        self.reload_errors: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.config.model.name

    def aliases(self) -> dict[str, str]:
        """Arm -> alias served: the champion, plus the challenger when the strategy routes or shadows to it."""
        wanted = {"champion": CHAMPION}
        if self.config.serving.strategy != "champion":
            wanted["challenger"] = self.config.serving.challenger_alias
        return wanted

    async def refresh(self, registry: Registry) -> None:
        """Load every arm whose alias moved (registry calls and loading off the event loop); keep the old version
        on failure."""
        for arm, alias in self.aliases().items():
            current = self.arms.get(arm)
            try:
                ref = await asyncio.to_thread(registry.alias, self.name, alias)
                if ref is None:
                    if arm != "champion" and current is not None:
                        log.info("%s: alias %s removed; %s arm off", self.name, alias, arm)
                        self._swap(arm, None)
                    continue
                if current is not None and current.ref.version == ref.version:
                    self.reload_errors.pop(arm, None)
                    continue
                loaded = await asyncio.to_thread(load_version, self.config, registry, alias)
                if loaded is not None:
                    await self.scorer.prepare(version_key(loaded.ref), loaded.model)
            except Exception as exc:  # noqa: BLE001 (a registry or load failure must not stop serving)
                message = f"{alias}: {type(exc).__name__}: {exc}"
                if self.reload_errors.get(arm) != message:
                    log.error("%s: cannot load %s; still serving %s", self.name, message, _version(current))
                self.reload_errors[arm] = message
                self.metrics.errors.labels(self.name, "reload").inc()
                continue
            if loaded is not None and (current is None or current.ref.version != loaded.ref.version):
                log.info("%s: %s is now version %s (was %s)", self.name, arm, loaded.ref.version, _version(current))
                self._swap(arm, loaded)
                self.reload_errors.pop(arm, None)

    def _swap(self, arm: str, loaded: Loaded | None) -> None:
        """One assignment: requests queued before it keep the version they took.

        A newly loaded version is frozen out of the cyclic garbage collector (with the imports before it): a full
        collection over the ~400,000 objects of a loaded server takes 100-200 ms, a stall of every request in
        flight, and those objects live as long as the process (or the version) anyway."""
        old = self.arms.get(arm)
        if old is not None:
            self.metrics.version.remove(self.name, arm, old.ref.version)
        if loaded is None:
            self.arms.pop(arm, None)
            return
        self.arms[arm] = loaded
        self.metrics.version.labels(self.name, arm, loaded.ref.version).set(1)
        gc.freeze()

    def describe(self) -> dict[str, Any]:
        arms = {
            arm: {
                "version": loaded.ref.version,
                "alias": loaded.alias,
                "flavor": loaded.ref.flavor,
                "loaded_at": pd.Timestamp(loaded.loaded_at, unit="s", tz="UTC").isoformat(),
            }
            for arm, loaded in self.arms.items()
        }
        return {
            "name": self.name,
            "strategy": self.config.serving.strategy,
            **arms.get("champion", {}),
            "arms": arms,
            "reload_errors": dict(self.reload_errors),
        }


def version_key(ref: ModelRef) -> str:
    """How the scorer names a version."""
    return f"{ref.name}/{ref.version}"


def _version(loaded: Loaded | None) -> str:
    return f"version {loaded.ref.version}" if loaded else "nothing"
