"""Declared features, computed point-in-time correct: per-entity aggregates over history tables, then derived ones.

The guarantee: a row with event time ``t`` gets, for each window of ``w`` days, the aggregate of its entity's
events with ``t - delay - w days <= event time < t - delay`` (``delay`` is the table's ``delay_hours``). An event
at ``t`` or later never changes the row, whichever day it lands in, so a training set built from history gets
exactly the features the batch path computed for the same rows on their day, and no future leaks into either
(tests/pipelines/test_aggregates.py checks both against a brute-force per-row computation).

Why DuckDB (not Dask DataFrame or pandas): a day's features are one range join of the day's rows with the events
in the longest window, then grouped aggregates with a ``FILTER`` per window, a vectorised, multi-threaded query
over Arrow tables handed over without a copy; published group-by benchmarks put DuckDB (and Polars) tens of times
ahead of Dask DataFrame on one node, and ``pandas groupby().rolling()`` computes every event's window, not the
day's rows' (bench/features.py measures both). DuckDB is already pinned. A day's rows fit one node; Dask fans
out across days (the extraction DAG's mapped tasks), not inside a day.

Defaults: a window with no value to aggregate (no event, or only missing values) takes the aggregate's declared
``default`` (0 for count, sum and distinct_count unless declared otherwise, missing for the rest), the same value
the online store answers for an entity it lacks. Derived features follow, over the row's own columns and the
aggregates (:mod:`pipelines.expressions`); an infinite result is missing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines import history
from pipelines.config import Aggregate, Config, FeatureSpec
from pipelines.expressions import parse
from pipelines.history import ENTITY, TIME
from pipelines.sources import FileEntry

log = logging.getLogger(__name__)

ROW = "__row"
MICROS_PER_DAY = 86_400_000_000
# Floating-point addition is not associative, and a group's events come out of the join in an order the engine's
# threads vary: these add the values in value order, so the same events give the same bits on every run (in any
# order, the last bits of the demo's payment sums changed from run to run, and so did the model trained on them).
ORDER_SENSITIVE = frozenset({"sum", "mean", "std"})


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _aggregate_sql(aggregate: Aggregate, function: str, window: int) -> str:
    """One feature's SQL: the function over the joined events inside the window (and the filter)."""
    condition = f"h.{TIME} >= r.cutoff - INTERVAL {int(window)} DAY"
    if aggregate.where:
        condition += " AND " + parse(aggregate.where).sql(lambda n: f"h.{_quoted(n)}")
    column = f"h.{_quoted(aggregate.column)}" if aggregate.column else None
    if function == "count":
        return f"count(h.{TIME}) FILTER (WHERE {condition})"
    if function == "days_since_last":
        last = f"max(h.{TIME}) FILTER (WHERE {condition})"
        return f"(epoch_us(r.t) - epoch_us({last})) / {float(MICROS_PER_DAY)!r}"
    if function == "last":  # the latest event's value; at equal times the largest value (deterministic)
        key = f"struct_pack(ts := h.{TIME}, v := {column})"
        return f"arg_max({column}, {key}) FILTER (WHERE {condition} AND {column} IS NOT NULL)"
    if function == "distinct_count":
        return f"count(DISTINCT {column}) FILTER (WHERE {condition})"
    sql = {"sum": "sum", "mean": "avg", "min": "min", "max": "max", "std": "stddev_samp"}[function]
    if function in ORDER_SENSITIVE:
        return f"{sql}({column} ORDER BY {column}) FILTER (WHERE {condition})"
    return f"{sql}({column}) FILTER (WHERE {condition})"


def query(aggregates: list[Aggregate]) -> str:
    """The point-in-time query of one history table's aggregates: rows ``r`` (row, entity, t, cutoff) left-joined
    with events ``h`` of their entity before the cut-off and inside the longest window, grouped per row."""
    longest = max(w for a in aggregates for w in a.windows)
    features = [(a, f, w) for a in aggregates for f in a.functions for w in a.windows]
    columns = [f"{_aggregate_sql(a, f, w)} AS {_quoted(a.feature(f, w))}" for a, f, w in features]
    return (
        f"SELECT r.{ROW}, {', '.join(columns)} FROM r LEFT JOIN h ON h.{ENTITY} = r.{ENTITY}"
        f" AND h.{TIME} < r.cutoff AND h.{TIME} >= r.cutoff - INTERVAL {int(longest)} DAY"
        f" GROUP BY r.{ROW}, r.t, r.cutoff"
    )


