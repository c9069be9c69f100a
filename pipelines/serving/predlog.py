"""Online rows of the prediction log: buffered, then appended to the day's Delta table partition in one commit.

Rows go to ``prediction_log`` (``shadow_log`` for a shadow challenger) under ``date=D/source=online/``, one file and
one Delta append per day per flush, never one per request; D is the UTC day of the row's event time (the request
time when the body has none), as in batch. The columns are the batch log's plus ``arm``, with ``source`` online, so
drift monitoring, the realized metric and the summary read them with the batch rows and no change. A batch rerun
replaces only ``source=batch`` of the day, and an append that conflicts with its commit is committed again
(:meth:`pipelines.storage.Lake.commit`), so neither loses the other's rows.

A flush happens at ``serving.log_flush_rows`` buffered rows, every ``serving.log_flush_s`` and on shutdown. A
row is buffered before its response is sent, so a server stopped normally loses no answered row; a process killed
outright loses at most its buffer: fewer than ``log_flush_rows`` rows, none older than ``log_flush_s``, and the rows
of a flush under way (a full buffer is written in a thread, off the response path).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict

import pandas as pd

from pipelines.serving.batch import SOURCE
from pipelines.storage import Lake, Table

log = logging.getLogger(__name__)


class PredictionLogWriter:
    """Thread-safe buffer of logged rows per table; :meth:`flush` appends each day's rows as one file."""

    def __init__(self, lake: Lake, event_time: str, flush_rows: int) -> None:
        self.lake = lake
        self.event_time = event_time
        self.flush_rows = flush_rows
        self.server_id = uuid.uuid4().hex[:8]
        self.written = 0
        self._buffers: dict[Table, list[pd.DataFrame]] = defaultdict(list)
        self._buffered = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return f"{SOURCE}-{self.server_id}"

    def add(self, table: Table, rows: pd.DataFrame) -> bool:
        """Buffer rows (already stamped); True when the buffer is full and should be flushed now."""
        if rows.empty:
            return False
        with self._lock:
            self._buffers[table].append(rows)
            self._buffered += len(rows)
            return self._buffered >= self.flush_rows

    def flush(self) -> int:
        """Write everything buffered so far; the number of rows written. A failed write keeps its rows buffered."""
        with self._flush_lock:
            with self._lock:
                buffers, self._buffers, self._buffered = self._buffers, defaultdict(list), 0
            parts = []
            for table, frames in buffers.items():
                rows = pd.concat(frames, ignore_index=True)
                parts += [(table, day, part) for day, part in rows.groupby(rows[self.event_time].dt.date, sort=True)]
            total = 0
            for done, (table, day, part) in enumerate(parts):
                try:
                    self._write(table, day, part)
                except Exception:
                    with self._lock:  # what was not written goes back to the buffer: the next flush retries it
                        for again, _, kept in parts[done:]:
                            self._buffers[again].append(kept)
                            self._buffered += len(kept)
                    raise
                total += len(part)
            self.written += total
            return total

    def _write(self, table: Table, day, rows: pd.DataFrame) -> None:
        """One file, appended to the day in one Delta commit (readers see all of it or none)."""
        self.lake.append(table, day, rows)
        log.info("prediction log: %d online rows -> %s", len(rows), self.lake.partition(table, day))
