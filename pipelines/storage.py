"""The data lake: one Delta table per table name, partitioned by day, on a local folder or ``s3://``.

:class:`Lake` is the one seam that knows where a table lives: callers say which table and which day
(``lake.read(FEATURES, day)``), never a root, a path, a filesystem or storage options. Every table is a Delta table
(``<root>/<table>/_delta_log`` beside ``date=YYYY-MM-DD/`` folders), so DuckDB, Polars and Spark read the lake as
it is.

Replacing a day is one Delta transaction: the new files are written first, then one commit adds them and removes
the day's previous files. A reader loads one table version and reads the files it lists; removed files stay on
storage until ``vacuum``, so a concurrent reader sees the old day or the new one, never a missing or half-written
one. A rerun replaces, never appends. A file written but never committed (a failed run, a retried task's
leftover) is in no version: no reader sees it, and ``DeltaTable.vacuum(full=True)`` deletes it once it is older
than the retention (7 days by default, so a run in progress keeps its files).

How: :meth:`Lake.write` replaces a day with ``write_deltalake(..., mode="overwrite", predicate="date = 'D'")``,
whose commit names the partition it read, so writers of other days never conflict with it. Batch scoring's files
are written by many Dask workers (:meth:`Lake.write_file`) and committed once by the client with
``DeltaTable.create_write_transaction`` (:meth:`Lake.commit`), the one API for files written elsewhere. A day with
no rows is one empty file, committed the second way (``write_deltalake`` adds no file for no rows), so it exists.

The prediction logs are partitioned by ``date`` and ``source`` (``batch`` or ``online``): a batch rerun replaces
``source=batch`` of the day while the model server appends ``source=online`` files, so neither loses the other's
rows. Two commits can still conflict (delta-rs counts an append as having read what a concurrent overwrite
removed, and a commit of files from elsewhere as having read the whole table): the loser makes its commit again on
the newest version, a bounded number of times.

On S3 no locking provider and no ``AWS_S3_ALLOW_UNSAFE_RENAME`` are needed: delta-rs 1.x commits a version with a
conditional put (``If-None-Match: *``), which S3, MinIO and moto's server honour, so of two writers of one version
exactly one wins and the other retries (tested with concurrent writers on moto's server). The fsspec options of
``storage.options`` are translated for delta-rs (:func:`delta_options`).

Not tables: the drift reports (HTML and JSON documents for people and the MLflow UI, replaced whole per day under
``<root>/reports/date=D/``), rows without an event time (``<root>/quarantine/_undated/<file>.parquet``: they belong
to no day, and are keyed by the source file they came from; a history table's rows without a time or an entity key
go to ``<root>/quarantine/_history/<table>/<file>.parquet`` alike; the leading underscore keeps them out of the
Delta table, its readers and ``vacuum``), and the source index (a cache, :mod:`pipelines.sources`). The Lake writes and
reads them too, whole files only.

One module of ~600 lines, above the project's ~400, because it is the whole seam: every caller's read and write of
the lake, and the commit, retry and schema handling they share, in one class. What a frame becomes in a table (its
types and statistics) is :mod:`pipelines.table_format`'s.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from pipelines.errors import DataError
from pipelines.table_format import DataFile, concat, conform, delta_options, file_stats, no_null_categories

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from pipelines.config import Config

log = logging.getLogger(__name__)

DATE = "date"
SOURCE = "source"  # the prediction logs' second partition column
BATCH, ONLINE = "batch", "online"
DAY_KEY = "mlops.day"  # commit metadata: the day a commit wrote
DAYS_KEY = "mlops.days"  # commit metadata of a commit of several days (Lake.write_days): their list, as JSON
RECORD_KEY = "mlops.record"  # commit metadata: what the writer says about the day (sources: what it was built from)
COMMIT_ATTEMPTS = 6
PARTITION_VALUE = re.compile(r"/(\w+)=([^/]+)(?=/)")  # a data file's partition values, from its folders


class Table(StrEnum):
    """The lake's tables; each holds one ``date=YYYY-MM-DD`` partition per day."""

    FEATURES = "features"
    QUARANTINE = "quarantine"
    PREDICTIONS = "predictions"
    DEAD_LETTER = "dead_letter"
    PREDICTION_LOG = "prediction_log"
    SHADOW_LOG = "shadow_log"  # online predictions of a shadow challenger: never served, so kept out of the log
    REPORTS = "reports"  # files, not a Delta table (see the module docstring)
    PERFORMANCE = "performance"  # per scored day: the realized metric so far, filled in as labels arrive
    PERFORMANCE_SEGMENTS = "performance_segments"  # per scored day and monitoring.segments value: the same, long


