"""Continued evaluation: the realized metric of every scored day, filled in as its labels arrive.

Labels arrive days or months after a prediction (a default is observed long after the loan was scored), so a
day's realized metric is not known when the day is scored. The performance table (``<root>/performance/date=D/``,
one row per scored day D) holds, as of the newest run: the day's scored rows, how many of them have labels so
far, the realized metric on those with a bootstrap confidence interval, and the model version that scored them.
A daily task (:func:`update_performance`, in ``drift_monitoring``) revisits the scored days of the last
``monitoring.label_horizon_days`` whose labels are incomplete, and rewrites a day's row (and its MLflow run
``performance-D``) only when its labeled rows changed. Everything is read "as of" the run's day: a rerun of day A
sees the labels that had arrived by the end of A, never later ones, and never replaces a row computed from newer
knowledge.

Days count as *labeled* once ``monitoring.min_label_share`` of their rows have labels: only such days feed the
metric-drop retrain trigger (:func:`trigger_day`) and the promotion holdout (:func:`holdout_days`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.errors import DataError, RegistryError
from pipelines.estimation import estimate_rows, features_needed
from pipelines.modeling import metric_value, paired_bootstrap, resampled_metric, unresamplable
from pipelines.monitoring import output_column
from pipelines.performance_segments import segment_metrics, segment_rows
from pipelines.performance_window import rows_due, window_changed, window_of
from pipelines.records import jsonable
from pipelines.registry import Registry, RunKind, Tag, connect, finite_metrics, realized_metric
from pipelines.storage import Lake, Table
from pipelines.training import read_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayPerformance:
    """One scored day's realized metric as known on ``labels_as_of`` (NaN value and bounds: not computable yet)."""

    date: str
    model_name: str
    model_version: str
    scored_rows: int
    labeled_rows: int
    label_share: float
    metric: str
    value: float
    ci_low: float
    ci_high: float
    labels_as_of: str
    computed_at: float  # epoch seconds: a rescoring after it makes the day due again
    note: str = ""  # why there is no value or interval, in words
    estimated_value: float = float("nan")  # CBPE's estimate from the scores alone (pipelines.estimated_performance)
    estimated_ci_low: float = float("nan")
    estimated_ci_high: float = float("nan")
    estimated_note: str = ""  # why there is no estimate
    run_id: str = ""  # the day's MLflow run (performance-D), reopened by the next update without a search
    # the same over the monitoring.metric_window_days scored days ending on the day (pipelines.performance_window)
    window_days: int = 1
    window_first: str = ""  # the window's first scored day
    window_scored_rows: int = 0
    window_labeled_rows: int = 0
    window_label_share: float = 0.0
    window_value: float = float("nan")
    window_ci_low: float = float("nan")
    window_ci_high: float = float("nan")
    window_note: str = ""
    window_min_rows: int = 0  # the minimum sample (monitoring.min_rows) the window's labeled rows are held to
    window_below_min: bool = True  # fewer labeled rows in the window than window_min_rows: no metric yet
    window_estimated_value: float = float("nan")
    window_estimated_ci_low: float = float("nan")
    window_estimated_ci_high: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_json(self) -> dict[str, Any]:
        """As :meth:`as_dict` with NaN as None: what XCom (JSON) can carry (``as_dict`` keeps NaN for the table)."""
        return jsonable(asdict(self))


def metric_interval(config: Config, y: np.ndarray, output: np.ndarray) -> tuple[float, float, str]:
    """Percentile bootstrap interval of the metric (``promotion.bootstrap`` resamples at ``promotion.confidence``,
    rows resampled with their outputs), or NaN bounds and why: a resample holding one class has no ROC AUC."""
    nan = float("nan")
    problem = unresamplable(config, y)
    if problem:
        return nan, nan, f"no interval: {problem}"
    low, high, undefined = paired_bootstrap(config, resampled_metric(config.model.metric, y, output), len(y))
    if undefined:
        return nan, nan, f"{undefined} of {config.promotion.bootstrap} resamples hold a single class"
    return low, high, ""


