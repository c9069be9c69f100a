"""Feature extraction: one day of raw events -> a validated feature partition and a quarantine partition.

Rows are selected by event time, not by file, because feeds deliver late events in later files. Each run reads
the files that can hold the day (:mod:`pipelines.sources` keeps their event-time ranges, so the cost does not grow
with the history) and replaces the day in the quarantine and features tables, each in one Delta transaction, so a
rerun or a backfill is idempotent. The features commit carries the day's record (the source file versions read,
the row counts): a day already extracted that a later file can hold is reported by :func:`late_days`, to be
extracted again. Before publishing, the day's volume and quarantine share are checked (:mod:`pipelines.quality`);
a failing day publishes nothing.

History tables take part in the same bookkeeping: the day's record names the history file versions its windows
could see and the hash of the feature definitions that computed it (:mod:`pipelines.lineage`), so a late history
file makes the days it reaches due again (:func:`late_days`), and training can tell a day computed with other
definitions and compute it again (:func:`build_day`, which publishes nothing). A history file's rows without a key
or a time are quarantined when the file is indexed (:mod:`pipelines.history`).

The valid rows gain the features declared in the config (``dataset.features.aggregates`` over the history tables,
and ``derived``), computed point-in-time by :mod:`pipelines.aggregates`: training and scoring read them from the
features table like the raw columns, so both see the values computed here for the row's own day.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd

from pipelines import history, lineage, quality, sources
from pipelines.aggregates import add_declared
from pipelines.config import Config, DatasetConfig
from pipelines.errors import DataError, QualityGateError
from pipelines.records import jsonable
from pipelines.sources import day_bounds, event_times, read_source
from pipelines.storage import Lake, Table
from pipelines.validation import REASON, Split, require_columns, split_valid

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"


@dataclass(frozen=True)
class ExtractResult:
    day: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    undated: int  # rows without a usable event time in the files read for the day (quarantined when first indexed)
    features_url: str
    quarantine_url: str
    # per history table, the rows of the files the day's windows could see: in = valid + quarantined (no key or time)
    history: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _select_day(frame: pd.DataFrame, dataset: DatasetConfig, url: str, day: date) -> pd.DataFrame:
    """Rows of ``frame`` whose event time falls on ``day``."""
    require_columns(frame, [dataset.event_time], url)
    times = event_times(frame, dataset.event_time)
    start, end = day_bounds(day)
    in_day = (times >= start) & (times < end)
    return frame[in_day.to_numpy()].assign(**{dataset.event_time: times[in_day]})


def _quarantine_undated(config: Config, lake: Lake, url: str, rows: pd.DataFrame) -> None:
    """Rows with no usable event time belong to no day: keep them per source file so nothing vanishes."""
    if rows.empty:
        return
    frame = rows.astype("string").assign(
        **{REASON: f"{config.dataset.event_time}: missing or unparseable", SOURCE_FILE: url}
    )
    target = lake.write_undated(url, frame)
    log.warning("%s: %d rows have no usable %s; quarantined to %s", url, len(rows), config.dataset.event_time, target)


def _index_file(config: Config, url: str) -> sources.FileEntry:
    """Index a file its footer cannot (CSV, string or nullable times): read it once, quarantine its undated rows."""
    frame = read_source(url, config.dataset, config.storage.options)
    require_columns(frame, [config.dataset.event_time], url)
    times = event_times(frame, config.dataset.event_time)
    undated = frame[times.isna().to_numpy()]
    _quarantine_undated(config, Lake.from_config(config), url, undated)
    dated = times.dropna()
    low, high = (dated.min().value, dated.max().value) if len(dated) else (None, None)
    return sources.FileEntry(url=url, version="", rows=len(frame), low=low, high=high, undated=len(undated))


def index_events(config: Config) -> dict[str, sources.FileEntry]:
    """The event-time index of every source file, (re)indexing only new or changed files."""
    entries = sources.refresh(
        config,
        sources.EVENTS_INDEX,
        config.dataset.source,
        partial(_index_file, config),
        kind="time",
        column=config.dataset.event_time,
    )
    return entries


def source_landed(config: Config, day: date, now: datetime) -> bool:
    """Whether the day's source data has landed; False while it may still come; a DataError once it is overdue
    (``schedule.source_wait_minutes`` after the day ends), naming what the source holds."""
    entries = index_events(config)
    if sources.landed(entries.values(), day):
        return True
    first_last = sources.span(entries.values())
    holds = f"events {first_last[0]}..{first_last[1]}" if first_last else "no dated events"
    wait = config.schedule.source_wait_minutes
    overdue = now - day_bounds(day)[1] > timedelta(minutes=wait)
    message = f"no source data for {day} in {config.dataset.source} ({holds}, {len(entries)} file(s))"
    if overdue:
        raise DataError(f"{message}; it was due within schedule.source_wait_minutes={wait:g} after the day ended")
    log.info("%s yet: waiting up to schedule.source_wait_minutes=%g after the day ends", message, wait)
    return False


def late_days(config: Config, day: date) -> list[date]:
    """Days other than ``day`` already extracted without a source file that can hold their rows, or without a
    history file whose events fall in their windows (a day computed with other definitions is training's business,
    not late data): extract them again."""
    stale = set(sources.stale_days(config, index_events(config), day, Table.FEATURES))
    current = lineage.definitions_hash(config)
    longest = history.longest_windows(config)
    for name, entries in history.indexes(config).items():
        recorded = partial(lineage.history_seen, table=name, current=current)
        reaches = partial(history.reaches, config.dataset.history[name], longest[name])
        stale.update(
            sources.stale_days(config, entries, day, Table.FEATURES, history.index_name(name), reaches, recorded)
        )
    return sorted(stale)


def _check_quality(config: Config, day: date, rows: pd.DataFrame, quarantined: pd.DataFrame, span: str) -> None:
    """Fail the day, naming the numbers, when its volume or quarantine share is off (nothing is published)."""
    usual = sources.recent_volumes(config, day, config.quality.volume_history_days)
    problems = quality.volume_problems(len(rows), len(quarantined), usual, config.quality)
    if not problems:
        return
    reasons = quarantined[REASON].value_counts().head(3).to_dict() if len(quarantined) else {}
    raise QualityGateError(
        f"features {day} not published: {'; '.join(problems)}. Source events span {span}"
        + (f"; top quarantine reasons {reasons}" if reasons else "")
    )


@dataclass(frozen=True)
class Day:
    """One day as extraction computes it, before anything is published."""

    rows: pd.DataFrame  # every row of the source files on the day
    split: Split  # the rows, valid or quarantined
    features: pd.DataFrame  # the valid rows with their declared features: the columns the features table holds
    files: list[sources.FileEntry]  # the source files read
    entries: dict[str, sources.FileEntry]  # the source's whole index
    history: dict[str, dict[str, str]]  # per history table, the file versions (url -> version) its windows could see
    history_rows: dict[str, dict[str, int]]  # per history table, the rows of those files (in, valid, quarantined)


def build_day(config: Config, day: date) -> Day:
    """Read, validate and compute one day with the config's definitions, publishing nothing: what extraction
    publishes, and what training computes again for a day extracted with other definitions."""
    dataset = config.dataset
    options = config.storage.options
    entries = index_events(config)
    files = sources.overlapping(entries.values(), day)
    frames = []
    for entry in files:
        selected = _select_day(read_source(entry.url, dataset, options), dataset, entry.url, day)
        require_columns(selected, [dataset.key, *dataset.features.raw, *dataset.join_keys], entry.url)
        if not selected.empty:
            frames.append(selected.assign(**{SOURCE_FILE: entry.url}))
    columns = [dataset.key, dataset.event_time, *dataset.features.raw, *dataset.join_keys, SOURCE_FILE]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    split = split_valid(rows, dataset, f"{dataset.source} [{day}]")
    indexes = history.indexes(config)
    valid = add_declared(config, split.valid, indexes)  # point-in-time: only events before each row's time
    keep = [dataset.key, dataset.event_time, *dataset.join_keys, *dataset.features.all]
    if dataset.target in valid.columns:
        keep.append(dataset.target)
    longest = history.longest_windows(config)
    seen = {n: history.day_files(e, dataset.history[n], longest[n], day) for n, e in indexes.items()}
    counted = {n: history.accounting(indexes[n][url] for url in seen[n]) for n in indexes}
    return Day(rows, split, valid[keep], files, entries, seen, counted)


def extract_features(config: Config, day: date) -> ExtractResult:
    """Validate the day's raw rows and publish the features and quarantine partitions; rows in = valid + quarantined."""
    config.schedule.require_day(day)
    lake = Lake.from_config(config)
    built = build_day(config, day)
    rows, split = built.rows, built.split
    first_last = sources.span(built.entries.values())
    _check_quality(config, day, rows, split.quarantined, "..".join(map(str, first_last)) if first_last else "no days")
    counts = {"rows_in": len(rows), "rows_valid": len(split.valid), "rows_quarantined": len(split.quarantined)}
    record = {
        **sources.build_record(built.files, counts),
        lineage.DEFINITIONS: lineage.definitions_hash(config),
        lineage.HISTORY: built.history,
    }
    # Quarantine first: the features commit carries the day's record, so a crash in between leaves the day stale.
    quarantine_url = lake.write(Table.QUARANTINE, day, split.quarantined)
    features_url = lake.write(
        Table.FEATURES, day, built.features, row_group_rows=config.scoring.partition_rows, record=record
    )
    result = ExtractResult(
        day=day.isoformat(),
        rows_in=len(rows),
        rows_valid=len(split.valid),
        rows_quarantined=len(split.quarantined),
        undated=sum(e.undated for e in built.files),
        features_url=features_url,
        quarantine_url=quarantine_url,
        history=built.history_rows,
    )
    log.info(
        "features %s: %d in, %d valid, %d quarantined from %d of %d source files",
        day,
        result.rows_in,
        result.rows_valid,
        result.rows_quarantined,
        len(built.files),
        len(built.entries),
    )
    return result
