"""Which source files can hold a day: an index of the files already seen, with the range of a column in each.

Reading every file a glob matches makes a year of daily files cost each day ~365x the first. Instead each file is
examined once per version (size + modification time): a Parquet file is indexed from its footer's statistics when
they settle the question (a timestamp event-time column without nulls, a string key column); any other file is read
once. A day then reads only the files whose ``[low, high]`` range can hold it.

The index stays a cache file in the lake (``<root>/_sources/<name>.json``), not a table: it describes the user's
raw files, not the lake's data, and everything in it can be read again from those files. Losing it, or two runs
overwriting each other's, costs a re-index, never data, so it needs no transaction.

Late data: which file versions each day was built from, and its row counts, are the record the features table's
own commit of the day carries (:meth:`pipelines.storage.Lake.commits`, read back from the Delta history): the
record and the rows are published in one transaction, so there is no side file to fall out of step. A file that
overlaps an extracted day missing from that record makes the day stale (:func:`stale_days`). A file is checked until
no extracted day it overlaps misses it ("settled"), so a failed re-extraction is detected again by the next run
rather than forgotten.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import storage
from pipelines.config import Config, DatasetConfig
from pipelines.validation import DataError

log = logging.getLogger(__name__)

SOURCES = "_sources"
EVENTS_INDEX = "events"
LABELS_INDEX = "labels"
Kind = Literal["time", "key"]


@dataclass(frozen=True)
class FileEntry:
    """One version of one source file: its rows and the range of the indexed column (None: no usable value)."""

    url: str
    version: str
    rows: int
    low: int | str | None
    high: int | str | None
    undated: int = 0
    keyless: int = 0  # a history file's rows with a time but no entity key (quarantined with the undated ones)
    settled: bool = False


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[day, day + 1)`` a daily partition covers."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _ns(moment: datetime) -> int:
    return pd.Timestamp(moment).value


def event_times(frame: pd.DataFrame, column: str) -> pd.Series:
    """The event-time column as UTC timestamps; naive values are taken as UTC, unparseable ones become NaT."""
    return pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")


def _version(info: dict[str, Any]) -> str:
    """What changes when a file is rewritten: its size and modification time (or ETag on object stores)."""
    stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created") or ""
    return f"{info.get('size')}:{stamp}"


def list_versions(pattern: str, options: dict[str, Any] | None = None) -> dict[str, str]:
    """Every file a source pattern (file, folder glob or ``s3://`` glob) matches, as URL -> version; none is an error.

    Listing is metadata only: no file is opened.
    """
    fs, path = storage.filesystem(pattern, options)
    if any(ch in path for ch in "*?["):
        infos = fs.glob(path, detail=True)
    else:
        infos = {path: fs.info(path)} if fs.isfile(path) else {}
    files = {p: info for p, info in infos.items() if info.get("type", "file") != "directory"}
    if not files:
        raise DataError(f"source {pattern} matches no files")
    return {storage.url_for(fs, p): _version(info) for p, info in sorted(files.items())}


def source_files(pattern: str, options: dict[str, Any] | None = None) -> list[str]:
    """Every file a source pattern matches, as URLs; none is an error."""
    return list(list_versions(pattern, options))


def read_source(
    url: str, dataset: DatasetConfig, options: dict[str, Any] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read one CSV or Parquet file (optionally only some columns); a file that cannot be read is an error naming it."""
    fs, path = storage.filesystem(url, options)
    try:
        with fs.open(path, "rb") as handle:
            if path.endswith((".csv", ".csv.gz")):
                text = [dataset.key, *dataset.features.categorical]
                return pd.read_csv(handle, dtype={c: str for c in text}, compression="infer", usecols=columns)
            if path.endswith(".parquet"):
                return pd.read_parquet(handle, columns=columns)
    except Exception as exc:  # any parser error: the message must name the file
        raise DataError(f"cannot read source file {url}: {type(exc).__name__}: {exc}") from exc
    raise DataError(f"source file {url} is neither .csv nor .parquet")


def footer_range(
    url: str, column: str, kind: Kind, options: dict[str, Any] | None = None, complete: tuple[str, ...] = ()
) -> FileEntry | None:
    """Rows and ``column``'s range from a Parquet footer alone, or None when the statistics cannot be trusted.

    ``kind`` "time": a timestamp column without nulls (nulls would be undated rows to quarantine, which needs the
    rows); the range is in UTC nanoseconds. ``kind`` "key": a string column; the range compares as strings.
    ``complete``: other columns the statistics must show without nulls (a history file's entity key), else None.
    """
    if not url.endswith(".parquet"):
        return None
    fs, path = storage.filesystem(url, options)
    try:
        with fs.open(path, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except Exception as exc:  # a corrupt footer: the message must name the file
        raise DataError(f"cannot read source file {url}: {type(exc).__name__}: {exc}") from exc
    schema = meta.schema.to_arrow_schema()
    if column not in schema.names:
        return None
    kind_ok = (
        pa.types.is_timestamp if kind == "time" else (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t))
    )
    if not kind_ok(schema.field(column).type):
        return None
    paths = [meta.schema.column(i).path for i in range(meta.num_columns)]
    if any(c not in paths for c in complete):
        return None
    index = paths.index(column)
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        chunk = meta.row_group(group)
        if chunk.num_rows == 0:
            continue
        stats = chunk.column(index).statistics
        if stats is None or not stats.has_min_max or (kind == "time" and stats.null_count != 0):
            return None
        for other in (chunk.column(paths.index(c)).statistics for c in complete):
            if other is None or not other.has_null_count or other.null_count != 0:
                return None
        lows.append(stats.min)
        highs.append(stats.max)
    if kind == "time":
        naive = schema.field(column).type.tz is None  # naive timestamps are read as UTC by event_times
        try:
            lows = [pd.Timestamp(v).tz_localize("UTC").value if naive else pd.Timestamp(v).value for v in lows]
            highs = [pd.Timestamp(v).tz_localize("UTC").value if naive else pd.Timestamp(v).value for v in highs]
        except (OverflowError, ValueError):  # outside pandas' range: read the file, where such times become undated
            return None
    return FileEntry(
        url=url, version="", rows=meta.num_rows, low=min(lows) if lows else None, high=max(highs) if highs else None
    )


def load_index(config: Config, name: str) -> dict[str, FileEntry]:
    """The stored index; an unreadable one (truncated, or from another version of this code) is rebuilt."""
    lake = storage.Lake.from_config(config)
    try:
        return {key: FileEntry(**entry) for key, entry in (lake.read_cache(name) or {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        log.warning("source index %s of %s is unreadable (%s); indexing again", name, lake.root, exc)
        return {}


def save_index(config: Config, name: str, entries: dict[str, FileEntry]) -> None:
    """Merge into what is stored now (another run may have indexed other files meanwhile); ours win."""
    merged = {**load_index(config, name), **entries}
    storage.Lake.from_config(config).write_cache(name, {url: asdict(e) for url, e in sorted(merged.items())})


def refresh(
    config: Config,
    name: str,
    pattern: str,
    index_file: Callable[[str], FileEntry],
    kind: Kind,
    column: str,
    complete: tuple[str, ...] = (),
) -> dict[str, FileEntry]:
    """The index of every file ``pattern`` matches now.

    Files already indexed at their current version are not opened; others are indexed from their footer when
    possible (see :func:`footer_range`, ``complete`` included), else by ``index_file`` (which reads them). The
    updated index is saved only if something changed.
    """
    versions = list_versions(pattern, config.storage.options)
    known = load_index(config, name)
    entries: dict[str, FileEntry] = {}
    fresh: list[str] = []
    for url, version in versions.items():
        entry = known.get(url)
        if entry is None or entry.version != version:
            entry = footer_range(url, column, kind, config.storage.options, complete) or index_file(url)
            entry = replace(entry, url=url, version=version)
            fresh.append(url)
        entries[url] = entry
    if fresh:
        save_index(config, name, {url: entries[url] for url in fresh})
        log.info("indexed %d new or changed file(s) of %s", len(fresh), pattern)
    return entries


def overlapping(entries: Iterable[FileEntry], day: date) -> list[FileEntry]:
    """Files whose event-time range meets ``[day, day + 1)``."""
    start, end = (_ns(t) for t in day_bounds(day))
    return [e for e in entries if e.low is not None and e.high is not None and e.low < end and e.high >= start]


def covers(entry: FileEntry, day: date) -> bool:
    """Whether ``day`` lies within the file's first and last event day (a range: the file may skip days in it)."""
    if entry.low is None or entry.high is None:
        return False
    return pd.Timestamp(entry.low, tz="UTC").date() <= day <= pd.Timestamp(entry.high, tz="UTC").date()


def span(entries: Iterable[FileEntry]) -> tuple[date, date] | None:
    """The first and last day any indexed file has events on."""
    ranged = [e for e in entries if e.low is not None and e.high is not None]
    if not ranged:
        return None
    return (
        pd.Timestamp(min(e.low for e in ranged), tz="UTC").date(),
        pd.Timestamp(max(e.high for e in ranged), tz="UTC").date(),
    )


def landed(entries: Iterable[FileEntry], day: date) -> bool:
    """Whether the source holds the day yet: a file has events on it, or events after it (the feed moved on, so an
    empty day is a gap for the volume gate to judge, not data still to come)."""
    entries = list(entries)
    last = span(entries)
    return bool(overlapping(entries, day)) or (last is not None and last[1] > day)


def holding_keys(entries: Iterable[FileEntry], keys: Iterable[str]) -> list[FileEntry]:
    """Files whose key range can hold one of ``keys`` (string order); files without a range are always kept."""
    wanted = sorted(set(keys))
    chosen = []
    for entry in entries:
        if entry.low is None or entry.high is None:
            chosen.append(entry)
            continue
        at = bisect.bisect_left(wanted, str(entry.low))
        if at < len(wanted) and wanted[at] <= str(entry.high):
            chosen.append(entry)
    return chosen


# --- per-day records: what each extracted day was built from, in the features table's history ----------------


def build_record(files: Iterable[FileEntry], counts: dict[str, int]) -> dict[str, Any]:
    """What the features commit of a day records: the source file versions read and the day's row counts."""
    return {"files": {e.url: e.version for e in files}, **counts}


def day_records(config: Config, days: Collection[date] | None = None) -> dict[date, dict[str, Any]]:
    """Per extracted day (of ``days``, default all), the record of the features commit that last wrote it, from the
    table's history (:meth:`pipelines.storage.Lake.commits`)."""
    commits = storage.Lake.from_config(config).commits(storage.Table.FEATURES, days)
    return {day: commit.record for day, commit in commits.items()}


def recent_volumes(config: Config, day: date, days: int) -> list[int]:
    """``rows_in`` of the extracted days among the ``days`` before ``day`` (what "usual volume" is measured on)."""
    before = [day - timedelta(days=i) for i in range(1, days + 1)]
    records = day_records(config, before)
    found = (records.get(d) for d in before)
    return [int(r["rows_in"]) for r in found if r and "rows_in" in r]


def _files_read(record: dict[str, Any]) -> dict[str, str] | None:
    return record.get("files", {})


def stale_days(
    config: Config,
    entries: dict[str, FileEntry],
    today: date,
    table: storage.Table,
    index: str = EVENTS_INDEX,
    reaches: Callable[[FileEntry, date], bool] = covers,
    recorded: Callable[[dict[str, Any]], dict[str, str] | None] = _files_read,
) -> list[date]:
    """Days of ``table`` (other than ``today``) that a file they were not built from can hold: late data.

    ``reaches``: whether a file can change a day (the scored rows' files: it has events on it; a history table's:
    its events fall in the day's windows). ``recorded``: the file versions (url -> version) a day's record says it
    was built from, or None for a day this check does not judge. Only unsettled files of the index ``index`` are
    checked; a file none of whose extracted days misses it is marked settled, so the check costs the new files,
    not the history.
    """
    unsettled = [e for e in entries.values() if not e.settled]
    if not unsettled:
        return []
    extracted = set(storage.Lake.from_config(config).days(table)) - {today}
    records = day_records(config)
    stale: set[date] = set()
    settled: dict[str, FileEntry] = {}
    for entry in unsettled:
        missing = []
        for day in sorted(d for d in extracted if reaches(entry, d)):
            files = recorded(records.get(day, {}))
            if files is not None and files.get(entry.url) != entry.version:
                missing.append(day)
        if missing:
            log.warning("%s can change already extracted day(s) %s: late data", entry.url, missing)
            stale.update(missing)
        else:
            settled[entry.url] = replace(entry, settled=True)
    if settled:
        save_index(config, index, settled)
    return sorted(stale)