def evaluate_day(
    config: Config, day: date, predictions: pd.DataFrame, labels: pd.DataFrame, as_of: date
) -> DayPerformance:
    """The realized metric of one day's predictions (all scored rows, keyed) on the labels known so far. Pure."""
    key, target = config.dataset.key, config.dataset.target
    output = output_column(config)
    known = predictions.assign(**{key: predictions[key].astype(str)}).merge(labels, on=key, how="inner")
    known = known[known[target].notna()]
    versions = sorted(predictions["model_version"].astype(str).unique())
    y, scores = known[target].to_numpy(), known[output].to_numpy(dtype=np.float64)
    value, low, high, note = (float("nan"),) * 3 + ("",)
    if len(known) < config.monitoring.min_rows:
        note = f"{len(known)} labeled rows; monitoring.min_rows is {config.monitoring.min_rows}"
    elif config.task == "classification" and len(np.unique(y)) < 2:
        note = "the labeled rows hold a single class"
    else:
        value = metric_value(config.model.metric, y, scores)
        low, high, note = metric_interval(config, y, scores)
    return DayPerformance(
        date=day.isoformat(),
        model_name=config.model.name,
        model_version=",".join(versions),
        scored_rows=len(predictions),
        labeled_rows=len(known),
        label_share=len(known) / len(predictions) if len(predictions) else 0.0,
        metric=config.model.metric,
        value=value,
        ci_low=low,
        ci_high=high,
        labels_as_of=as_of.isoformat(),
        computed_at=time.time(),
        note=note,
    )


def in_horizon(days: list[date], as_of: date, horizon_days: int) -> list[date]:
    """The days up to ``as_of`` within the last ``horizon_days``: older days' labels count as final. Pure."""
    first = as_of - timedelta(days=horizon_days - 1)
    return [day for day in days if first <= day <= as_of]


def days_to_revisit(
    scored_at: Mapping[date, float | None], stored: Mapping[date, Mapping[str, Any]], as_of: date
) -> list[date]:
    """Of the scored days (day -> when its predictions were written, epoch seconds), those whose row may change: no
    row yet, labels still missing, or rescored since the row was computed. A row computed from labels newer than
    ``as_of`` (this run is a rerun of an earlier day) is left alone: a rerun never replaces newer knowledge. Pure."""
    due = []
    for day, written in sorted(scored_at.items()):
        row = stored.get(day)
        if row is None:
            due.append(day)
        elif date.fromisoformat(str(row["labels_as_of"])) > as_of:
            continue
        elif row["labeled_rows"] < row["scored_rows"] or (written is not None and written > row["computed_at"]):
            due.append(day)
    return due


def labels_changed(row: Mapping[str, Any] | None, scored_rows: int, labeled_rows: int, version: str) -> bool:
    """Whether a stored row no longer describes the day: new labels, or rescored (other rows or version). Pure."""
    if row is None:
        return True
    return (int(row["scored_rows"]), int(row["labeled_rows"]), str(row["model_version"])) != (
        scored_rows,
        labeled_rows,
        version,
    )


def read_performance(config: Config, days: list[date] | None = None, version: int | None = None) -> pd.DataFrame:
    """The performance table's rows (of ``days``, default every day it holds; at ``version``, default the newest),
    oldest first."""
    lake = Lake.from_config(config)
    held = lake.days(Table.PERFORMANCE, version)
    wanted = None if days is None else set(days)
    columns = ["date", *lake.columns(Table.PERFORMANCE, version)]  # the day is the partition column and a field
    return lake.read_days(Table.PERFORMANCE, [d for d in held if wanted is None or d in wanted], columns, None, version)


def horizon_days(config: Config, as_of: date) -> list[date]:
    """The ``monitoring.label_horizon_days`` days up to ``as_of``, newest first. Pure."""
    return [as_of - timedelta(days=i) for i in range(config.monitoring.label_horizon_days)]


def recent_performance(config: Config, as_of: date) -> pd.DataFrame:
    """The performance table's rows of the ``monitoring.label_horizon_days`` days up to ``as_of``: the days whose
    labels may still arrive, and the newest labeled ones. What a day's update and decision read: reading every row
    would make a day's cost grow with the length of the history."""
    return read_performance(config, horizon_days(config, as_of))


@dataclass(frozen=True)
class Horizon:
    """The performance rows of the horizon up to ``as_of`` (:func:`recent_performance`) as the table held them at
    ``version`` (None: not known to be any one version's, never reused)."""

    as_of: date
    version: int | None
    rows: pd.DataFrame


