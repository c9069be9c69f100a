"""Where a served model's batches are scored: in a child process (the default) or in a thread of the server.

Why a process: the server's event loop (reading requests, writing answers) and a batch's predict (pandas and
scikit-learn, holding the GIL most of the time) took turns on one interpreter, so a request that arrived while a
batch was predicted waited for the GIL twice, to be read and to be answered, and the loop could use one core at
most between them. In a child process the batch runs on another core and the loop stays free.

The child is one process per served model, reached through a pipe that the event loop itself reads (no executor,
no thread in between: each thread hand-off cost a GIL switch on the response path), and it runs the whole of a
batch's pandas work (:func:`pipelines.serving.batch.run_job`): a batch crosses as the requests' checked rows and
comes back as prediction arrays and the stamped log rows. Each version crosses once, pickled by the server that
loaded it from the registry (the same trust rule: only registered versions reach the child). The child imports
only numpy, pandas and the pure prediction code (not MLflow or Dask), and starts while the server loads its
models. ``serving.predict_in: thread`` keeps the one-process server for a one-core machine, where a second process
has no core of its own to run on.

Both run the batch path's :func:`pipelines.predict.predict_frame`, so a row gets the same answer either way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import pickle
import signal
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any, Protocol

from pipelines.config import Config
from pipelines.serving.batch import BatchResult, Job, run_job

log = logging.getLogger(__name__)


class Scorer(Protocol):
    async def start(self) -> None:
        """Get ready to take versions (a child process starts here); returns without waiting for it."""

    async def prepare(self, key: str, model: Any) -> None:
        """Make ``model`` (the version named ``key``) ready to score; raises if it cannot be."""

    async def score(self, key: str, model: Any, job: Job) -> BatchResult:
        """:func:`run_job` of ``job`` by that version."""

    async def close(self) -> None: ...


class ThreadScorer:
    """Scores in a thread of the server, with the model the server holds."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def start(self) -> None:
        pass

    async def prepare(self, key: str, model: Any) -> None:
        pass

    async def score(self, key: str, model: Any, job: Job) -> BatchResult:
        return await asyncio.to_thread(run_job, job, model, self.config)

    async def close(self) -> None:
        pass


class NotLoaded(LookupError):
    """The child does not hold this version (it started after the version was sent, or dropped it)."""


class ChildDied(RuntimeError):
    """The scoring child ended (killed, out of memory) with a call unanswered."""


# --- in the child process -------------------------------------------------------------------------------------
def _child(conn: Connection, config: Config, keep: int) -> None:
    """Answer the server's calls, one at a time, until the server closes its end of the pipe (or dies).

    ``("load", key, pickled model)`` holds one more version (the least recently used beyond ``keep`` goes), frozen
    out of the cyclic garbage collector as the server freezes its own: a full collection over a loaded model
    stalls every batch. ``("score", key, job)`` answers :func:`run_job`. Every answer is ``("ok", value)`` or
    ``("error", exception)``."""
    # Ctrl-C reaches the terminal's whole process group: the server alone decides when its child stops (after the
    # batch in flight, on shutdown), so the child neither dies mid-batch nor prints a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    models: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            kind, key, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the server is gone: a killed server runs no shutdown, and nothing else ends us
            return
        try:
            if kind == "load":
                models[key] = pickle.loads(payload)  # bytes the server pickled from a version it loaded
                models.move_to_end(key)
                while len(models) > keep:
                    models.popitem(last=False)
                gc.freeze()
                answer: tuple[str, Any] = ("ok", None)
            elif key not in models:
                answer = ("error", NotLoaded(key))
            else:
                models.move_to_end(key)
                answer = ("ok", run_job(payload, models[key], config))
        except Exception as exc:  # noqa: BLE001 (the server decides what an error fails)
            answer = ("error", exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 (an exception that cannot be pickled still gets its message across)
            data = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}; answer to {kind}: {answer}")))
        try:
            conn.send_bytes(data)
        except OSError:  # the server died while we scored
            return


# --- in the server ----------------------------------------------------------------------------------------------
class ProcessScorer:
    """One child process per served model; started again (and sent the version again) if it dies.

    One call at a time keeps batches in order and the pipe simple: the batcher scores one batch at a time anyway.
    """

    def __init__(self, config: Config, keep: int) -> None:
        self.config = config
        self.keep = keep
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._process is None:
            self._spawn()

    def _spawn(self) -> None:
        """A new child (spawn, not fork: the server has threads, and a forked copy of a lock one of them held would
        never be released). Its imports run while the caller goes on."""
        self._discard()
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_child, args=(theirs, self.config, self.keep), name=f"scoring-{self.config.model.name}", daemon=True
        )
        process.start()
        theirs.close()
        self._process, self._conn = process, ours

    def _discard(self) -> None:
        """Forget the current child (closing our end of the pipe ends it after the call it is on)."""
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        self._process = self._conn = None

    async def prepare(self, key: str, model: Any) -> None:
        async with self._lock:
            await self._send_version(key, model)

    async def score(self, key: str, model: Any, job: Job) -> BatchResult:
        async with self._lock:
            try:
                return await self._call_on_a_child(("score", key, job))
            except NotLoaded:  # a restarted child: send the version again, then the batch
                await self._send_version(key, model)
                return await self._call_on_a_child(("score", key, job))

    async def _send_version(self, key: str, model: Any) -> None:
        """The child holds ``model`` as ``key`` from now on (pickled in a thread: the loop serves meanwhile)."""
        payload = await asyncio.to_thread(pickle.dumps, model, pickle.HIGHEST_PROTOCOL)
        await self._call_on_a_child(("load", key, payload))

    async def _call_on_a_child(self, message: tuple[str, str, Any]) -> Any:
        """The call on the current child; once more on a new child if it died (then its error propagates)."""
        if self._process is None:
            self._spawn()
        try:
            return await self._call(message)
        except ChildDied as exc:
            log.error("%s; starting a new one", exc)
            self._spawn()
            return await self._call(message)

    async def _call(self, message: tuple[str, str, Any]) -> Any:
        """Send one call and wait for its answer without blocking the loop: the loop watches the pipe."""
        conn = self._conn
        assert conn is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(conn.fileno())
            try:
                answered.set_result(conn.recv_bytes())
            except (EOFError, OSError) as exc:
                answered.set_exception(exc)

        done = False
        try:
            if len(data) > 1 << 20:  # a version: written from a thread, the loop serves requests meanwhile
                await asyncio.to_thread(conn.send_bytes, data)
            else:
                conn.send_bytes(data)
            loop.add_reader(conn.fileno(), readable)
            reply = await answered
            done = True
        except (EOFError, OSError) as exc:
            code = self._process.exitcode if self._process is not None else None
            raise ChildDied(f"scoring child of {self.config.model.name} ended (exit code {code})") from exc
        finally:
            if not done:  # cancelled or failed mid-call: its answer would be read as the next call's
                if not conn.closed:
                    loop.remove_reader(conn.fileno())
                self._discard()
        kind, value = pickle.loads(reply)
        if kind == "error":
            raise value
        return value

    async def close(self) -> None:
        """After the call in flight: the child reads the end of the pipe and exits."""
        async with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()


def make_scorer(config: Config, keep: int) -> Scorer:
    return ProcessScorer(config, keep) if config.serving.predict_in == "process" else ThreadScorer(config)
