"""The data lake: date-partitioned Parquet tables on any fsspec filesystem (a local folder or ``s3://``).

Every write is a transaction: the partition is written under ``<table>/_staging/`` and then moved into place,
replacing what was there, so a rerun never appends and a reader never sees half a partition on a local disk.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

STAGING = "_staging"


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem behind ``url`` and the path on it (fsspec strips the protocol)."""
    return fsspec.core.url_to_fs(url, **(options or {}))


def url_for(fs: AbstractFileSystem, path: str) -> str:
    """Put back the protocol fsspec stripped from ``path`` (local paths stay plain), so workers can reopen it."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol == "file" else f"{protocol}://{path}"


def partition_url(root: str, table: str, day: date) -> str:
    return f"{root.rstrip('/')}/{table}/date={day.isoformat()}"


def partition_days(root: str, table: str, options: dict[str, Any] | None = None) -> list[date]:
    """The days a table holds, ignoring staging folders and anything that is not ``date=YYYY-MM-DD``."""
    fs, path = filesystem(f"{root.rstrip('/')}/{table}", options)
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


def new_staging(root: str, table: str, day: date, options: dict[str, Any] | None = None) -> str:
    """A fresh, empty folder to write one partition of ``table`` into before :func:`publish`."""
    staging = f"{root.rstrip('/')}/{table}/{STAGING}/date={day.isoformat()}-{uuid.uuid4().hex[:12]}"
    fs, path = filesystem(staging, options)
    fs.makedirs(path, exist_ok=True)
    return staging


def discard(staging: str, options: dict[str, Any] | None = None) -> None:
    fs, path = filesystem(staging, options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def publish(staging: str, root: str, table: str, day: date, options: dict[str, Any] | None = None) -> str:
    """Swap a staged folder into place, replacing the old partition.

    On a local disk: old partition renamed aside, new one renamed in, old one deleted (readers see the old or the
    new partition, never a mix). Object stores have no rename: the old objects are deleted, then the staged ones
    copied in, so a reader may briefly find the partition absent, but never half old and half new.
    """
    final = partition_url(root, table, day)
    fs, staging_path = filesystem(staging, options)
    final_path = filesystem(final, options)[1]
    if isinstance(fs, LocalFileSystem):
        trash = f"{staging_path}.old" if fs.exists(final_path) else None
        if trash:
            fs.mv(final_path, trash, recursive=True)
        fs.mv(staging_path, final_path, recursive=True)
        if trash:
            fs.rm(trash, recursive=True)
    else:
        if fs.exists(final_path):
            fs.rm(final_path, recursive=True)
        staged = fs.find(staging_path)  # an object store has no empty folders: nothing staged, nothing to copy
        for file in staged:
            fs.copy(file, final_path + file[len(staging_path) :])
        if staged:
            fs.rm(staged)
        fs.invalidate_cache()
    log.info("published %s", final)
    return final


@contextmanager
def staged_partition(root: str, table: str, day: date, options: dict[str, Any] | None = None) -> Iterator[str]:
    """Yield a staging URL to write a partition into; publish it on success, discard it on error."""
    staging = new_staging(root, table, day, options)
    try:
        yield staging
    except BaseException:
        discard(staging, options)
        raise
    publish(staging, root, table, day, options)


def write_partition(
    df: pd.DataFrame,
    root: str,
    table: str,
    day: date,
    options: dict[str, Any] | None = None,
    row_group_rows: int = 250_000,
) -> str:
    """Replace one day's partition of ``table`` with ``df`` (one Parquet file, row groups of ``row_group_rows``)."""
    with staged_partition(root, table, day, options) as staging:
        fs, path = filesystem(staging, options)
        with fs.open(f"{path}/part-00000.parquet", "wb") as handle:
            df.to_parquet(handle, index=False, row_group_size=row_group_rows)
    return partition_url(root, table, day)


@contextmanager
def open_for_arrow(url: str, mode: str, options: dict[str, Any] | None = None) -> Iterator[Any]:
    """What pyarrow reads or writes fastest: a plain path on a local disk (native I/O), else an fsspec file."""
    fs, path = filesystem(url, options)
    if isinstance(fs, LocalFileSystem):
        yield path
        return
    with fs.open(path, mode) as handle:
        yield handle


def partition_exists(root: str, table: str, day: date, options: dict[str, Any] | None = None) -> bool:
    fs, path = filesystem(partition_url(root, table, day), options)
    return fs.exists(path)


def read_partition(
    root: str, table: str, day: date, options: dict[str, Any] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """One day of a table; a missing partition is an error that names it."""
    url = partition_url(root, table, day)
    fs, path = filesystem(url, options)
    if not fs.exists(path):
        raise FileNotFoundError(f"partition {url} does not exist; has the upstream stage run for {day}?")
    return pd.read_parquet(path, filesystem=fs, columns=columns)


def count_rows(url: str, options: dict[str, Any] | None = None) -> int:
    """Rows in every Parquet file under ``url``, read from the footers only."""
    fs, path = filesystem(url, options)
    files = [f for f in fs.find(path) if f.endswith(".parquet")]
    total = 0
    for file in files:
        with fs.open(file, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