def recent_horizon(config: Config, as_of: date, previous: Horizon | None = None) -> Horizon:
    """:func:`recent_performance` as of ``as_of``, from ``previous`` (the horizon an update of an earlier day left)
    while the table is still at its version: its rows of the days both horizons cover, and only the new horizon's
    other days the table holds read (usually none: the newest day has no row before its first update).

    A run of days checks its days one after the other, each reading the 90-day horizon the previous one has just
    written (~90 one-row files, ~70 ms a day, a tenth of a year's bootstrap). Any other commit to the table since
    (another writer) changes its version, and the horizon is read whole."""
    lake = Lake.from_config(config)
    version = lake.version(Table.PERFORMANCE)
    days = horizon_days(config, as_of)
    if previous is None or previous.version is None or previous.version != version:
        return Horizon(as_of, version, read_performance(config, days, version))
    covered = set(horizon_days(config, previous.as_of))
    new = set(days) - covered
    held = [d for d in lake.days(Table.PERFORMANCE, version) if d in new]
    wanted = {d.isoformat() for d in days}
    kept = previous.rows[previous.rows["date"].astype(str).isin(wanted)] if len(previous.rows) else previous.rows
    if held:
        read = read_performance(config, held, version)
        kept = pd.concat([kept, read], ignore_index=True) if len(kept) else read
    return Horizon(as_of, version, _oldest_first(kept))


def _predictions(config: Config, days: list[date]) -> dict[date, pd.DataFrame]:
    """Each day's scored rows (key, output, model version), from one read of the days' files; with the features an
    estimate or a segment reads (regression's loss model, ``monitoring.segments``) joined on the key."""
    key = config.dataset.key
    lake = Lake.from_config(config)
    rows = lake.read_days(Table.PREDICTIONS, days, [key, output_column(config), "model_version", "date"])
    needed = list(dict.fromkeys([*features_needed(config), *config.monitoring.segments]))
    if needed:
        features = lake.read_days(Table.FEATURES, days, [key, *needed, "date"]).drop_duplicates([key, "date"])
        on = [key, "date"]
        rows = rows.assign(**{key: rows[key].astype(str), "date": rows["date"].astype(str)}).merge(
            features.assign(**{key: features[key].astype(str), "date": features["date"].astype(str)}), on=on, how="left"
        )
    by_day = dict(tuple(rows.groupby(rows.pop("date").astype(str), sort=False)))
    return {day: by_day.get(day.isoformat(), rows.iloc[:0]).reset_index(drop=True) for day in days}


def update_performance(config: Config, as_of: date, registry: Registry | None = None) -> list[DayPerformance]:
    """Revisit the scored days whose labels may have changed by the end of ``as_of``; rewrite the rows (and MLflow
    runs) of those whose labeled rows did change. Returns the rows written."""
    return update_recent_performance(config, as_of, registry)[0]


