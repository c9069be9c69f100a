"""Feature extraction: one day of raw events -> a validated feature partition and a quarantine partition.

Rows are selected by event time, not by file, because feeds deliver late events in later files. Each run rereads
the source and replaces the day's partitions, so a rerun or a backfill is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from pipelines import storage
from pipelines.config import Config, DatasetConfig
from pipelines.storage import Lake, Table
from pipelines.validation import REASON, DataError, require_columns, split_valid

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"


@dataclass(frozen=True)
class ExtractResult:
    day: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    undated: int
    features_url: str
    quarantine_url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[day, day + 1)`` a daily partition covers."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def source_files(pattern: str, options: dict[str, Any] | None = None) -> list[str]:
    """Every file a source pattern (file, folder glob or ``s3://`` glob) matches, as URLs; none is an error."""
    fs, path = storage.filesystem(pattern, options)
    files = sorted(fs.glob(path)) if any(ch in path for ch in "*?[") else ([path] if fs.isfile(path) else [])
    if not files:
        raise DataError(f"source {pattern} matches no files")
    return [storage.url_for(fs, f) for f in files]


def read_source(url: str, dataset: DatasetConfig, options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read one CSV or Parquet file; a file that cannot be read is an error naming it."""
    fs, path = storage.filesystem(url, options)
    try:
        with fs.open(path, "rb") as handle:
            if path.endswith((".csv", ".csv.gz")):
                text = [dataset.key, *dataset.features.categorical]
                return pd.read_csv(handle, dtype={c: str for c in text}, compression="infer")
            if path.endswith(".parquet"):
                return pd.read_parquet(handle)
    except Exception as exc:  # any parser error: the message must name the file
        raise DataError(f"cannot read source file {url}: {type(exc).__name__}: {exc}") from exc
    raise DataError(f"source file {url} is neither .csv nor .parquet")


def _select_day(frame: pd.DataFrame, dataset: DatasetConfig, url: str, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``frame`` whose event time falls on ``day``, and the rows whose event time is missing or unparseable."""
    require_columns(frame, [dataset.event_time], url)
    times = pd.to_datetime(frame[dataset.event_time], utc=True, errors="coerce", format="mixed")
    start, end = day_bounds(day)
    in_day = (times >= start) & (times < end)
    selected = frame[in_day.to_numpy()].assign(**{dataset.event_time: times[in_day]})
    return selected, frame[times.isna().to_numpy()]


def _quarantine_undated(config: Config, lake: Lake, url: str, rows: pd.DataFrame) -> None:
    """Rows with no usable event time belong to no day: keep them per source file so nothing vanishes."""
    if rows.empty:
        return
    name = url.rstrip("/").rsplit("/", 1)[-1]
    target = f"{lake.table_url(Table.QUARANTINE)}/undated/{name}.parquet"
    fs, path = lake.fs(target)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    frame = rows.astype("string").assign(
        **{REASON: f"{config.dataset.event_time}: missing or unparseable", SOURCE_FILE: url}
    )
    with fs.open(path, "wb") as handle:
        frame.to_parquet(handle, index=False)
    log.warning("%s: %d rows have no usable %s; quarantined to %s", url, len(rows), config.dataset.event_time, target)


def extract_features(config: Config, day: date) -> ExtractResult:
    """Validate the day's raw rows and publish the features and quarantine partitions; rows in = valid + quarantined."""
    dataset = config.dataset
    options = config.storage.options
    lake = Lake.from_config(config)
    frames, undated = [], 0
    for url in source_files(dataset.source, options):
        raw = read_source(url, dataset, options)
        selected, no_time = _select_day(raw, dataset, url, day)
        _quarantine_undated(config, lake, url, no_time)
        undated += len(no_time)
        require_columns(selected, [dataset.key, *dataset.features.all], url)
        if not selected.empty:
            frames.append(selected.assign(**{SOURCE_FILE: url}))
    columns = [dataset.key, dataset.event_time, *dataset.features.all, SOURCE_FILE]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    if rows.empty:
        log.warning("no source rows have %s on %s; publishing an empty partition", dataset.event_time, day)
    split = split_valid(rows, dataset, f"{dataset.source} [{day}]")
    keep = [dataset.key, dataset.event_time, *dataset.features.all]
    if dataset.target in split.valid.columns:
        keep.append(dataset.target)
    features_url = lake.write(Table.FEATURES, day, split.valid[keep], row_group_rows=config.scoring.partition_rows)
    quarantine_url = lake.write(Table.QUARANTINE, day, split.quarantined)
    result = ExtractResult(
        day=day.isoformat(),
        rows_in=len(rows),
        rows_valid=len(split.valid),
        rows_quarantined=len(split.quarantined),
        undated=undated,
        features_url=features_url,
        quarantine_url=quarantine_url,
    )
    log.info(
        "features %s: %d in, %d valid, %d quarantined", day, result.rows_in, result.rows_valid, result.rows_quarantined
    )
    return result
