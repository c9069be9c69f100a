"""What a frame becomes in the lake's Delta tables, and back: the types a table holds, the per-file statistics of a
commit, the storage options delta-rs takes, and frames of several days put together.

Pure Arrow and pandas, apart from the lake's I/O (:mod:`pipelines.storage`), so the rules on types are read and
tested without a table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from pipelines.errors import DataError


def delta_options(options: dict[str, Any]) -> dict[str, str]:
    """``storage.options`` (fsspec's s3fs names) as delta-rs storage options; credentials not given here come from
    the environment (``AWS_ACCESS_KEY_ID`` ...), as for s3fs. Keys already in delta-rs form (``AWS_*``) pass."""
    names = {"endpoint_url": "AWS_ENDPOINT_URL", "key": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY"}
    names["token"] = "AWS_SESSION_TOKEN"
    found = {names[k]: str(v) for k, v in options.items() if k in names and v}
    found.update({k: str(v) for k, v in options.items() if k.isupper()})
    region = (options.get("client_kwargs") or {}).get("region_name")
    if region:
        found["AWS_REGION"] = str(region)
    if found.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        found.setdefault("AWS_ALLOW_HTTP", "true")
    return found


@dataclass(frozen=True)
class DataFile:
    """One Parquet file written into a table's folder and not yet committed: what its commit needs."""

    path: str  # relative to the table's root, e.g. date=2026-10-01/part-....parquet
    size: int
    rows: int
    partition: dict[str, str]
    stats: str  # Delta's per-file statistics (JSON): numRecords and nullCount
    schema: pa.Schema = field(repr=False)


def _delta_type(column: pa.ChunkedArray, target: pa.DataType | None) -> pa.DataType:
    """The type a column is stored with: the table's type when it has the column, else one Delta can hold."""
    kind = column.type
    if target is not None:
        return target
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_null(kind) or pa.types.is_large_string(kind):
        return pa.string()  # an empty object column of pandas: text, as every such column here is
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz=kind.tz)  # Delta timestamps are microseconds
    return kind


def conform(frame: pd.DataFrame, schema: pa.Schema | None, where: str) -> pa.Table:
    """``frame`` as an Arrow table of the types the table holds (``schema``; None for a new table): categoricals as
    their values, nanoseconds as microseconds, an int column as the table's float. A value that cannot take the
    table's type is a :class:`DataError` naming the column and both types."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns, fields = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        target = schema.field(name).type if schema is not None and name in schema.names else None
        kind = _delta_type(column, target)
        truncate = pa.types.is_timestamp(kind)  # nanoseconds to microseconds
        try:
            columns.append(column if column.type == kind else pc.cast(column, kind, safe=not truncate))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"{where}: column {name} holds {column.type}, the table holds {kind}; cannot convert: {exc}"
            ) from exc
        fields.append(pa.field(name, kind))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def no_null_categories(table: pa.Table) -> pa.Table:
    """``table`` with null taken out of its dictionaries (a column of nulls read as categories has null as its one
    value, which pandas refuses as a category): such a chunk is encoded again, nulls as missing values."""
    for index, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type) and any(c.dictionary.null_count for c in column.chunks):
            chunks = [
                c.dictionary_decode().dictionary_encode() if c.dictionary.null_count else c for c in column.chunks
            ]
            table = table.set_column(index, table.field(index), pa.chunked_array(chunks, column.type))
    return table


def file_stats(table: pa.Table) -> str:
    """Delta's per-file statistics: the row count (what :meth:`pipelines.storage.Lake.count_rows` sums) and nulls
    per column. Min and max are left out: days are partitions, so a reader prunes by day without them."""
    nulls = {name: column.null_count for name, column in zip(table.column_names, table.columns, strict=True)}
    return json.dumps({"numRecords": table.num_rows, "nullCount": nulls})


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
