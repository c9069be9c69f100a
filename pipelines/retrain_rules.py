"""The retraining gate's rules: which monitored signals call for retraining, and whether to retrain now (pure).

Each signal is a configurable trigger with a line saying why it fired or not; the gate weighs them, then the
cooldown and the count of new labels, asked only when their rung is reached. Every line weighed is kept for the
record, so "why did we (not) retrain on day D" has an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from pipelines.config import Config
from pipelines.monitoring import DriftResult
from pipelines.promotion_rules import metric_gain
from pipelines.records import jsonable


@dataclass(frozen=True)
class Signal:
    """One monitored signal of a checked day: whether it calls for retraining, and a line saying why (or why not)."""

    fired: bool
    line: str


def retrain_signals(config: Config, drift: DriftResult) -> list[Signal]:
    """Every signal the retraining gate weighs, each a configurable trigger with its own line: the drift share, the
    model output's drift, a rise of missing values (a feature entirely missing counts: no drift test can see it), a
    change in how the features move together (multivariate) and the realized metric's drop below training."""
    monitoring = config.monitoring
    signals = [
        _share_signal(drift, monitoring.drift_share_threshold),
        _output_signal(drift, monitoring.output_drift_trigger),
        _missing_signal(drift, monitoring.missing_share_threshold, monitoring.missing_trigger),
        _multivariate_signal(drift, monitoring.multivariate_trigger),
        _metric_signal(config, drift),
    ]
    if monitoring.estimated_drop_threshold is not None:
        signals.append(_estimated_signal(config, drift, monitoring.estimated_drop_threshold))
    return [*signals, _segment_signal(config, drift)] if monitoring.segments else signals


def _estimated_signal(config: Config, drift: DriftResult, threshold: float) -> Signal:
    """The checked day's estimated metric (no labels needed: CBPE, or DLE for regression) against training: the early
    warning of a covariate shift that moves rows to where the model is unsure or errs more; blind to concept drift,
    which the realized metric catches."""
    metric = config.model.metric
    if drift.estimated_metric is None or drift.champion_metric is None:
        return Signal(False, f"estimated {metric} not known (nothing stored to estimate it with, or not estimated)")
    drop = -metric_gain(config, drift.estimated_metric, drift.champion_metric)
    if drop >= threshold:
        return Signal(True, f"estimated {metric} {drift.estimated_metric:.4f} is {drop:.4f} below training")
    return Signal(False, f"estimated {metric} {drift.estimated_metric:.4f}: drop {drop:.4f} < {threshold}")


def _share_signal(drift: DriftResult, threshold: float) -> Signal:
    share = drift.drift_share if drift.drift_share is not None else float("nan")
    if share >= threshold:
        columns = f" ({', '.join(drift.drifted_columns)})" if drift.drifted_columns else ""
        return Signal(True, f"drift share {share:.2f} >= {threshold}{columns}")
    return Signal(False, f"drift share {share:.2f} < {threshold}")


def _output_signal(drift: DriftResult, enabled: bool) -> Signal:
    verdict, column = drift.output_drift, drift.output_column or "output"
    if verdict is None:
        return Signal(False, "model output: not tested")
    numbers = f"{verdict['method']} {verdict['score']:.4f}, threshold {verdict['threshold']}"
    if not verdict["drifted"]:
        return Signal(False, f"model output {column} stable ({numbers})")
    if not enabled:
        return Signal(False, f"model output {column} drifted ({numbers}); monitoring.output_drift_trigger is off")
    return Signal(True, f"model output {column} drifted ({numbers})")


def _missing_signal(drift: DriftResult, threshold: float, enabled: bool) -> Signal:
    rises = {c: r for c, r in drift.missing_share_rise.items() if c in drift.all_missing or r > threshold}
    if not rises:
        return Signal(False, f"no feature's missing share rose by more than {threshold}")
    parts = ", ".join(
        f"{c} entirely missing" if c in drift.all_missing else f"{c} +{r:.2f}" for c, r in sorted(rises.items())
    )
    line = f"missing values rose by more than {threshold}: {parts}"
    if not enabled:
        return Signal(False, f"{line}; monitoring.missing_trigger is off")
    return Signal(True, line)


def _multivariate_signal(drift: DriftResult, enabled: bool) -> Signal:
    found = drift.multivariate
    if found is None:
        return Signal(False, "multivariate drift: not computed")
    numbers = f"{found['method']} {found['error']:.4f}, threshold {found['threshold']:.4f} from reference chunks"
    if not found["drifted"]:
        return Signal(False, f"multivariate drift: none ({numbers})")
    if not enabled:
        return Signal(False, f"multivariate drift ({numbers}); monitoring.multivariate_trigger is off")
    return Signal(True, f"multivariate drift: the features' joint structure changed ({numbers})")