PARTITIONS: dict[Table, tuple[str, ...]] = {Table.PREDICTION_LOG: (DATE, SOURCE), Table.SHADOW_LOG: (DATE, SOURCE)}
# The features table's commits are the record of what each day was built from (pipelines.sources) and of the rows
# each model version was trained on (time travel): its log is kept, not cleaned up after 30 days.
CONFIGURATION: dict[Table, dict[str, str]] = {Table.FEATURES: {"delta.enableExpiredLogCleanup": "false"}}


class CommitConflict(RuntimeError):
    """Concurrent writers kept winning a table's commits; a retry of the task tries again (not a pipelines error)."""


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem behind ``url`` and the path on it (fsspec strips the protocol)."""
    return fsspec.core.url_to_fs(url, **(options or {}))


def url_for(fs: AbstractFileSystem, path: str) -> str:
    """Put back the protocol fsspec stripped from ``path`` (local paths stay plain), so workers can reopen it."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol == "file" else f"{protocol}://{path}"


@dataclass(frozen=True)
class Commit:
    """The newest commit that wrote a day: its table version, when (epoch seconds), and the writer's record."""

    version: int
    at: float
    record: dict[str, Any]


def _day_of(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


class _OpenTables(threading.local):
    """Per thread, the tables opened so far, each brought to its newest version on the next open
    (``update_incremental`` reads only the commits made since: a tenth of loading the table again, whose cost grows
    with the commits since its last checkpoint; a day's run opens its tables hundreds of times). Commits are numbered
    files, so when the file after the version held is absent there is nothing to read and the table is returned as
    held: most opens find no new commit, and a file's absence costs a stat (a HEAD on S3), not a pass over the log.

    A table deleted and made again at the same URL (a test's lake, a demo started over) must not be updated from
    the old one's state: the log file of the version held is looked up first, and a different or missing file
    means the table is loaded afresh. Per thread because an update changes the object a reader may be using; the
    versions themselves are immutable, so every thread still reads one consistent version per call."""

    def __init__(self) -> None:
        self.tables: dict[str, tuple[DeltaTable, int, dict[str, Any]]] = {}  # url: table, version seen, its log file

    def newest(
        self, url: str, options: dict[str, str], fs_of: Callable[[str], tuple[AbstractFileSystem, str]]
    ) -> DeltaTable | None:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        held = self.tables.get(url)
        if held is not None and held[2] and _log_entry(fs_of, url, held[1]) == held[2]:
            opened = held[0]
            if not _log_entry(fs_of, url, held[1] + 1):  # no commit since: one look at a file, not a log replay
                return opened
            opened.update_incremental()  # also past the commits made through this object (writes, column adds)
        else:
            try:
                opened = DeltaTable(url, storage_options=options)
            except TableNotFoundError:
                self.tables.pop(url, None)
                return None
        self.tables[url] = (opened, opened.version(), _log_entry(fs_of, url, opened.version()))
        return opened


def _log_entry(fs_of: Callable[[str], tuple[AbstractFileSystem, str]], url: str, version: int) -> dict[str, Any]:
    """What identifies one commit file of a table's log (size, time, inode or ETag); empty when it is gone."""
    fs, path = fs_of(f"{url}/_delta_log/{version:020d}.json")
    try:
        info = fs.info(path, refresh=True)
    except FileNotFoundError:
        return {}
    return {k: info.get(k) for k in ("size", "mtime", "ino", "ETag", "LastModified")}


_OPEN = _OpenTables()


@dataclass(frozen=True)
class Lake:
    """Where the tables live (``root``) and how to reach them (fsspec ``options``); small and picklable, so Dask
    tasks carry it to workers."""

    root: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.rstrip("/"))

    @classmethod
    def from_config(cls, config: Config) -> Lake:
        return cls(config.storage.root, dict(config.storage.options))

    # --- where --------------------------------------------------------------------------------------------------

    def _fs(self, url: str) -> tuple[AbstractFileSystem, str]:
        return filesystem(url, self.options)

    def table_url(self, table: Table) -> str:
        return f"{self.root}/{table}"

    def partition(self, table: Table, day: date) -> str:
        """The URL of one day's folder of ``table`` (whether or not it exists)."""
        return f"{self.table_url(table)}/{DATE}={day.isoformat()}"

    def _values(self, table: Table, day: date, source: str | None) -> dict[str, str]:
        """The partition a day's rows go to: the day, and for the logs whether the batch or the server wrote them."""
        values = {DATE: day.isoformat()}
        if SOURCE in PARTITIONS.get(table, (DATE,)):
            values[SOURCE] = source or BATCH
        return values

    # --- reading ------------------------------------------------------------------------------------------------

    def _open(self, table: Table, version: int | None = None) -> DeltaTable | None:
        """The table (at ``version``, default the newest), or None when it has never been written.

        The newest version comes from this thread's already-opened table brought up to date
        (:class:`_OpenTables`): loading a table replays its log, which grows with every day written. A version asked
        for is most often the newest, just read with :meth:`version` (a reader pins it to read several things from
        one version): then it is that same table, not a load of its own (a drift check read its window at a version
        three times, ~20 ms each a quarter of a year into history and growing with the commits since a checkpoint)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        url, options = self.table_url(table), delta_options(self.options)
        newest = _OPEN.newest(url, options, self._fs)
        if version is None or (newest is not None and newest.version() == version):
            return newest
        try:
            return DeltaTable(url, version=version, storage_options=options)
        except TableNotFoundError:
            return None

    def _add_actions(self, table: Table) -> pd.DataFrame:
        """The files of the newest version: day, rows, modification time (ms); empty when there is no table."""
        opened = self._open(table)
        if opened is None:
            return pd.DataFrame({"day": [], "rows": [], "modified": []})
        actions = pa.table(opened.get_add_actions(flatten=True))
        return pd.DataFrame(
            {
                "day": actions.column(f"partition.{DATE}").to_pylist(),
                "rows": actions.column("num_records").to_pylist(),
                "modified": actions.column("modification_time").cast(pa.int64()).to_pylist(),
            }
        )

    def days(self, table: Table, version: int | None = None) -> list[date]:
        """The days a table holds (at ``version``, default the newest), from its log: no folder is listed."""
        opened = self._open(table, version)
        if opened is None:
            return []
        found = {_day_of(p.get(DATE, "")) for p in opened.partitions()}
        return sorted(d for d in found if d is not None)

    def exists(self, table: Table, day: date) -> bool:
        return day in self.days(table)

    def version(self, table: Table) -> int | None:
        """The table's newest version (None: never written): read the table at it to see exactly what was read."""
        opened = self._open(table)
        return None if opened is None else opened.version()

    def columns(self, table: Table, version: int | None = None) -> list[str]:
        """The table's columns (a day written without one reads it as nulls), without the ``date`` partition."""
        opened = self._open(table, version)
        if opened is None:
            return []
        return [f.name for f in opened.schema().fields if f.name != DATE]

    def _day_datasets(
        self, opened: DeltaTable, table: Table, days: list[date], categories: list[str] | None
    ) -> list[Any]:
        """Each day's files as one pyarrow dataset, in file order; a day the table lacks is a :class:`DataError`.

        One pass over the log for all the days (a pass per day made reading N days cost N times the table's files,
        so a day's drift check, which reads the performance table's every day, grew with the history).

        Not ``DeltaTable.to_pyarrow_dataset``: it builds each file's statistics into an expression (a few pyarrow
        casts per column per file) and reads through a filesystem written in Python. The days' files come from
        ``file_uris`` (pruned in the log by the day), each a fragment with its partition values, read by pyarrow's
        own filesystem (local) or the lake's fsspec one: the performance table's 90-day horizon, a file per day,
        read in ~50 ms where it took ~170 ms, every day of a history load. The tables use no deletion vectors or
        column mapping, which that method would otherwise apply."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        options = ds.ParquetReadOptions(dictionary_columns=set(categories)) if categories else None
        file_format = ds.ParquetFileFormat(
            read_options=options, default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=True)
        )
        schema = pa.schema(opened.schema().to_arrow())
        for i, column in enumerate(schema):
            if categories and column.name in categories:
                schema = schema.set(i, column.with_type(pa.dictionary(pa.int32(), column.type)))
        arrow_fs, path_of = self._arrow_fs()
        columns = PARTITIONS.get(table, (DATE,))
        wanted = sorted({day.isoformat() for day in days})
        by_day: dict[str, list[Any]] = {}
        for uri in sorted(opened.file_uris(file_pruning_predicate=[(DATE, "in", wanted)])):
            values = {c: v for c, v in PARTITION_VALUE.findall(uri) if c in columns}
            if DATE not in values:
                continue
            where = functools.reduce(operator.and_, [pc.field(c) == v for c, v in values.items()])
            fragment = file_format.make_fragment(path_of(uri), filesystem=arrow_fs, partition_expression=where)
            by_day.setdefault(values[DATE], []).append(fragment)
        found = []
        for day in days:
            fragments = by_day.get(day.isoformat())
            if not fragments:
                raise DataError(
                    f"partition {self.partition(table, day)} does not exist; has the upstream stage run for {day}?"
                )
            found.append(ds.FileSystemDataset(fragments, schema, file_format, arrow_fs))
        return found

    def _arrow_fs(self) -> tuple[Any, Callable[[str], str]]:
        """A pyarrow filesystem for the lake's data files and how a file URI from the log becomes its path there:
        pyarrow's own for a local lake, the lake's fsspec filesystem (its options: endpoint, credentials) else."""
        import pyarrow.fs as pa_fs

        fs, _ = self._fs(self.root)
        arrow_fs = (
            pa_fs.LocalFileSystem() if isinstance(fs, LocalFileSystem) else pa_fs.PyFileSystem(pa_fs.FSSpecHandler(fs))
        )
        return arrow_fs, fs._strip_protocol

    def read_days(
        self,
        table: Table,
        days: Iterable[date],
        columns: list[str] | None = None,
        categories: list[str] | None = None,
        version: int | None = None,
    ) -> pd.DataFrame:
        """Several days of a table one after the other, from one table version (default the newest); each day's
        files only (the day filter is pushed down to the log). A missing day is a :class:`DataError`.

        ``columns``: default every column but ``date`` (the day is the caller's argument); ask for it to have it.
        ``categories``: string columns to read as pandas categoricals, each distinct value decoded once.
        """
        days = list(days)
        if not days:
            return pd.DataFrame(columns=columns)
        opened = self._open(table, version)
        if opened is None:
            raise DataError(
                f"partition {self.partition(table, days[0])} does not exist; has the upstream stage run for {days[0]}?"
            )
        names = columns or [f.name for f in opened.schema().fields if f.name != DATE]
        datasets = self._day_datasets(opened, table, days, categories)
        if not categories:  # one read of every day's files, in the days' order
            import pyarrow.dataset as ds

            first = datasets[0]
            fragments = [fragment for dataset in datasets for fragment in dataset.get_fragments()]
            datasets = [ds.FileSystemDataset(fragments, first.schema, first.format, first.filesystem)]
        frames = []
        for dataset in datasets:  # categoricals: a day at a time, each day's categories joined by concat
            data = no_null_categories(dataset.to_table(columns=names))
            frames.append(data.to_pandas(coerce_temporal_nanoseconds=True))
        return concat(frames) if len(frames) > 1 else frames[0]

    def read(
        self,
        table: Table,
        day: date,
        columns: list[str] | None = None,
        categories: list[str] | None = None,
        version: int | None = None,
    ) -> pd.DataFrame:
        """One day of a table (see :meth:`read_days`); a missing day is a :class:`DataError` that names it."""
        return self.read_days(table, [day], columns, categories, version)

    def count_rows(self, table: Table, day: date) -> int | None:
        """Rows of one day from the log's per-file statistics (no file opened); None when the day is absent."""
        return self.rows_by_day(table).get(day)

    def rows_by_day(self, table: Table) -> dict[date, int]:
        """Rows of every day the table holds, from one pass over the log's per-file statistics (no file opened)."""
        files = self._add_actions(table)
        totals = files.groupby("day")["rows"].sum() if len(files) else pd.Series(dtype=int)
        return {d: int(rows) for day, rows in totals.items() if (d := _day_of(day)) is not None}

    def written_at(self, table: Table) -> dict[date, float]:
        """Per day, when it was last written (epoch seconds): the commit time its files carry in the log."""
        files = self._add_actions(table)
        newest = files.groupby("day")["modified"].max() if len(files) else pd.Series(dtype=float)
        return {d: float(ms) / 1000 for day, ms in newest.items() if (d := _day_of(day)) is not None}

    def commits(self, table: Table, days: Collection[date] | None = None) -> dict[date, Commit]:
        """Per day, the newest commit that wrote it, with its writer's record, from the table's own history.

        Given ``days``, those only, looked for in the newest commits first, a doubling page of the history at a time
        until each is found or the history ends: a day's volume check wants the week before it, which the runs have
        just written, while reading the whole history (a commit or two a day) took ~20 ms a day a year into it."""
        opened = self._open(table)
        if opened is None:
            return {}
        wanted = None if days is None else set(days)
        found: dict[date, Commit] = {}
        limit, seen = (None if wanted is None else 2 * len(wanted) + 8), 0
        while True:
            entries = opened.history(limit)  # newest first
            for entry in entries[seen:]:
                written = json.loads(entry[DAYS_KEY]) if DAYS_KEY in entry else [entry.get(DAY_KEY, "")]
                commit = Commit(int(entry["version"]), entry["timestamp"] / 1000, entry.get(RECORD_KEY) or {})
                for day in filter(None, map(_day_of, written)):
                    found.setdefault(day, commit)
            if wanted is None or limit is None or wanted <= found.keys() or len(entries) < limit:
                break
            seen, limit = len(entries), 2 * limit
        return found if wanted is None else {day: commit for day, commit in found.items() if day in wanted}

    def files(self, table: Table, day: date) -> list[str]:
        """URLs of the day's data files in the newest version, in order; only the day's files are looked up."""
        opened = self._open(table)
        if opened is None:
            return []
        return sorted(opened.file_uris(file_pruning_predicate=[(DATE, "=", day.isoformat())]))

    def footer(self, url: str) -> pq.FileMetaData:
        """A data file's Parquet footer (row groups, rows, columns); no rows read."""
        fs, path = self._fs(url)
        with fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).metadata

    def read_row_group(self, url: str, group: int, columns: list[str]) -> pd.DataFrame:
        """One row group of a data file: a Dask task's share of a day."""
        fs, path = self._fs(url)
        if isinstance(fs, LocalFileSystem):  # pyarrow's own local I/O is faster than an fsspec file
            return pq.ParquetFile(path).read_row_group(group, columns=columns).to_pandas()
        with fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).read_row_group(group, columns=columns).to_pandas()

    # --- writing ------------------------------------------------------------------------------------------------

    def _partition_of(self, table: Table, day: date, frame: pd.DataFrame, source: str | None) -> dict[str, str]:
        """The partition ``frame``'s rows go to; rows of another day or of several sources are refused."""
        if SOURCE in frame.columns:
            sources = frame[SOURCE].dropna().unique()
            if len(sources) > 1:
                raise DataError(f"{table} {day}: rows of several sources {sorted(sources)} in one write")
            source = str(sources[0]) if len(sources) else source
        values = self._values(table, day, source)
        if DATE in frame.columns and frame[DATE].astype(str).ne(values[DATE]).any():
            raise DataError(f"{table} {day}: rows dated other than {day} in the {DATE} column")
        return values

    def _retrying(self, table: Table, what: date | str, commit: Callable[[], None]) -> None:
        """Run ``commit`` again while it conflicts with a concurrent commit (each try starts from the newest version),
        up to ``COMMIT_ATTEMPTS`` times; :class:`CommitConflict` after."""
        from deltalake.exceptions import CommitFailedError

        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                commit()
                return
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise CommitConflict(
                        f"{table} {what}: {attempt} commits in a row lost to concurrent writers; last: {exc}"
                    ) from exc
                log.warning("%s %s: commit conflicted with a concurrent one (%s); committing again", table, what, exc)
                time.sleep(random.uniform(0.05, 0.2) * attempt)

    def write_file(
        self,
        table: Table,
        day: date,
        name: str,
        frame: pd.DataFrame,
        keep_empty: bool = True,
        row_group_rows: int | None = None,
        schema: pa.Schema | None = None,
        source: str | None = None,
    ) -> DataFile | None:
        """Write ``frame`` as one Parquet file into the day's folder of ``table``, not yet committed (:meth:`commit`).

        The same ``name`` written again replaces the file (a retried Dask task). An empty frame with ``keep_empty``
        False writes nothing and removes an earlier file of that name (None). The partition columns (the day, the
        log's ``source`` if the frame has one) go into the path, not the file; ``schema`` (the table's) sets the
        types of the columns it has; ``source`` the log's partition when the frame has no ``source`` column.
        """
        values = self._partition_of(table, day, frame, source)
        relative = "/".join(f"{k}={v}" for k, v in values.items()) + f"/{name}"
        fs, path = self._fs(f"{self.table_url(table)}/{relative}")
        if frame.empty and not keep_empty:
            if fs.exists(path):
                fs.rm(path)
            return None
        data = conform(frame.drop(columns=[c for c in values if c in frame.columns]), schema, f"{table} {day}")
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if isinstance(fs, LocalFileSystem):
            pq.write_table(data, path, row_group_size=row_group_rows, store_schema=False)
        else:
            with fs.open(path, "wb") as handle:
                pq.write_table(data, handle, row_group_size=row_group_rows, store_schema=False)
        return DataFile(relative, fs.size(path), data.num_rows, values, file_stats(data), data.schema)

    def _open_for_write(self, table: Table, schema: pa.Schema) -> DeltaTable:
        """The table, created on its first write, with every column of ``schema`` (added as nullable columns)."""
        from deltalake import DeltaTable
        from deltalake.schema import Field

        partition_by = list(PARTITIONS.get(table, (DATE,)))
        full = pa.schema([*schema, *(pa.field(c, pa.string()) for c in partition_by)])
        opened = self._open(table)
        if opened is None:
            DeltaTable.create(
                self.table_url(table),
                full,
                mode="ignore",
                partition_by=partition_by,
                configuration=CONFIGURATION.get(table),
                storage_options=delta_options(self.options),
            )
            opened = self._open(table)
            assert opened is not None
        held = pa.schema(opened.schema().to_arrow())
        for column in schema:
            if column.name in held.names and held.field(column.name).type != column.type:
                raise DataError(
                    f"{table}: column {column.name} is written as {column.type}, the table holds"
                    f" {held.field(column.name).type}"
                )
        new = [Field.from_arrow(f) for f in schema if f.name not in held.names]
        if new:
            try:
                opened.alter.add_columns(new)
            except Exception:  # a concurrent writer added them first: fine if they are there now
                opened = self._open(table)
                assert opened is not None
                if not {f.name for f in new} <= set(pa.schema(opened.schema().to_arrow()).names):
                    raise
            log.info("%s: added column(s) %s", table, [f.name for f in new])
            opened = self._open(table)
            assert opened is not None
        return opened

    def _files_to_commit(
        self, table: Table, day: date, files: list[DataFile], values: dict[str, str]
    ) -> list[DataFile]:
        """The files with rows. A day replaced by no rows still exists, as one empty file typed as the table. A new
        table takes no number types from an empty frame (pandas guesses them: no predictions read as floats): its
        empty file keeps the text and time columns, and the first rows bring the numbers."""
        kept = [f for f in files if f.rows]
        if kept:
            return kept
        held = self.schema(table)
        if held is None:
            guessed = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
            first = files[0].schema if files else pa.schema([])
            schema = pa.schema([f for f in first if not any(guess(f.type) for guess in guessed)])
        elif files and all(c.name in held.names and held.field(c.name).type == c.type for c in files[0].schema):
            return files[:1]
        else:
            schema = held
        names = [n for n in schema.names if n not in values]
        empty = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})
        name = f"empty-{uuid.uuid4().hex}.parquet"
        written = self.write_file(table, day, name, empty, schema=schema, source=values.get(SOURCE))
        return [written] if written else []

    def commit(
        self,
        table: Table,
        day: date,
        files: list[DataFile],
        record: dict[str, Any] | None = None,
    ) -> None:
        """One transaction: add ``files`` (written by :meth:`write_file`, here or on Dask workers) to the day and
        remove every file the day's partition held (for the logs, the partition of the files' source: ``batch``
        unless given); a day replaced by no rows holds one empty file, so it exists with 0 rows. ``record`` is kept in
        the commit's metadata (:meth:`commits`); a commit that conflicts with a concurrent one is made again."""
        values = files[0].partition if files else self._values(table, day, None)
        if any(f.partition != values for f in files):
            raise DataError(f"{table} {day}: one commit's files must share one partition")
        files = self._files_to_commit(table, day, files, values)
        schema = pa.unify_schemas([f.schema for f in files])
        metadata = {DAY_KEY: day.isoformat(), **({RECORD_KEY: record} if record else {})}

        def transaction() -> None:
            from deltalake.transaction import AddAction, CommitProperties

            opened = self._open_for_write(table, schema)
            now = int(time.time() * 1000)
            actions = [AddAction(f.path, f.size, f.partition, now, True, f.stats) for f in files]
            opened.create_write_transaction(
                actions,
                "overwrite",
                opened.schema(),
                partition_by=list(PARTITIONS.get(table, (DATE,))),
                partition_filters=[(k, "=", v) for k, v in values.items()],
                commit_properties=CommitProperties(custom_metadata=metadata),
            )

        self._retrying(table, day, transaction)

    def schema(self, table: Table) -> pa.Schema | None:
        """The table's columns and types (with its partition columns); None before its first write."""
        opened = self._open(table)
        return None if opened is None else pa.schema(opened.schema().to_arrow())

    def _write_rows(
        self,
        table: Table,
        day: date,
        df: pd.DataFrame,
        replace: bool,
        source: str | None = None,
        row_group_rows: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        """``df`` (with rows) written and committed by ``write_deltalake``, replacing the day's partition
        (``predicate``) or appended to it. Its commit names the partition it read, so writers of other days do not
        conflict with it (commits of files written elsewhere, :meth:`commit`, name none, and retry more often)."""
        values = self._partition_of(table, day, df, source)
        held = self.schema(table)
        data = conform(df.drop(columns=[c for c in values if c in df.columns]), held, f"{table} {day}")
        for column, value in values.items():
            data = data.append_column(pa.field(column, pa.string()), pa.array([value] * data.num_rows, pa.string()))
        predicate = " AND ".join(f"{k} = '{v}'" for k, v in values.items()) if replace else None
        metadata = {DAY_KEY: day.isoformat(), **({RECORD_KEY: record} if record else {})}
        self._commit_rows(table, day, data, held, predicate, metadata, row_group_rows)

    def _commit_rows(
        self,
        table: Table,
        what: date | str,
        data: pa.Table,
        held: pa.Schema | None,
        predicate: str | None,
        metadata: dict[str, Any],
        row_group_rows: int | None = None,
    ) -> None:
        """One ``write_deltalake`` commit of ``data`` (partition columns included): replacing the rows matching
        ``predicate``, or appended when there is none; made again on the newest version while it conflicts."""
        from deltalake import write_deltalake
        from deltalake.transaction import CommitProperties
        from deltalake.writer.properties import WriterProperties

        self._retrying(
            table,
            what,
            lambda: write_deltalake(
                self._open(table) or self.table_url(table),
                data,
                mode="append" if predicate is None else "overwrite",
                predicate=predicate,
                partition_by=list(PARTITIONS.get(table, (DATE,))),
                schema_mode="merge",
                configuration=CONFIGURATION.get(table) if held is None else None,  # set when the table is made
                storage_options=delta_options(self.options),
                writer_properties=WriterProperties(max_row_group_size=row_group_rows) if row_group_rows else None,
                commit_properties=CommitProperties(custom_metadata=metadata),
            ),
        )

    def write_days(self, table: Table, frames: Mapping[date, pd.DataFrame]) -> None:
        """Replace several days of a table partitioned by day alone, each with its frame, in one transaction: one
        commit for a run's rows of many days (the performance table's update rewrites a few rows of each of the
        days whose labels arrived), where a commit per day made a long history's bootstrap pay for each. A day
        replaced by no rows is written on its own (:meth:`write`)."""
        if PARTITIONS.get(table, (DATE,)) != (DATE,):
            raise ValueError(f"{table} is partitioned by {PARTITIONS[table]}: write its days one at a time")
        for day, frame in frames.items():
            if frame.empty:
                self.write(table, day, frame)
        filled = {day: frame for day, frame in sorted(frames.items()) if not frame.empty}
        if not filled:
            return
        for day, frame in filled.items():
            self._partition_of(table, day, frame, None)
        held = self.schema(table)
        rows = pd.concat([frame.drop(columns=[DATE], errors="ignore") for frame in filled.values()], ignore_index=True)
        data = conform(rows, held, f"{table} {min(filled)}..{max(filled)}")
        dates = [day.isoformat() for day, frame in filled.items() for _ in range(len(frame))]
        data = data.append_column(pa.field(DATE, pa.string()), pa.array(dates, pa.string()))
        wanted = ", ".join(f"'{day.isoformat()}'" for day in filled)
        metadata = {DAYS_KEY: json.dumps([day.isoformat() for day in filled])}
        self._commit_rows(table, f"{min(filled)}..{max(filled)}", data, held, f"{DATE} IN ({wanted})", metadata)

    def write(
        self,
        table: Table,
        day: date,
        df: pd.DataFrame,
        row_group_rows: int = 250_000,
        record: dict[str, Any] | None = None,
    ) -> str:
        """Replace one day of ``table`` with ``df`` (row groups of ``row_group_rows``) in one transaction; an empty
        frame is a day with no rows, not a day never written. Returns the day's folder URL."""
        if df.empty:  # write_deltalake adds no file for no rows: the day's empty file is committed here
            written = self.write_file(table, day, f"part-{uuid.uuid4().hex}.parquet", df, schema=self.schema(table))
            self.commit(table, day, [written] if written else [], record=record)
        else:
            self._write_rows(table, day, df, replace=True, row_group_rows=row_group_rows, record=record)
        return self.partition(table, day)

    def append(self, table: Table, day: date, df: pd.DataFrame) -> None:
        """Add ``df`` to the day in one transaction (the model server's log rows: ``source`` online unless the rows
        say otherwise)."""
        if not df.empty:
            self._write_rows(table, day, df, replace=False, source=ONLINE)

    # --- files that are not tables ------------------------------------------------------------------------------

    def _put_whole(self, fs: AbstractFileSystem, local: Path, path: str) -> None:
        """A file copied in whole: on a local disk under a temporary name then renamed; on S3 one PUT (atomic)."""
        if isinstance(fs, LocalFileSystem):
            temporary = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
            fs.put_file(str(local), temporary)
            fs.mv(temporary, path)
        else:
            fs.put_file(str(local), path)

    def put_files(self, table: Table, day: date, folder: Path) -> str:
        """The files of ``folder`` as the day's files of a files table (the reports), replacing the day's: each file
        is replaced whole, then files no longer there are deleted. Returns the day's folder URL."""
        url = self.partition(table, day)
        fs, path = self._fs(url)
        fs.makedirs(path, exist_ok=True)
        names = {file.name for file in folder.iterdir()}
        for file in folder.iterdir():
            self._put_whole(fs, file, f"{path}/{file.name}")
        stale = [f for f in fs.find(path) if f.rsplit("/", 1)[-1] not in names]
        if stale:
            fs.rm(stale)
        fs.invalidate_cache()
        return url

    def days_holding(self, table: Table, name: str) -> list[date]:
        """The days of a files table whose folder holds a file called ``name`` (one listing of the table)."""
        fs, path = self._fs(self.table_url(table))
        found = (_day_of(hit.rsplit("/", 2)[-2].removeprefix(f"{DATE}=")) for hit in fs.glob(f"{path}/{DATE}=*/{name}"))
        return sorted(d for d in found if d is not None)

    def get_files(self, table: Table, day: date, folder: Path) -> list[Path]:
        """Copy the day's files of a files table into ``folder``; their local paths."""
        fs, path = self._fs(self.partition(table, day))
        copied = []
        for name in fs.find(path):
            target = folder / name.rsplit("/", 1)[-1]
            fs.get_file(name, str(target))
            copied.append(target)
        return copied

    def write_undated(self, source_url: str, df: pd.DataFrame, folder: str = "_undated") -> str:
        """Quarantined rows of one source file that have no day, as one Parquet file named after it under the
        quarantine's ``folder`` (replaced when the file is indexed again; removed when it has none left). Returns
        its URL."""
        name = source_url.rstrip("/").rsplit("/", 1)[-1]
        url = f"{self.table_url(Table.QUARANTINE)}/{folder}/{name}.parquet"
        fs, path = self._fs(url)
        if df.empty:
            if fs.exists(path):
                fs.rm(path)
            return url
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as handle:
            df.to_parquet(handle, index=False)
        return url

    def read_cache(self, name: str) -> Any:
        """A JSON document kept under ``<root>/_sources/`` (None when absent)."""
        fs, path = self._fs(f"{self.root}/_sources/{name}.json")
        if not fs.exists(path):
            return None
        with fs.open(path, "r") as handle:
            return json.load(handle)

    def write_cache(self, name: str, value: Any) -> None:
        """Write a JSON document under ``<root>/_sources/`` whole (a local reader never sees half of it)."""
        fs, path = self._fs(f"{self.root}/_sources/{name}.json")
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        temporary = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
        with fs.open(temporary, "w") as handle:
            json.dump(value, handle)
        fs.mv(temporary, path)
