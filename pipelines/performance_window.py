"""Low-volume models: the performance table's metric over a trailing window of scored days.

A model that scores 24 rows a day never has ``monitoring.min_rows`` labeled rows in one day: each day's realized
metric is NaN and the metric-drop trigger can never fire. As Databricks' monitors do with their granularities, each
day's row also holds the metric over the ``monitoring.metric_window_days`` scored days ending on it (realized, with
its interval, and estimated), with the window's row counts and the minimum sample stated: ``window_min_rows`` is
``monitoring.min_rows`` and ``window_below_min`` says when the window's labeled rows are still fewer, instead of a
silent NaN. With a window of one day (the default) the window's fields are the day's own.

A day's window changes when the labels of any of its days do: the rows to rewrite are the days whose own labels
changed and the later days whose window holds one of them (:func:`rows_due`). Pure functions; the performance
table's update (:mod:`pipelines.performance`) reads and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np

WINDOW = "window_"  # the prefix of a row's window fields (the triggers read them when the window is longer than 1)


def window_of(day: date, scored: Iterable[date], window_days: int) -> list[date]:
    """The scored days of the window ending on ``day``, oldest first. Pure."""
    first = day - timedelta(days=window_days - 1)
    return sorted(d for d in scored if first <= d <= day)


def rows_due(
    due: list[date], scored: list[date], stored: Mapping[date, Mapping[str, Any]], as_of: date, window_days: int
) -> list[date]:
    """The days whose own row is due and the scored days whose window holds one of them, except a row computed
    from labels newer than ``as_of`` (a rerun never replaces newer knowledge). Pure."""
    wanted = set(due)
    for day in scored:
        if any(0 < (day - d).days < window_days for d in due):
            row = stored.get(day)
            if row is None or date.fromisoformat(str(row["labels_as_of"])) <= as_of:
                wanted.add(day)
    return sorted(wanted)


def window_changed(row: Mapping[str, Any] | None, scored_rows: int, labeled_rows: int) -> bool:
    """Whether a stored row's window figures no longer describe the window (a row written before the table kept
    them has none: changed). Pure."""
    if row is None:
        return True
    held = (row.get(f"{WINDOW}scored_rows"), row.get(f"{WINDOW}labeled_rows"))
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in held):
        return True
    return (int(held[0]), int(held[1])) != (scored_rows, labeled_rows)
