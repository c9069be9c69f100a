"""Where a served model's batches are predicted: in a child process (the default) or in a thread of the server.

Why a process: the server's event loop (reading requests, writing answers) and a batch's predict (pandas and
scikit-learn, holding the GIL most of the time) took turns on one interpreter, so a request that arrived while a
batch was predicted waited for the GIL twice, to be read and to be answered, and the loop could use one core at
most between them. In a child process the predict runs on another core and the loop stays free; a batch crosses
the boundary as a frame of at most ``max_batch_rows`` rows (well under a millisecond to pickle), and each version
crosses once, pickled by the server that loaded it from the registry (the same trust rule: only registered
versions reach the child). ``serving.predict_in: thread`` keeps the one-process server for a one-core machine,
where a second process has no core of its own to run on.

Both run the batch path's :func:`pipelines.scoring.predict_frame`, so a row gets the same answer either way.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar, Protocol

import pandas as pd

from pipelines.config import Config
from pipelines.registry import MODEL_CACHE_SIZE, ModelRef
from pipelines.scoring import predict_frame


class Scorer(Protocol):
    def prepare(self, ref: ModelRef, model: Any) -> None:
        """Make ``model`` (the version ``ref``) ready to predict; raises if it cannot be."""

    def predict(self, ref: ModelRef, model: Any, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """:func:`predict_frame` of ``frame`` by that version."""

    def close(self) -> None: ...


class ThreadScorer:
    """Predicts in the calling thread, with the model the server holds."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def prepare(self, ref: ModelRef, model: Any) -> None:
        pass

    def predict(self, ref: ModelRef, model: Any, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return predict_frame(frame, model, self.config)

    def close(self) -> None:
        pass


class NotLoaded(LookupError):
    """The child does not hold this version (it started after the version was sent, or dropped it)."""


# --- in the child process -------------------------------------------------------------------------------------
class _Child:
    """What the child holds: the config it was started with and the versions sent to it, most recent last."""

    config: ClassVar[Config]
    models: ClassVar[OrderedDict[str, Any]] = OrderedDict()


def _start(config: Config, parent: int) -> None:
    # Ctrl-C reaches the terminal's whole process group: the server alone decides when its child stops (after the
    # batches in flight, on shutdown), so the child neither dies mid-batch nor prints a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _Child.config = config
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with(parent: int) -> None:
    """End the child when the server is gone: a killed server (SIGKILL, the OOM killer) runs no shutdown, and the
    child, holding both ends of its task queue, would otherwise wait on it forever."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _load(key: str, payload: bytes) -> None:
    """Hold one more version (the least recently used beyond ``MODEL_CACHE_SIZE`` goes), frozen out of the cyclic
    garbage collector as the server freezes its own: a full collection over a loaded model stalls every batch."""
    models = _Child.models
    models[key] = pickle.loads(payload)  # bytes the parent pickled from a version it loaded from the registry
    models.move_to_end(key)
    while len(models) > MODEL_CACHE_SIZE:
        models.popitem(last=False)
    gc.freeze()


def _predict(key: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    model = _Child.models.get(key)
    if model is None:
        raise NotLoaded(key)
    _Child.models.move_to_end(key)
    return predict_frame(frame, model, _Child.config)


# --- in the server ----------------------------------------------------------------------------------------------
class ProcessScorer:
    """One child process per served model; started on first use, started again if it dies.

    One worker keeps batches in order and the model in one place; a second model gets its own child."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the server has threads (uvicorn, the scoring and reload threads) when it starts
                # the child, and a forked copy of a lock one of them held would never be released.
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start,
                    initargs=(self.config, os.getpid()),
                )
            return self._pool

    def prepare(self, ref: ModelRef, model: Any) -> None:
        self._call(_load, _key(ref), pickle.dumps(model))

    def predict(self, ref: ModelRef, model: Any, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        try:
            return self._call(_predict, _key(ref), frame)
        except NotLoaded:  # a restarted child: send the version again, then the batch
            self.prepare(ref, model)
            return self._call(_predict, _key(ref), frame)

    def _call(self, function: Any, *args: Any) -> Any:
        """``function(*args)`` in the child; once more on a new child if the old one died (the error propagates
        if the new one dies too)."""
        pool = self._executor()
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return self._executor().submit(function, *args).result()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _key(ref: ModelRef) -> str:
    return f"{ref.name}/{ref.version}"


def make_scorer(config: Config) -> Scorer:
    return ProcessScorer(config) if config.serving.predict_in == "process" else ThreadScorer(config)