def update_recent_performance(
    config: Config, as_of: date, registry: Registry | None = None, previous: Horizon | None = None
) -> tuple[list[DayPerformance], Horizon]:
    """:func:`update_performance`, also returning the horizon's rows as of ``as_of`` after the update (and the
    table's version holding them when this update's commit is the only one since it read them).

    What the day's retraining decision reads next, and the next day's update starts from (``previous``): the update
    has just read the same rows, and the horizon's rows are a file per day (~90 small files, ~70 ms to read again)."""
    if not config.dataset.labels:
        log.info("no dataset.labels: no realized metric to track")
        return [], Horizon(as_of, None, pd.DataFrame())
    lake = Lake.from_config(config)
    written = lake.written_at(Table.PREDICTIONS)
    scored = in_horizon(sorted(written), as_of, config.monitoring.label_horizon_days)
    held = recent_horizon(config, as_of, previous)
    recent = held.rows
    stored = {date.fromisoformat(str(r["date"])): r for r in recent.to_dict("records")}
    window_days = config.monitoring.metric_window_days
    due = days_to_revisit({d: written[d] for d in scored}, stored, as_of)
    due = rows_due(due, scored, stored, as_of, window_days)  # and the days whose window holds a due day
    if not due:
        return [], held
    windows = {day: window_of(day, written, window_days) for day in due}
    predictions = _predictions(config, sorted({d for days in windows.values() for d in days}))
    keys = pd.concat([p[config.dataset.key].astype(str) for p in predictions.values()], ignore_index=True)
    labels = read_labels(config, keys, as_of=as_of)
    known = set(labels[config.dataset.key])
    registry = registry or connect(config)
    rows, segments = [], {}
    for day in due:
        frame = predictions[day]
        labeled = int(frame[config.dataset.key].astype(str).isin(known).sum())
        version = ",".join(sorted(frame["model_version"].astype(str).unique()))
        window = pd.concat([predictions[d] for d in windows[day]], ignore_index=True) if window_days > 1 else frame
        if labels_changed(stored.get(day), len(frame), labeled, version) or (
            window_days > 1
            and window_changed(
                stored.get(day), len(window), int(window[config.dataset.key].astype(str).isin(known).sum())
            )
        ):
            row = evaluate_day(config, day, frame, labels, as_of)
            row = with_estimate(config, registry, row, frame, stored.get(day))
            row = with_window(config, registry, row, windows[day], window, labels)
            extra = {}
            if config.monitoring.segments:
                found = segment_rows(
                    config,
                    row.date,
                    row.model_version,
                    row.labels_as_of,
                    frame,
                    labels,
                    lambda rows, v=row.model_version: estimate_rows(config, registry, v, rows),
                )
                segments.update({day: found} if len(found) else {})
                extra = segment_metrics(found)
            rows.append(replace(row, run_id=log_performance(registry, row, _run_id(stored.get(day)), extra)))
    # one commit for the run's rows: an update rewrites a few days at a time, each of them a commit before
    lake.write_days(Table.PERFORMANCE, {date.fromisoformat(r.date): pd.DataFrame([r.as_dict()]) for r in rows})
    if segments:
        lake.write_days(Table.PERFORMANCE_SEGMENTS, segments)
    for row in rows:
        log.info(
            "performance %s (v%s) as of %s: %d of %d rows labeled, %s %.4f [%.4f, %.4f]%s",
            row.date,
            row.model_version,
            as_of,
            row.labeled_rows,
            row.scored_rows,
            row.metric,
            row.value,
            row.ci_low,
            row.ci_high,
            f" ({row.note})" if row.note else "",
        )
    if not rows:
        return rows, held
    ours = 0 if held.version is None else held.version + 1  # no other commit since the read: the rows are exact
    after = lake.version(Table.PERFORMANCE)
    return rows, Horizon(as_of, after if after == ours else None, with_rows(recent, rows))


def with_rows(recent: pd.DataFrame, rows: list[DayPerformance]) -> pd.DataFrame:
    """The performance rows ``recent`` with ``rows`` in place of the same days' (and added), oldest first: what
    reading the table back after writing ``rows`` gives. Pure."""
    if not rows:
        return recent
    new = pd.DataFrame([row.as_dict() for row in rows])
    kept = recent[~recent["date"].astype(str).isin(set(new["date"]))] if len(recent) else recent.iloc[:0]
    return _oldest_first(pd.concat([kept, new], ignore_index=True) if len(kept) else new)


def _oldest_first(rows: pd.DataFrame) -> pd.DataFrame:
    """Performance rows in day order, as the table reads them back. Pure."""
    if not len(rows):
        return rows.reset_index(drop=True)
    return rows.sort_values("date", key=lambda d: d.astype(str), kind="stable").reset_index(drop=True)


def _run_id(row: Mapping[str, Any] | None) -> str | None:
    """The MLflow run a stored row names (rows written before the table kept it name none)."""
    value = None if row is None else row.get("run_id")
    return value if isinstance(value, str) and value else None


def _day_ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp() * 1000)


