"""One dynamic batch, scored: the rows of several requests as one frame, one model call, the rows to log.

A :class:`Job` is plain data (the checked request rows and, per request, its arm, log table and whether every row
is logged), so it crosses to the server's scoring child cheaply; :func:`run_job` does all of a batch's pandas work
where the model is (the child, or a thread of the server), and the server's event loop only buffers the log rows
it gets back and answers the requests. Pure: numpy and pandas, the batch path's :func:`predict_frame`, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.predict import predict_frame
from pipelines.serving.routing import logged
from pipelines.serving.schema import to_frame

SOURCE = "online"


@dataclass(frozen=True)
class Stamp:
    """The prediction log's constant columns for a batch's rows: which version scored them, in which server run."""

    model_name: str
    model_version: str
    model_run_id: str
    run_id: str


@dataclass(frozen=True)
class Job:
    """The rows of a batch's requests (checked against the schema), in order, and per request what its rows need."""

    rows: list[dict[str, Any]]
    sizes: list[int]  # rows per request
    arms: list[str]
    tables: list[str]  # the log table each request's sampled rows go to
    log_all: list[bool]  # every row logged (an A/B test), not only the sampled keys
    stamp: Stamp


@dataclass
class BatchResult:
    """Prediction columns for every row of the batch (0 where a row failed), each failed row's error by position
    in the batch, and the log rows per table, stamped: buffered before any request of the batch is answered."""

    values: dict[str, np.ndarray]
    errors: dict[int, str]
    logs: list[tuple[str, pd.DataFrame]]


def run_job(job: Job, model: Any, config: Config) -> BatchResult:
    """Score ``job``'s rows as one frame with the batch path's :func:`predict_frame`; pick and stamp the rows to log
    (the batch path's key sample, or every row of an A/B request)."""
    frame = to_frame(job.rows, config)
    keys = frame[config.dataset.key]
    # Keys of different requests may repeat (the same customer asked twice): positions stand in for them, so the
    # batch rule "a repeated key is dead-lettered" applies within one request only (checked on entry).
    predicted, reasons = predict_frame(frame.assign(**{config.dataset.key: np.arange(len(frame))}), model, config)
    filled = predicted if reasons.empty else predicted.reindex(range(len(frame)), fill_value=0)
    values = {c: filled[c].to_numpy() for c in predicted.columns}
    keep = np.zeros(len(frame), bool)
    keep[predicted.index.to_numpy()] = True
    keep &= logged(keys, config.monitoring.sample_rate) | np.repeat(job.log_all, job.sizes)
    where = np.flatnonzero(keep)
    logs = []
    if len(where):
        predictions = {c: v[where] for c, v in values.items()}
        arms = np.repeat(job.arms, job.sizes)[where]
        rows = _log_rows(frame.iloc[where], predictions, arms, config.dataset.event_time, job.stamp)
        tables = np.repeat(job.tables, job.sizes)[where]
        split = len(set(tables)) > 1  # one table, as a rule: only a batch mixing shadow and canary rows has two
        logs = [(str(t), rows[tables == t].reset_index(drop=True) if split else rows) for t in dict.fromkeys(tables)]
    return BatchResult(values, {int(i): str(e) for i, e in reasons.items()}, logs)


def _log_rows(
    rows: pd.DataFrame, predicted: dict[str, np.ndarray], arms: np.ndarray, event_time: str, stamp: Stamp
) -> pd.DataFrame:
    """The logged rows as the batch log has them: key, event time, features, prediction(s), and the constant
    columns (which version, which server run, ``source``), plus the ``arm``. Built as one frame from columns: the
    child builds it for most batches, so its cost is part of every request's latency."""
    columns = {
        **{c: rows[c].array for c in rows.columns},
        **predicted,
        "arm": arms,
        "model_name": stamp.model_name,
        "model_version": stamp.model_version,
        "model_run_id": stamp.model_run_id,
        "run_id": stamp.run_id,
        "logical_date": rows[event_time].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
        "scored_at": pd.Timestamp(datetime.now(UTC)),
        "source": SOURCE,
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
