"""The data lake: date-partitioned Parquet tables on any fsspec filesystem (a local folder or ``s3://``).

:class:`Lake` is the one seam that knows where a table lives: callers say which table and which day
(``lake.read(FEATURES, day)``), never a root, a path or storage options. Every write is a transaction: the
partition is written under ``<table>/_staging/`` and then moved into place, replacing what was there, so a rerun
never appends and a reader never sees half a partition on a local disk.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from pandas.api.types import union_categoricals

from pipelines.errors import DataError

if TYPE_CHECKING:
    from pipelines.config import Config

log = logging.getLogger(__name__)

STAGING = "_staging"
ONLINE_PREFIX = "online-"  # part files the model server appends to a partition; a batch rerun keeps them


class Table(StrEnum):
    """The lake's tables; each holds one ``date=YYYY-MM-DD`` partition per day."""

    FEATURES = "features"
    QUARANTINE = "quarantine"
    PREDICTIONS = "predictions"
    DEAD_LETTER = "dead_letter"
    PREDICTION_LOG = "prediction_log"
    SHADOW_LOG = "shadow_log"  # online predictions of a shadow challenger: never served, so kept out of the log
    REPORTS = "reports"
    PERFORMANCE = "performance"  # per scored day: the realized metric so far, filled in as labels arrive


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem behind ``url`` and the path on it (fsspec strips the protocol)."""
    return fsspec.core.url_to_fs(url, **(options or {}))


def url_for(fs: AbstractFileSystem, path: str) -> str:
    """Put back the protocol fsspec stripped from ``path`` (local paths stay plain), so workers can reopen it."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol == "file" else f"{protocol}://{path}"


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

    def fs(self, url: str) -> tuple[AbstractFileSystem, str]:
        """The filesystem and path behind any URL in (or beside) this lake, with the lake's options."""
        return filesystem(url, self.options)

    def table_url(self, table: Table) -> str:
        return f"{self.root}/{table}"

    def partition(self, table: Table, day: date) -> str:
        """The URL of one day's partition of ``table`` (whether or not it exists)."""
        return f"{self.table_url(table)}/date={day.isoformat()}"

    def exists(self, table: Table, day: date) -> bool:
        fs, path = self.fs(self.partition(table, day))
        return fs.exists(path)

    def days(self, table: Table) -> list[date]:
        """The days a table holds, ignoring staging folders and anything that is not ``date=YYYY-MM-DD``."""
        fs, path = self.fs(self.table_url(table))
        if not fs.exists(path):
            return []
        days = []
        for entry in fs.ls(path, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("date="):
                try:
                    days.append(date.fromisoformat(name[len("date=") :]))
                except ValueError:
                    log.warning("ignoring malformed partition folder %s", entry)
        return sorted(days)

    def read(
        self, table: Table, day: date, columns: list[str] | None = None, categories: list[str] | None = None
    ) -> pd.DataFrame:
        """One day of a table; a missing partition is a :class:`DataError` that names it (a retry cannot help).

        ``categories``: string columns to read as pandas categoricals, each distinct value decoded once rather than
        once per row (other types are read as they are).
        """
        url = self.partition(table, day)
        fs, path = self.fs(url)
        if not fs.exists(path):
            raise DataError(f"partition {url} does not exist; has the upstream stage run for {day}?")
        return pd.read_parquet(path, filesystem=fs, columns=columns, read_dictionary=categories)

    def columns(self, table: Table, day: date) -> list[str]:
        """The columns of one day's partition, from a Parquet footer (no rows read)."""
        fs, path = self.fs(self.partition(table, day))
        return list(pq.ParquetDataset(path, filesystem=fs).schema.names)

    def read_days(self, table: Table, days: Iterable[date], columns: list[str] | None = None) -> pd.DataFrame:
        """Several days of a table, concatenated (an empty frame for no days)."""
        frames = [self.read(table, day, columns) for day in days]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    def count_rows(self, table: Table, day: date) -> int | None:
        """Rows in one partition, from the Parquet footers only; None when the partition does not exist."""
        if not self.exists(table, day):
            return None
        return count_rows(self.partition(table, day), self.options)

    def new_staging(self, table: Table, day: date) -> str:
        """A fresh, empty folder to write one partition of ``table`` into before :meth:`publish`."""
        staging = f"{self.table_url(table)}/{STAGING}/date={day.isoformat()}-{uuid.uuid4().hex[:12]}"
        fs, path = self.fs(staging)
        fs.makedirs(path, exist_ok=True)
        return staging

    def discard(self, staging: str) -> None:
        fs, path = self.fs(staging)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def publish(self, staging: str, table: Table, day: date) -> str:
        """Swap a staged folder into place, replacing the old partition.

        On a local disk: old partition renamed aside, new one renamed in, old one deleted (readers see the old or
        the new partition, never a mix). Object stores have no rename: the old objects are deleted, then the staged
        ones copied in, so a reader may briefly find the partition absent, but never half old and half new.
        Part files named ``online-*`` (appended by the model server, not by the batch run being published) are
        carried into the new partition, so a batch rerun never deletes online rows.
        """
        final = self.partition(table, day)
        fs, staging_path = self.fs(staging)
        final_path = self.fs(final)[1]
        if isinstance(fs, LocalFileSystem):
            trash = f"{staging_path}.old" if fs.exists(final_path) else None
            if trash:
                fs.mv(final_path, trash, recursive=True)
            fs.mv(staging_path, final_path, recursive=True)
            if trash:
                for kept in fs.glob(f"{trash}/{ONLINE_PREFIX}*"):  # online parts belong to no batch run: kept
                    fs.mv(kept, f"{final_path}/{kept.rsplit('/', 1)[-1]}")
                fs.rm(trash, recursive=True)
        else:
            if fs.exists(final_path):
                old = [f for f in fs.find(final_path) if not f.rsplit("/", 1)[-1].startswith(ONLINE_PREFIX)]
                if old:
                    fs.rm(old)
            staged = fs.find(staging_path)  # an object store has no empty folders: nothing staged, nothing to copy
            for file in staged:
                fs.copy(file, final_path + file[len(staging_path) :])
            if staged:
                fs.rm(staged)
            fs.invalidate_cache()
        log.info("published %s", final)
        return final

    @contextmanager
    def staged(self, table: Table, day: date) -> Iterator[str]:
        """Yield a staging URL to write a partition into; publish it on success, discard it on error."""
        staging = self.new_staging(table, day)
        try:
            yield staging
        except BaseException:
            self.discard(staging)
            raise
        self.publish(staging, table, day)

    def write(self, table: Table, day: date, df: pd.DataFrame, row_group_rows: int = 250_000) -> str:
        """Replace one day's partition of ``table`` with ``df`` (one Parquet file, row groups of
        ``row_group_rows``)."""
        with self.staged(table, day) as staging:
            fs, path = self.fs(staging)
            with fs.open(f"{path}/part-00000.parquet", "wb") as handle:
                df.to_parquet(handle, index=False, row_group_size=row_group_rows)
        return self.partition(table, day)

    @contextmanager
    def open_for_arrow(self, url: str, mode: str) -> Iterator[Any]:
        """What pyarrow reads or writes fastest: a plain path on a local disk (native I/O), else an fsspec file."""
        fs, path = self.fs(url)
        if isinstance(fs, LocalFileSystem):
            yield path
            return
        with fs.open(path, mode) as handle:
            yield handle


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``frames`` one after the other; a column categorical in every frame stays categorical.

    pandas turns categoricals with different categories (each day's own) into objects, one per row; here they
    share the union of the categories first, which only renumbers codes.
    """
    if not frames:
        return pd.DataFrame()
    shared = [
        c for c in frames[0].columns if all(c in f and isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)
    ]
    frames = [f.copy(deep=False) for f in frames]  # the categorical columns are replaced, the rest is shared
    for column in shared:
        categories = union_categoricals([f[column] for f in frames]).categories
        for frame in frames:
            frame[column] = frame[column].cat.set_categories(categories)
    return pd.concat(frames, ignore_index=True)


def count_rows(url: str, options: dict[str, Any] | None = None) -> int:
    """Rows in every Parquet file under ``url``, read from the footers only."""
    fs, path = filesystem(url, options)
    files = [f for f in fs.find(path) if f.endswith(".parquet")]
    total = 0
    for file in files:
        with fs.open(file, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