def log_performance(
    registry: Registry, row: DayPerformance, run_id: str | None = None, extra: Mapping[str, float] | None = None
) -> str:
    """One run per scored day (``performance-D``, started at D's midnight so runs sort by day), reopened as labels
    arrive. Each update logs the metrics at ``step`` = days since D and at D's timestamp: in the MLflow UI's charts,
    x = time plots the realized metric over the scored days, x = step shows a day filling in. A value not known yet
    (NaN) is left out. ``run_id``: the day's run as the table's row names it, written to in one call (no search);
    looked up by its tags when there is none or the store no longer has it. ``extra``: more metrics of the day (its
    segments'); with ``monitoring.metric_window_days`` above 1, the window's figures as ``window_<name>``. Returns
    the run's id."""
    day = date.fromisoformat(row.date)
    metric = realized_metric(row.metric)
    values = {
        metric: row.value,
        f"{metric}_ci_low": row.ci_low,
        f"{metric}_ci_high": row.ci_high,
        "labeled_rows": row.labeled_rows,
        "label_share": row.label_share,
        "scored_rows": row.scored_rows,
        f"estimated_{row.metric}": row.estimated_value,
        f"estimated_{row.metric}_ci_low": row.estimated_ci_low,
        f"estimated_{row.metric}_ci_high": row.estimated_ci_high,
        **(extra or {}),
    }
    if row.window_days > 1:
        values.update(
            {
                f"window_{metric}": row.window_value,
                f"window_{metric}_ci_low": row.window_ci_low,
                f"window_{metric}_ci_high": row.window_ci_high,
                "window_labeled_rows": row.window_labeled_rows,
                f"window_estimated_{row.metric}": row.window_estimated_value,
            }
        )
    step = (date.fromisoformat(row.labels_as_of) - day).days
    update = {
        "metrics": finite_metrics(values),
        "step": step,
        "timestamp": _day_ms(day),
        "tags": {Tag.MODEL_VERSION: row.model_version, Tag.LABELS_AS_OF: row.labels_as_of},
    }
    if run_id is not None:
        try:
            registry.log(run_id, **update)
            return run_id
        except RegistryError:
            log.info("performance %s: run %s is not in the registry; looking the day's run up", row.date, run_id)
    tags = {Tag.DAY: row.date, Tag.MODEL_NAME: row.model_name}
    found = registry.find_runs(RunKind.PERFORMANCE, **tags)
    if found and found[0].finished:
        registry.log(found[0].run_id, **update)
        return found[0].run_id
    run_id = (
        found[0].run_id
        if found
        else registry.start_run(RunKind.PERFORMANCE, f"performance-{row.date}", tags, start_time=_day_ms(day))
    )
    registry.log(run_id, **update)
    registry.end_run(run_id)
    return run_id


def with_estimate(
    config: Config,
    registry: Registry,
    row: DayPerformance,
    predictions: pd.DataFrame,
    stored: Mapping[str, Any] | None,
) -> DayPerformance:
    """The row with the estimate of the day's metric and its interval (CBPE for classification, direct loss
    estimation for regression: :mod:`pipelines.estimation`): computed from the day's scores on its first row (the
    day it is scored) and carried over while the same version's scores stand (it does not depend on the labels;
    recomputing it as they arrive would only cost time)."""
    if stored is not None and str(stored["model_version"]) == row.model_version and "estimated_value" in stored:
        fields = ("estimated_value", "estimated_ci_low", "estimated_ci_high", "estimated_note")
        if stored["scored_rows"] == row.scored_rows:
            carried = {k: float(stored[k]) for k in fields[:3]}
            note = stored["estimated_note"]
            return replace(row, **carried, estimated_note=note if isinstance(note, str) else "")
    found = estimate_rows(config, registry, row.model_version, predictions)
    return replace(
        row,
        estimated_value=found.value,
        estimated_ci_low=found.ci_low,
        estimated_ci_high=found.ci_high,
        estimated_note=found.note,
    )