def _segment_signal(config: Config, drift: DriftResult) -> Signal:
    """Fires for each segment value whose realized metric on the newest labeled day is at least
    ``monitoring.segment_metric_drop_threshold`` below the champion's training metric; every value is named."""
    metric, threshold = config.model.metric, config.monitoring.segment_metric_drop_threshold
    labeled = drift.labeled_segments
    if not labeled or drift.champion_metric is None:
        return Signal(False, f"segments: realized {metric} per segment not known (no labeled day)")
    fallen, judged = [], 0
    for column, values in sorted(labeled["segments"].items()):
        for value, entry in sorted(values.items()):
            if entry["value"] is None:
                continue
            judged += 1
            drop = -metric_gain(config, entry["value"], drift.champion_metric)
            if drop >= threshold:
                fallen.append(f"{column}={value} {entry['value']:.4f} ({drop:.4f} below, {entry['rows']} rows)")
    day = labeled["day"]
    if fallen:
        return Signal(True, f"segment realized {metric} of {day} fell by >= {threshold}: {', '.join(fallen)}")
    return Signal(False, f"segments: no realized {metric} of {day} fell by {threshold} ({judged} values judged)")


def _metric_signal(config: Config, drift: DriftResult) -> Signal:
    metric, threshold = config.model.metric, config.monitoring.metric_drop_threshold
    window = config.monitoring.metric_window_days
    if window > 1:  # a low-volume model's metric: over the trailing window ending on the labeled day
        metric = f"{metric} over the {window} days to {drift.realized_day}" if drift.realized_day else metric
    if drift.realized_metric is None or drift.champion_metric is None:
        return Signal(False, f"realized {metric} not known ({drift.realized_rows} labeled rows)")
    drop = -metric_gain(config, drift.realized_metric, drift.champion_metric)
    if drop >= threshold:
        return Signal(True, f"realized {metric} {drift.realized_metric:.4f} is {drop:.4f} below training")
    return Signal(
        False,
        f"realized {metric} {drift.realized_metric:.4f} vs {drift.champion_metric:.4f} at training:"
        f" drop {drop:.4f} < {threshold}",
    )


@dataclass(frozen=True)
class RetrainDecision:
    """Retrain now or not, in one line of reason, with the line of every signal weighed (fired or not)."""

    retrain: bool
    reason: str
    triggers: list[str] = field(default_factory=list)  # the signals that called for retraining
    signals: list[str] = field(default_factory=list)  # every signal's line, for the record
    labeled_segments: dict[str, Any] | None = None  # the per-segment metrics weighed (monitoring.segments)

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def retrain_decision(
    config: Config,
    drift: DriftResult,
    day: date,
    last_retrain: Callable[[], date | None],
    new_labels: Callable[[], int],
    force: bool = False,
) -> RetrainDecision:
    """The retraining ladder: forced; else a checked day must fire a trigger (see ``retrain_signals``), no retraining
    within ``cooldown_days`` and at least ``min_new_labels`` new labels. A refusal names the triggers it holds back.
    ``last_retrain`` and ``new_labels`` are asked only when their rung is reached (counting labels reads the lake)."""
    if drift.status != "checked" or drift.drift_share is None:
        return RetrainDecision(True, "forced") if force else RetrainDecision(False, f"no drift check: {drift.reason}")
    signals = retrain_signals(config, drift)
    lines, triggers = [s.line for s in signals], [s.line for s in signals if s.fired]
    if force:
        return RetrainDecision(True, "forced", triggers, lines)
    if not triggers:
        return RetrainDecision(False, "no trigger: " + "; ".join(lines), triggers, lines)
    monitoring = config.monitoring
    held = f" (held back: {'; '.join(triggers)})"
    last = last_retrain()
    if last is not None and (day - last).days < monitoring.cooldown_days:
        refusal = f"cooldown: last retraining {last}, monitoring.cooldown_days={monitoring.cooldown_days}"
        return RetrainDecision(False, refusal + held, triggers, lines)
    new = new_labels()
    if new < monitoring.min_new_labels:
        refusal = (
            f"only {new} labeled rows since the champion's window;"
            f" monitoring.min_new_labels={monitoring.min_new_labels}"
        )
        return RetrainDecision(False, refusal + held, triggers, lines)
    return RetrainDecision(True, "; ".join(triggers), triggers, lines)


def nothing_new(newest_labeled: date, seen: list[date]) -> str | None:
    """Why a scheduled retraining has nothing to learn from, or None: the newest labeled day is no newer than every
    day already used, the champion's training window or a holdout a challenger was judged on (pure)."""
    if seen and newest_labeled <= max(seen):
        return (
            f"no day labeled since {max(seen)} (the newest labeled day is {newest_labeled}): a challenger would be "
            "trained and judged on data already used"
        )
    return None
