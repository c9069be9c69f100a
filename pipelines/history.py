"""Event-history tables (``dataset.history``): which of their files can hold a time range, and their events in it.

A feature over the last 90 days of payments must not read ten years of payments. Each history file is examined
once per version, as the scored rows' files are (:mod:`pipelines.sources`: a Parquet footer's statistics when they
settle it, else one read of the time column), and keeps its event-time range in the source index
``history_<table>``. A range of rows then reads only the files whose range meets
``[earliest cut-off - longest window, latest cut-off)``, so a day's features cost the days inside the longest
window, not the table's whole history (bench/features.py measures 30 against 365 days of history).

Bad rows: a row without an event time or an entity key can feed no feature. Indexing a file version finds them
(the footer's null counts settle it for Parquet, else the read of the key and time columns) and quarantines them,
with a reason, to one file per source file (``quarantine/_history/<table>/<file>.parquet``, replaced when the file
changes, so a rerun never duplicates them); the index counts them per file (``undated``, ``keyless``), so per
table rows in = valid + quarantined (:func:`accounting`). Reads skip them.

Late events: a day's features depend on the history files whose events fall in its windows (:func:`window`). The
day's record names those files' versions (:func:`day_files`); a file landing or changing later that reaches an
extracted day makes it due again (:func:`pipelines.features.late_days`), as a late file of the scored rows does.

Events come back as one Arrow table with fixed types (the entity as text, the time as UTC microseconds, declared
numerical columns as float64, categorical ones as text), which :mod:`pipelines.aggregates` hands to DuckDB without
a copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import sources, storage
from pipelines.config import Config, HistoryTable
from pipelines.errors import DataError
from pipelines.sources import FileEntry, day_bounds, event_times
from pipelines.validation import REASON

log = logging.getLogger(__name__)

ENTITY, TIME = "__entity", "__time"  # the names the engine gives a table's entity and event-time columns
UTC_MICROS = pa.timestamp("us", tz="UTC")
QUARANTINE_FOLDER = "_history"  # under the quarantine table: <table>/<file>.parquet, rows without key or time
SOURCE_FILE = "source_file"


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


def _quarantine(
    config: Config, name: str, table: HistoryTable, url: str, keyless: pd.Series, undated: pd.Series
) -> None:
    """The file's rows without a time or a key, with the reason, as the table's quarantine file of ``url``
    (replaced whole; removed when the file has none)."""
    bad = (keyless | undated).to_numpy()
    frame = pd.DataFrame()
    if bad.any():
        columns = [table.entity, table.event_time, *table.columns]
        rows = _read_file(url, table, config.storage.options, columns).to_pandas()[bad].astype("string")
        reasons = pd.Series(f"{table.entity}: missing key", index=rows.index)
        reasons[undated.to_numpy()[bad]] = f"{table.event_time}: missing or unparseable"
        frame = rows.assign(**{REASON: reasons, SOURCE_FILE: url})
        log.warning("history %s: %s has %d row(s) without key or time; quarantined", name, url, len(frame))
    storage.Lake.from_config(config).write_undated(url, frame, f"{QUARANTINE_FOLDER}/{name}")


def _index_file(config: Config, name: str, table: HistoryTable, url: str) -> FileEntry:
    """A history file's event-time range (of its rows with a key), from one read of its key and time columns; rows
    without a time or a key are quarantined."""
    data = _read_file(url, table, config.storage.options, [table.entity, table.event_time])
    times = _times(data.column(1))
    undated = pd.Series(pc.is_null(times).to_numpy(zero_copy_only=False))
    keyless = pd.Series(pc.is_null(data.column(0)).to_numpy(zero_copy_only=False)) & ~undated
    _quarantine(config, name, table, url, keyless, undated)
    valid = times.filter(pa.array(~(keyless | undated).to_numpy()))
    low, high = None, None
    if len(valid):
        low, high = pd.Timestamp(pc.min(valid).as_py()).value, pd.Timestamp(pc.max(valid).as_py()).value
    return FileEntry(
        url=url, version="", rows=len(times), low=low, high=high, undated=int(undated.sum()), keyless=int(keyless.sum())
    )


def index(config: Config, name: str) -> dict[str, FileEntry]:
    """The event-time index of every file of history table ``name``, (re)indexing only new or changed files (from
    the footer alone when it shows neither a null time nor a null key)."""
    table = config.dataset.history[name]
    read = partial(_index_file, config, name, table)
    known = sources.load_index(config, index_name(name))
    entries = sources.refresh(
        config, index_name(name), table.source, read, kind="time", column=table.event_time, complete=(table.entity,)
    )
    for url, entry in entries.items():
        before = known.get(url)
        had_bad_rows = before is not None and before.version != entry.version and before.undated + before.keyless > 0
        if had_bad_rows and entry.undated + entry.keyless == 0:  # rewritten clean (its footer may have settled it)
            storage.Lake.from_config(config).write_undated(url, pd.DataFrame(), f"{QUARANTINE_FOLDER}/{name}")
    return entries


def longest_windows(config: Config) -> dict[str, int]:
    """Per history table the aggregates use, its longest window in days."""
    longest: dict[str, int] = {}
    for aggregate in config.dataset.features.aggregates:
        longest[aggregate.table] = max(longest.get(aggregate.table, 0), *aggregate.windows)
    return longest


def indexes(config: Config) -> dict[str, dict[str, FileEntry]]:
    """The index of every history table the aggregates use (one listing of each)."""
    return {name: index(config, name) for name in sorted(longest_windows(config))}


def window(table: HistoryTable, longest: int, day: date) -> tuple[datetime, datetime]:
    """The event times any row of ``day`` can see in the table: ``[day - delay - longest, day + 1 - delay)``."""
    start, end = day_bounds(day)
    delay = timedelta(hours=table.delay_hours)
    return start - delay - timedelta(days=longest), end - delay


def day_files(entries: dict[str, FileEntry], table: HistoryTable, longest: int, day: date) -> dict[str, str]:
    """The file versions (url -> version) whose events ``day``'s rows can see: what the day's record names."""
    return {e.url: e.version for e in files_between(entries, *window(table, longest, day))}


def reaches(table: HistoryTable, longest: int, entry: FileEntry, day: date) -> bool:
    """Whether a file's events fall in ``day``'s windows (a file landing late makes such a day due again)."""
    return bool(files_between({entry.url: entry}, *window(table, longest, day)))


def accounting(entries: Iterable[FileEntry]) -> dict[str, int]:
    """Rows of the files: in, valid (a key and a time) and quarantined; in = valid + quarantined."""
    entries = list(entries)
    rows_in = sum(e.rows for e in entries)
    quarantined = sum(e.undated + e.keyless for e in entries)
    return {"rows_in": rows_in, "rows_valid": rows_in - quarantined, "rows_quarantined": quarantined}


def files_between(entries: dict[str, FileEntry], start: datetime, end: datetime) -> list[FileEntry]:
    """The files whose event-time range meets ``[start, end)``."""
    low, high = pd.Timestamp(start).value, pd.Timestamp(end).value
    return [e for e in entries.values() if e.low is not None and e.high is not None and e.low < high and e.high >= low]


def read_events(
    config: Config, name: str, start: datetime, end: datetime, entries: dict[str, FileEntry] | None = None
) -> pa.Table:
    """The events of history table ``name`` with a key and ``start <= time < end``, read from the files that can
    hold them (``entries``: the table's index, when the caller has it)."""
    table = config.dataset.history[name]
    entries = index(config, name) if entries is None else entries
    chosen = files_between(entries, start, end)
    columns = [table.entity, table.event_time, *table.columns]
    parts = [_normalised(_read_file(e.url, table, config.storage.options, columns), table) for e in chosen]
    log.info("history %s: %d of %d files hold %s..%s", name, len(chosen), len(entries), start, end)
    if not parts:
        return _empty(table)
    events = pa.concat_tables(parts)
    times = events.column(TIME)
    low, high = pa.scalar(pd.Timestamp(start), UTC_MICROS), pa.scalar(pd.Timestamp(end), UTC_MICROS)
    keyed = pc.is_valid(events.column(ENTITY))  # rows without a key are quarantined when the file is indexed
    return events.filter(pc.and_(keyed, pc.and_(pc.greater_equal(times, low), pc.less(times, high))))


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
