"""A torch network too large for one worker, scored with pipeline parallelism on Dask (``scoring.shards > 1``).

The network's layers are cut into contiguous stages of about equal parameter bytes, and each stage is a Dask actor
on its own worker (:mod:`pipelines.shard_plan` decides the cut and the workers: GPU workers first when there are
some, each stage only where its weights fit). A stage loads the registered version once, with its weights
memory-mapped from the artifact, and keeps only its own layers: the other layers' pages are never read, so each
worker holds about 1/N of the weights.

Row groups are scored by the same ``score_piece`` tasks as an unsharded model (the same input checks, dead
letters, files and row accounting). Their model is a :class:`ShardedNet`: the preprocessing and the output scaling
run in the task, and the layers' work flows through the stages as micro-batches of ``scoring.shard_batch_rows``
rows, ``2 x shards`` of them in flight, so every stage computes at the same time as the others. Activations go back
through the calling task between stages instead of from stage to stage: a stage never waits on another, the
caller always knows where each micro-batch is, and a lost stage fails exactly the tasks that were using it; the
price is one more hop per stage. Sharding buys capacity, not speed: a model that fits one worker scores faster
unsharded (every worker runs the whole network, with no hops).

A stage lost with its worker: Dask does not restart actors, but it notices the worker is gone (its nanny at once,
else the scheduler's heartbeats) and errs the actor's future and every task that uses it. :class:`StagePipeline`
then rebuilds each lost stage on another worker and redoes the failed row groups under a fresh file name, so a task
still running against the lost stage can never overwrite a redone piece; the day is committed as usual, only when
rows in = scored + dead-lettered. Dask's actors are its own primitive for state that lives on a chosen worker, so no
other framework (Ray, ``torch.distributed.pipelining``) joins the cluster for this.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, Future, as_completed, get_worker, wait

from pipelines import model_artifacts, shard_plan
from pipelines.errors import StageLost, TooFewWorkers

log = logging.getLogger(__name__)

ALIVE_POLL_S = 2.0  # a stage call this slow asks whether its stage's worker is still in the cluster
MAX_REBUILDS = 3  # stages lost in one run before it gives up (Airflow's task retry then starts the day over)
NOTICE_S = 30.0  # a call found its stage's worker gone: how long the scheduler may take to say so too
REJOIN_S = 120.0  # a lost stage waits this long for a worker to place it on (a nanny restarting the dead one)
REJOIN_POLL_S = 1.0  # between two placements of a lost stage


def parameter_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers (read from their shapes: a memory-mapped weight is not read)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


class Stage:
    """Layers ``start:stop`` of a registered torch version, held by the worker this actor lives on."""

    def __init__(self, model: Any, tracking_uri: str, layers: tuple[int, int], use_gpu: bool) -> None:
        import torch

        net = model_artifacts.load_mapped(model, tracking_uri)
        self.device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.layers = layers
        self.module = torch.nn.Sequential(*list(net.layers)[layers[0] : layers[1]]).to(self.device).eval()
        self.parameter_bytes = parameter_bytes(self.module)
        log.info("stage of layers %d:%d on %s: %d parameter bytes", *layers, self.device, self.parameter_bytes)

    def forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.require(x, requirements="W")).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        """Where this stage is and what it holds: for the run's result, the tests and the benchmark."""
        import psutil

        return {
            "layers": list(self.layers),
            "worker": get_worker().address,
            "device": self.device,
            "parameter_bytes": self.parameter_bytes,
            "worker_rss_bytes": psutil.Process(os.getpid()).memory_info().rss,
        }


class _Call:
    """One stage call in flight. A stage that cannot be reached is a :class:`StageLost`, never a model error; and a
    call whose worker died never returns (the proxy inside a task waits on the actor's key, which the scheduler
    reports to the client, not to the task), so a slow call asks the scheduler every :data:`ALIVE_POLL_S` seconds
    whether the stage's worker is still there: the task fails instead of holding its worker's thread forever."""

    def __init__(self, stage: int, actor: Any, address: str, x: np.ndarray) -> None:
        self.stage, self.address = stage, address
        try:
            self.future = actor.forward(x)
        except RuntimeError as exc:  # the actor's proxy: "Worker holding Actor was lost"
            raise StageLost(f"stage {stage} on {address}: {exc}") from exc

    def result(self) -> np.ndarray:
        while True:
            try:
                return self.future.result(timeout=ALIVE_POLL_S)
            except TimeoutError:
                if self.address not in _workers_now():
                    raise StageLost(f"stage {self.stage}: its worker {self.address} left the cluster") from None
            except OSError as exc:  # the worker went away mid-call (CommClosedError is an OSError too)
                raise StageLost(f"stage {self.stage} on {self.address}: {type(exc).__name__}: {exc}") from exc