def _rows(frame: pd.DataFrame, on: str, event_time: str, delay_hours: float) -> pa.Table:
    """The scored rows as the engine's ``r``: position, entity (text), time and cut-off (UTC microseconds)."""
    times = pd.to_datetime(frame[event_time], utc=True).dt.as_unit("us")
    entity = frame[on].astype("string")
    return pa.table(
        {
            ROW: pa.array(np.arange(len(frame), dtype=np.int64)),
            ENTITY: pa.array(entity, pa.string(), from_pandas=True),
            "t": pa.array(times, history.UTC_MICROS),
            "cutoff": pa.array(times - pd.Timedelta(hours=delay_hours), history.UTC_MICROS),
        }
    )


def point_in_time(rows: pa.Table, events: pa.Table, aggregates: list[Aggregate]) -> pd.DataFrame:
    """The aggregates of one history table for ``rows`` (see :func:`_rows`) over ``events`` (see
    :mod:`pipelines.history`): one row per input row, in input order, defaults filled in. Pure (DuckDB in memory)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("r", rows)
        con.register("h", events)
        result = con.sql(query(aggregates)).to_arrow_table()
    frame = result.to_pandas().set_index(ROW).sort_index()
    for aggregate in aggregates:
        for function in aggregate.functions:
            default = aggregate.default_of(function)
            for window in aggregate.windows:
                name = aggregate.feature(function, window)
                values = frame[name].astype("float64")
                frame[name] = values if default is None else values.fillna(default)
    return frame.reset_index(drop=True)


def derive(frame: pd.DataFrame, features: FeatureSpec) -> pd.DataFrame:
    """``frame`` with the derived features added, in declaration order (each may use the earlier ones)."""
    frame = frame.copy()
    for name, text in features.derived.items():
        values = parse(text).evaluate(frame).astype("float64")
        frame[name] = values.where(np.isfinite(values))
    return frame


def defaults(features: FeatureSpec) -> dict[str, float | None]:
    """Each aggregate's value for an entity without events (what a missing entity is given online)."""
    return {a.feature(f, w): a.default_of(f) for a in features.aggregates for f in a.functions for w in a.windows}


def by_table(features: FeatureSpec) -> dict[str, list[Aggregate]]:
    grouped: dict[str, list[Aggregate]] = {}
    for aggregate in features.aggregates:
        grouped.setdefault(aggregate.table, []).append(aggregate)
    return grouped


def _events_for(
    config: Config, name: str, longest: int, times: pd.Series, entries: dict[str, FileEntry] | None
) -> pa.Table:
    """The table's events the rows can see: from the earliest cut-off minus the longest window to the latest."""
    delay = timedelta(hours=config.dataset.history[name].delay_hours)
    start = times.min() - delay - timedelta(days=longest)
    end = times.max() - delay
    return history.read_events(config, name, start.to_pydatetime(), end.to_pydatetime(), entries)


def add_declared(
    config: Config, frame: pd.DataFrame, indexes: dict[str, dict[str, FileEntry]] | None = None
) -> pd.DataFrame:
    """``frame`` (rows with their event time and join keys) with every declared feature added: the aggregates of
    each history table, point-in-time, then the derived features. Rows keep their order and index. ``indexes``:
    the history tables' file indexes (:func:`pipelines.history.indexes`) when the caller has them."""
    features = config.dataset.features
    if not features.computed:
        return frame
    out = frame.reset_index(drop=True)
    times = pd.to_datetime(out[config.dataset.event_time], utc=True)
    for name, aggregates in by_table(features).items():
        table = config.dataset.history[name]
        if len(out) == 0:
            computed = pd.DataFrame({c: pd.Series(dtype="float64") for a in aggregates for c in a.outputs})
        else:
            longest = max(w for a in aggregates for w in a.windows)
            events = _events_for(config, name, longest, times, (indexes or {}).get(name))
            rows = _rows(out, table.on, config.dataset.event_time, table.delay_hours)
            computed = point_in_time(rows, events, aggregates)
        out = pd.concat([out, computed], axis=1)
    out = derive(out, features)
    out.index = frame.index
    return out
