"""Event-history tables (``dataset.history``): which of their files can hold a time range, and their events in it.

A feature over the last 90 days of payments must not read ten years of payments. Each history file is examined
once per version, as the scored rows' files are (:mod:`pipelines.sources`: a Parquet footer's statistics when they
settle it, else one read of the time column), and keeps its event-time range in the source index
``history_<table>``. A range of rows then reads only the files whose range meets
``[earliest cut-off - longest window, latest cut-off)``, so a day's features cost the days inside the longest
window, not the table's whole history (bench/features.py measures 30 against 365 days of history).

Events come back as one Arrow table with fixed types (the entity as text, the time as UTC microseconds, declared
numerical columns as float64, categorical ones as text), which :mod:`pipelines.aggregates` hands to DuckDB without
a copy.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import sources, storage
from pipelines.config import Config, HistoryTable
from pipelines.errors import DataError
from pipelines.sources import FileEntry, event_times

log = logging.getLogger(__name__)

ENTITY, TIME = "__entity", "__time"  # the names the engine gives a table's entity and event-time columns
UTC_MICROS = pa.timestamp("us", tz="UTC")


def index_name(name: str) -> str:
    return f"history_{name}"


def _read_file(url: str, table: HistoryTable, options: dict, columns: list[str]) -> pa.Table:
    """One history file's ``columns``; a file that cannot be read, or lacks a declared column, names both."""
    fs, path = storage.filesystem(url, options)
    try:
        with fs.open(path, "rb") as handle:
            if path.endswith(".parquet"):
                names = pq.read_schema(handle).names
                handle.seek(0)
                missing = [c for c in columns if c not in names]
                if not missing:
                    return pq.read_table(handle, columns=columns)
            elif path.endswith((".csv", ".csv.gz")):
                frame = pd.read_csv(handle, compression="infer", dtype={table.entity: str})
                missing = [c for c in columns if c not in frame.columns]
                if not missing:
                    return pa.Table.from_pandas(frame[columns], preserve_index=False)
            else:
                raise DataError(f"history file {url} is neither .csv nor .parquet")
    except DataError:
        raise
    except Exception as exc:  # any parser error: the message must name the file
        raise DataError(f"cannot read history file {url}: {type(exc).__name__}: {exc}") from exc
    raise DataError(f"history file {url}: declared column(s) {missing} not found")


def _times(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Event times as UTC microseconds; naive ones are taken as UTC, text is parsed (unparseable: null)."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return column.cast(UTC_MICROS, safe=False)
    parsed = event_times(pd.DataFrame({"t": column.to_pandas()}), "t")
    return pa.chunked_array([pa.array(parsed.dt.as_unit("us"), UTC_MICROS)])


def _index_file(config: Config, table: HistoryTable, url: str) -> FileEntry:
    """A history file's event-time range, from one read of its time column."""
    times = _times(_read_file(url, table, config.storage.options, [table.event_time]).column(0))
    low, high = None, None
    if times.null_count < len(times):
        low, high = pd.Timestamp(pc.min(times).as_py()).value, pd.Timestamp(pc.max(times).as_py()).value
    return FileEntry(url=url, version="", rows=len(times), low=low, high=high, undated=times.null_count)


def index(config: Config, name: str) -> dict[str, FileEntry]:
    """The event-time index of every file of history table ``name``, (re)indexing only new or changed files."""
    table = config.dataset.history[name]
    read = partial(_index_file, config, table)
    return sources.refresh(config, index_name(name), table.source, read, kind="time", column=table.event_time)


def files_between(entries: dict[str, FileEntry], start: datetime, end: datetime) -> list[FileEntry]:
    """The files whose event-time range meets ``[start, end)``."""
    low, high = pd.Timestamp(start).value, pd.Timestamp(end).value
    return [e for e in entries.values() if e.low is not None and e.high is not None and e.low < high and e.high >= low]


def read_events(config: Config, name: str, start: datetime, end: datetime) -> pa.Table:
    """The events of history table ``name`` with ``start <= time < end``, read from the files that can hold them."""
    table = config.dataset.history[name]
    entries = index(config, name)
    chosen = files_between(entries, start, end)
    columns = [table.entity, table.event_time, *table.columns]
    parts = [_normalised(_read_file(e.url, table, config.storage.options, columns), table) for e in chosen]
    log.info("history %s: %d of %d files hold %s..%s", name, len(chosen), len(entries), start, end)
    if not parts:
        return _empty(table)
    events = pa.concat_tables(parts)
    times = events.column(TIME)
    low, high = pa.scalar(pd.Timestamp(start), UTC_MICROS), pa.scalar(pd.Timestamp(end), UTC_MICROS)
    return events.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high)))


def _schema(table: HistoryTable) -> pa.Schema:
    fields = [pa.field(ENTITY, pa.string()), pa.field(TIME, UTC_MICROS)]
    fields += [pa.field(c, pa.float64()) for c in table.numerical]
    fields += [pa.field(c, pa.string()) for c in table.categorical]
    return pa.schema(fields)


def _empty(table: HistoryTable) -> pa.Table:
    return _schema(table).empty_table()


def _normalised(data: pa.Table, table: HistoryTable) -> pa.Table:
    """A file's columns in the engine's fixed types; a value that cannot take its type names the column."""
    schema = _schema(table)
    arrays = [data.column(table.entity), _times(data.column(table.event_time))]
    arrays += [data.column(c) for c in table.columns]
    converted = []
    for field, array in zip(schema, arrays, strict=True):
        try:
            converted.append(array if array.type == field.type else array.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"history column {field.name}: cannot read {array.type} as {field.type}: {exc}") from exc
    return pa.Table.from_arrays(converted, schema=schema)