def _workers_now() -> set[str]:
    """The scheduler's workers, asked now from inside a task: the task's own client is asynchronous, and its
    ``scheduler_info()`` is a cache of cluster totals without the workers."""
    from distributed.utils import sync

    worker = get_worker()
    return set(sync(worker.loop, worker.scheduler.identity, n_workers=-1)["workers"])


def flow(x: np.ndarray, stages: Sequence[Callable[[np.ndarray], Any]], batch_rows: int, in_flight: int) -> np.ndarray:
    """``x`` through ``stages`` in micro-batches of ``batch_rows`` rows, with up to ``in_flight`` of them between the
    first stage and the last, so the stages work at the same time. A stage call returns something with
    ``.result()``; each stage takes the calls in the order they are made. The outputs, in the input's order."""
    batches = [x[i : i + batch_rows] for i in range(0, len(x), batch_rows)]
    outputs: list[np.ndarray] = [np.empty(0, np.float32)] * len(batches)
    moving: collections.deque[tuple[int, int, Any]] = collections.deque()  # (batch, stage, call), oldest first
    started = 0
    while moving or started < len(batches):
        while started < len(batches) and len(moving) < in_flight:
            moving.append((started, 0, stages[0](batches[started])))
            started += 1
        batch, stage, call = moving.popleft()
        out = call.result()
        if stage + 1 < len(stages):
            moving.append((batch, stage + 1, stages[stage + 1](out)))
        else:
            outputs[batch] = out
    return np.concatenate(outputs) if outputs else np.empty(0, np.float32)


class ShardedNet:
    """A TabularNet's scoring face (``classes_``, ``predict``, ``predict_proba``) whose layers run in the stages."""

    def __init__(self, head: Any, stages: Sequence[tuple[Any, str]], batch_rows: int) -> None:
        self.head = head  # the version without its layers: preprocessing, classes, target scale
        self.classes_ = head.classes_
        self.calls = [functools.partial(_Call, i, actor, address) for i, (actor, address) in enumerate(stages)]
        self.batch_rows = batch_rows

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        out = flow(self.head.matrix(frame), self.calls, self.batch_rows, 2 * len(self.calls))
        return out.reshape(len(frame))  # the last layer's one output per row (TabularNet.forward squeezes it)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.head.probabilities(self._outputs(frame))

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.head.values(self._outputs(frame))


_HEADS: dict[Any, Any] = {}


def sharded_model(model: Any, tracking_uri: str, stages: Sequence[tuple[Any, str]], batch_rows: int) -> ShardedNet:
    """The model a ``score_piece`` task of a sharded run scores with, over ``stages`` (each stage's actor and its
    worker's address); its head is loaded once per worker process (memory-mapped, layers dropped: no weight read)."""
    key = (model, tracking_uri)
    if key not in _HEADS:
        head = model_artifacts.load_mapped(model, tracking_uri)
        head.layers = None
        _HEADS.clear()  # one version's head at a time: a worker moves on to the next champion
        _HEADS[key] = head
    return ShardedNet(_HEADS[key], stages, batch_rows)


def worker_slots(client: Client) -> list[shard_plan.WorkerSlot]:
    """The cluster's workers as placement sees them."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return [
        shard_plan.WorkerSlot(address, int(info.get("memory_limit") or 0), dict(info.get("resources") or {}))
        for address, info in workers.items()
    ]


def layer_bytes(model: Any, tracking_uri: str) -> list[int]:
    """Each top-level layer's parameter bytes, from the memory-mapped version (nothing of the weights is read)."""
    net = model_artifacts.load_mapped(model, tracking_uri)
    return [parameter_bytes(layer) for layer in net.layers]


