"""Request bodies checked against the row contract (:mod:`pipelines.contract`), before anything is queued.

A body is one row (a JSON object) or many (a list of objects). Each row carries the key, every feature and
optionally the event time (with declared aggregates served from the feature store: the key, the join keys and the
raw features only; :mod:`pipelines.serving.online_features` adds the rest). Numerical features are JSON numbers
(finite, within their configured bounds) or null, categorical ones strings (among their allowed values, if
configured) or null: the rules extraction and batch scoring apply to the same columns.
A wrong type, a missing or unknown column, a non-finite number or a repeated key is a :class:`BodyError` that
names the row and the field, answered 422: a body never reaches the model unchecked and never causes a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.contract import RowContract


class BodyError(ValueError):
    """What is wrong with a request body, as FastAPI-style ``detail`` items (``loc`` names the field)."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail))
        self.detail = detail


def _problem(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def parse_rows(raw: bytes, config: Config, max_rows: int) -> pd.DataFrame:
    """The body's rows as a frame of key, event time and features (model input types), or a :class:`BodyError`."""
    return to_frame(check_rows(raw, config, max_rows), config)


def check_rows(raw: bytes, config: Config, max_rows: int) -> list[dict[str, Any]]:
    """The body's rows, each checked against the schema, or a :class:`BodyError` naming every bad field.

    Cheap (no pandas): the server checks each request as it comes and builds one frame per batch."""
    try:
        body = json.loads(raw)  # NaN and Infinity literals parse; the finite check below rejects them
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError([_problem([], f"invalid JSON: {exc}", "json_invalid")]) from exc
    single = isinstance(body, dict)
    rows = [body] if single else body
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise BodyError([_problem([], "expected a row (JSON object) or a non-empty list of rows", "body_type")])
    if len(rows) > max_rows:
        raise BodyError([_problem([], f"{len(rows)} rows; at most {max_rows} per request", "too_many_rows")])
    online = config.online_features  # the declared features come from the feature store, not the body
    contract = RowContract.of(config.dataset, declared=not online)
    required, columns = contract.required, contract.columns
    if online:
        required = [*required, *config.dataset.join_keys]
    known = {*required, contract.event_time}
    problems: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for index, row in enumerate(rows):
        where = [] if single else [index]
        problems += [_problem([*where, c], "field required", "missing") for c in required if c not in row]
        problems += [_problem([*where, c], "unknown column", "extra_forbidden") for c in row if c not in known]
        key = row.get(contract.key)
        if contract.key in row and (isinstance(key, bool) or not isinstance(key, str | int)):
            problems.append(_problem([*where, contract.key], "expected a string or integer key", "key_type"))
        elif key in seen:
            problems.append(_problem([*where, contract.key], "duplicate key in this request", "duplicate_key"))
        seen.add(key if isinstance(key, str | int) else None)
        for name, column in columns.items():
            found = column.value_problem(row.get(name))
            if name in row and found:
                problems.append(_problem([*where, name], found[1], found[0]))
        if row.get(contract.event_time) is not None:
            try:
                pd.Timestamp(row[contract.event_time])
            except (ValueError, TypeError) as exc:
                problems.append(_problem([*where, contract.event_time], f"not a timestamp: {exc}", "datetime"))
    if problems:
        raise BodyError(problems)
    return rows


def to_frame(rows: list[dict[str, Any]], config: Config) -> pd.DataFrame:
    """Rows as the batch path sees them: float64 numbers (null -> NaN), text categories, UTC event times.

    Built column by column from the checked rows (no per-column type inference or conversion passes): the server
    builds one frame per dynamic batch, so its cost is part of every request's latency."""
    dataset = config.dataset
    columns: dict[str, Any] = {dataset.key: [row[dataset.key] for row in rows]}
    columns[dataset.event_time] = _event_times([row.get(dataset.event_time) for row in rows])
    for column in dataset.features.numbers:
        columns[column] = np.array([row[column] for row in rows], dtype=np.float64)  # None -> NaN
    for column in dataset.features.categorical:
        columns[column] = np.array([row[column] for row in rows], dtype=object)
    return pd.DataFrame(columns)


def _event_times(values: list[Any]) -> pd.Series:
    """UTC timestamps; the request time where a row has none. ISO 8601 (the usual form) parses fast; any other form
    :func:`check_rows` accepted is parsed one by one."""
    series = pd.Series(values, dtype=object)
    try:
        times = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        times = pd.to_datetime(series, utc=True, format="mixed")
    return times.fillna(pd.Timestamp(datetime.now(UTC)))