def with_window(
    config: Config,
    registry: Registry,
    row: DayPerformance,
    days: list[date],
    window: pd.DataFrame,
    labels: pd.DataFrame,
) -> DayPerformance:
    """The row with its window's figures (:mod:`pipelines.performance_window`): the realized metric and its
    interval on the labeled rows of the window's scored ``days`` (their rows: ``window``), the estimate from their
    scores, the counts and the minimum sample. A one-day window is the day itself (nothing computed again)."""
    if config.monitoring.metric_window_days == 1:
        over, found = row, (row.estimated_value, row.estimated_ci_low, row.estimated_ci_high)
    else:
        over = evaluate_day(config, date.fromisoformat(row.date), window, labels, date.fromisoformat(row.labels_as_of))
        estimated = estimate_rows(config, registry, over.model_version, window)
        found = (estimated.value, estimated.ci_low, estimated.ci_high)
    return replace(
        row,
        window_days=config.monitoring.metric_window_days,
        window_first=days[0].isoformat() if days else row.date,
        window_scored_rows=over.scored_rows,
        window_labeled_rows=over.labeled_rows,
        window_label_share=over.label_share,
        window_value=over.value,
        window_ci_low=over.ci_low,
        window_ci_high=over.ci_high,
        window_note=over.note,
        window_min_rows=config.monitoring.min_rows,
        window_below_min=over.labeled_rows < config.monitoring.min_rows,
        window_estimated_value=found[0],
        window_estimated_ci_low=found[1],
        window_estimated_ci_high=found[2],
    )


def trigger_day(
    rows: pd.DataFrame, champion_version: str, min_share: float, day: date, prefix: str = ""
) -> dict[str, Any] | None:
    """The newest day up to ``day`` scored by ``champion_version`` that counts as labeled (``min_share`` of its rows)
    and has a realized metric: what the metric-drop retrain trigger compares with the training metric. ``prefix``
    ``"window_"``: the day's window counts and has the metric (``monitoring.metric_window_days``). Pure."""
    if rows.empty or f"{prefix}value" not in rows:
        return None
    usable = rows[
        (rows["date"].astype(str) <= day.isoformat())
        & (rows["model_version"].astype(str) == str(champion_version))
        & (rows[f"{prefix}label_share"] >= min_share)
        & rows[f"{prefix}value"].notna()
    ]
    if usable.empty:
        return None
    return usable.sort_values("date").iloc[-1].to_dict()


def estimated_on(rows: pd.DataFrame, champion_version: str, day: date, prefix: str = "") -> float | None:
    """The estimate of ``day``'s row (``prefix`` ``"window_"``: of its window) when ``champion_version`` scored it
    (None: no row, another version, or no estimate). Pure."""
    if rows.empty or f"{prefix}estimated_value" not in rows:
        return None
    on_day = rows["date"].astype(str) == day.isoformat()
    found = rows[on_day & (rows["model_version"].astype(str) == champion_version)]
    value = float(found[f"{prefix}estimated_value"].iloc[-1]) if len(found) else float("nan")
    return value if np.isfinite(value) else None


def newest_labeled_days(shares: Mapping[date, float], n: int, min_share: float) -> list[date]:
    """The newest ``n`` days whose label share reaches ``min_share``, oldest first. Pure."""
    return sorted(sorted((d for d, s in shares.items() if s >= min_share), reverse=True)[:n])


def holdout_days(config: Config, day: date) -> list[date]:
    """The promotion holdout: the newest ``promotion.holdout_days`` extracted days up to ``day`` whose labels have
    arrived by the end of ``day`` (``monitoring.min_label_share`` of their rows). None is an error saying so."""
    lake = Lake.from_config(config)
    candidates = sorted(in_horizon(lake.days(Table.FEATURES), day, config.monitoring.label_horizon_days), reverse=True)
    shares: dict[date, float] = {}
    for candidate in candidates:
        keys = lake.read(Table.FEATURES, candidate, [config.dataset.key])[config.dataset.key].astype(str)
        known = (
            read_labels(config, keys, as_of=day) if config.dataset.labels else pd.DataFrame({config.dataset.key: keys})
        )
        shares[candidate] = float(keys.isin(known[config.dataset.key]).mean()) if len(keys) else 0.0
        chosen = newest_labeled_days(shares, config.promotion.holdout_days, config.monitoring.min_label_share)
        if len(chosen) == config.promotion.holdout_days:
            return chosen
    chosen = newest_labeled_days(shares, config.promotion.holdout_days, config.monitoring.min_label_share)
    if not chosen:
        newest = ", ".join(f"{d}: {s:.0%}" for d, s in sorted(shares.items(), reverse=True)[:3]) or "none extracted"
        raise DataError(
            f"no promotion holdout: no extracted day up to {day} has monitoring.min_label_share"
            f" {config.monitoring.min_label_share:.0%} of its labels by {day} (newest days: {newest})"
        )
    return chosen