@dataclass
class StagePipeline:
    """The stages of one run: built, rebuilt when lost, and used by the run's ``score_piece`` tasks."""

    client: Client
    job: Any  # pipelines.scoring.ScoringJob
    cut: list[range]
    stage_bytes: list[int]
    futures: list[Future]
    addresses: list[str]
    rebuilds: int = 0
    rounds: int = 0  # submissions of score_piece tasks: each after the first writes files of its own names
    device: str = "cpu"  # the stages' devices, e.g. cuda, or cpu+cuda with stages on GPU and on CPU workers

    @classmethod
    def build(cls, client: Client, job: Any) -> StagePipeline:
        sizes = layer_bytes(job.model, job.config.tracking_uri)
        cut = shard_plan.cut_layers(sizes, job.config.scoring.shards)
        stage_bytes = [sum(sizes[r.start : r.stop]) for r in cut]
        pipeline = cls(client, job, cut, stage_bytes, [None] * len(cut), [""] * len(cut))  # type: ignore[list-item]
        pipeline._place(list(range(len(cut))))
        return pipeline

    def _place(self, stages: list[int]) -> None:
        """Start actors for ``stages`` on the workers placement chooses (not those holding the other stages)."""
        taken = [self.addresses[s] for s in range(len(self.cut)) if s not in stages]
        sizes = [self.stage_bytes[s] for s in stages]
        addresses = shard_plan.place_stages(sizes, worker_slots(self.client), self.job.use_gpu, taken)
        run = uuid.uuid4().hex[:8]
        for stage, address in zip(stages, addresses, strict=True):
            self.addresses[stage] = address
            layers = (self.cut[stage].start, self.cut[stage].stop)
            self.futures[stage] = self.client.submit(
                Stage,
                self.job.model,
                self.job.config.tracking_uri,
                layers,
                self.job.use_gpu,
                actor=True,
                workers=[address],
                allow_other_workers=False,
                key=f"stage-{stage}-{run}",
            )
        self._await_started(stages)
        for stage in stages:
            self.futures[stage].result()  # a stage that cannot load raises here, naming its error
        self.device = "+".join(sorted({i["device"] for i in self.info()}))
        log.info("sharded %s v%s: %s", self.job.model.name, self.job.model.version, self.describe())

    def _await_started(self, stages: list[int]) -> None:
        """Wait for the ``stages``' actors to start. An actor is pinned to its worker, so one placed on a worker that
        has just left (the scheduler still listed it) would wait for that address forever: a worker gone before its
        stage started is a :class:`StageLost`, and its actor is cancelled."""
        pending = [self.futures[s] for s in stages]
        while True:
            try:
                wait(pending, timeout=ALIVE_POLL_S)
                return
            except TimeoutError:
                present = self._present()
                gone = [s for s in stages if self.addresses[s] not in present and self.futures[s].status == "pending"]
                if gone:
                    self.client.cancel(pending, force=True)
                    where = ", ".join(self.addresses[s] for s in gone)
                    raise StageLost(f"stage(s) {gone}: worker(s) {where} left before the stage started") from None

    def _present(self) -> set[str]:
        """The addresses of the cluster's workers, as the scheduler lists them now."""
        return {slot.address for slot in worker_slots(self.client)}

    def _rebuild(self, stages: list[int]) -> None:
        """Place the lost ``stages`` again, waiting up to ``REJOIN_S`` for workers to hold them (a nanny restarts a
        killed worker under a new address within seconds). The scheduler's view can lag the cluster both ways: a
        second worker may leave between the count and the placement (placement then finds too few), or a dead one
        still be listed (its stage never starts); either way placement is tried again until the deadline."""
        deadline = time.monotonic() + REJOIN_S
        while True:
            try:
                self._place(stages)
                return
            except (TooFewWorkers, StageLost) as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("stage(s) %s not placed yet (%s): trying again once workers rejoin", stages, exc)
                time.sleep(REJOIN_POLL_S)

    def describe(self) -> str:
        return "; ".join(
            f"stage {i} (layers {r.start}:{r.stop}, {b / shard_plan.MIB:,.1f} MiB) on {a}"
            for i, (r, b, a) in enumerate(zip(self.cut, self.stage_bytes, self.addresses, strict=True))
        )

    def info(self) -> list[dict[str, Any]]:
        """Each stage's worker, device, parameter bytes and worker RSS, asked of the actors themselves (a stage lost
        after the last row group was scored is reported as lost: the day's rows are all there)."""
        found = []
        for stage, (future, address) in enumerate(zip(self.futures, self.addresses, strict=True)):
            try:
                found.append(future.result().info().result())
            except (RuntimeError, OSError):  # the actor's worker is gone
                layers = [self.cut[stage].start, self.cut[stage].stop]
                found.append({"layers": layers, "worker": address, "device": "lost", "parameter_bytes": 0})
        return found

    def lost(self, patience: float = 0.0) -> list[int]:
        """Stages whose actor erred or whose worker left the cluster. A task can see its stage's worker gone (a
        closed connection) before the scheduler does: then this waits up to ``patience`` seconds for it."""
        deadline = time.monotonic() + patience
        while True:
            present = self._present()
            pairs = enumerate(zip(self.futures, self.addresses, strict=True))
            lost = [i for i, (future, address) in pairs if future.status != "finished" or address not in present]
            if lost or time.monotonic() >= deadline:
                return lost
            time.sleep(0.5)

    def score(
        self, score_piece: Callable[..., Any], pieces: Sequence[Any], duplicates: dict[int, tuple[int, ...]], **where
    ) -> list[Any]:
        """Run ``score_piece`` on every piece through the stages; a piece failed by a lost stage is redone after
        the stage is rebuilt elsewhere. Any other failure (after Dask's retries) is raised as it is."""
        results: dict[int, Any] = {}
        todo = list(pieces)
        while todo:
            # Each round's files have names of their own, so a task of an earlier round still running against a
            # lost stage can never overwrite a later round's piece.
            self.rounds += 1
            job = replace(self.job, attempt=f"{self.job.attempt}r{self.rounds - 1}") if self.rounds > 1 else self.job
            stages = [[future, address] for future, address in zip(self.futures, self.addresses, strict=True)]
            futures = {
                self.client.submit(
                    score_piece, piece, job, duplicates.get(piece.index, ()), stages=stages, pure=False, **where
                ): piece
                for piece in todo
            }
            failed: list[tuple[Any, BaseException]] = []
            for future in as_completed(futures):
                try:  # a finished result can still be lost: it lives on the worker that computed it until gathered
                    result = results[futures[future].index] = future.result()
                except Exception as exc:  # noqa: BLE001 (the piece failed or its result was lost: sorted out below)
                    failed.append((futures[future], exc))
                    continue
                result.device = self.device  # where the layers ran; the task only pre- and post-processed
            if not failed:
                break
            lost = self.lost(NOTICE_S if any(isinstance(e, StageLost) for _, e in failed) else 0.0)
            if not lost:
                raise failed[0][1]
            self.rebuilds += 1
            if self.rebuilds > MAX_REBUILDS:
                raise StageLost(f"stages were lost {self.rebuilds} times in one run; last: {failed[0][1]}")
            log.warning(
                "stage(s) %s lost with their worker: rebuilding them and redoing %d row group(s)", lost, len(failed)
            )
            self._rebuild(lost)
            todo = [piece for piece, _ in failed]
        return [results[p.index] for p in pieces]

    def close(self) -> None:
        self.client.cancel([f for f in self.futures if f is not None], force=True)


@contextmanager
def stages(client: Client, job: Any) -> Iterator[StagePipeline]:
    """The run's stages, released when the run ends (their workers keep nothing of the model)."""
    pipeline = StagePipeline.build(client, job)
    try:
        yield pipeline
    finally:
        pipeline.close()


def check_unsharded(client: Client, job: Any, eligible: set[str] | None) -> None:
    """Unsharded, a torch model must fit each worker that may load it (all, or ``eligible``); its size is its
    artifact's, listed by the store (this runs on every unsharded torch run: no download, no torch import)."""
    slots = [s for s in worker_slots(client) if eligible is None or s.address in eligible]
    if any(s.memory_limit for s in slots):
        shard_plan.check_whole_model_fits(model_artifacts.stored_bytes(job.model, job.config.tracking_uri), slots)
