"""The promotion verdict: whether a challenger beats the champion on the same holdout, and why (pure).

The challenger is promoted only if its metric beats the champion's by ``promotion.min_improvement`` and a paired
bootstrap confidence interval of the gain lies above zero. A holdout that cannot support the comparison (a metric
undefined on one class, an interval no resample supports) keeps the champion, with the reason in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config, PromotionConfig
from pipelines.modeling import metric_value, paired_bootstrap, resampled_metric, unresamplable
from pipelines.records import defined, jsonable


@dataclass(frozen=True)
class GainInterval:
    """A confidence interval of the challenger's gain, or why the holdout cannot support one (then no bounds)."""

    low: float | None
    high: float | None
    problem: str = ""


def metric_gain(config: Config, challenger: float, champion: float) -> float:
    """Positive when the challenger is better, whichever direction the metric runs."""
    return challenger - champion if config.greater_is_better else champion - challenger


def gain_interval(config: Config, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> GainInterval:
    """Percentile interval of the gain from a paired bootstrap (``scipy.stats.bootstrap``, rows resampled with both
    models' outputs kept together), at ``promotion.confidence`` with ``promotion.bootstrap`` resamples.

    A classification metric is undefined on a resample holding one class. A holdout too small or too unbalanced to
    resample is said so before any resample is drawn (:func:`~pipelines.modeling.unresamplable`); if a resample
    still holds one class, the holdout cannot support an interval either, and the result says so instead of bounds.
    """
    y, champion, challenger = np.asarray(y), np.asarray(champion), np.asarray(challenger)
    problem = unresamplable(config, y)
    if problem:
        return GainInterval(None, None, f"the holdout cannot be resampled: {problem}")
    metric = config.model.metric

    of_challenger, of_champion = resampled_metric(metric, y, challenger), resampled_metric(metric, y, champion)
    low, high, undefined = paired_bootstrap(
        config, lambda counts: metric_gain(config, of_challenger(counts), of_champion(counts)), len(y)
    )
    if undefined:
        return GainInterval(
            None,
            None,
            f"{undefined} of {config.promotion.bootstrap} bootstrap resamples of the {len(y)} holdout rows hold a"
            f" single class, where {config.model.metric} is undefined",
        )
    return GainInterval(defined(low), defined(high))


def promotion_verdict(
    policy: PromotionConfig, same_version: bool, n: int, gain: float | None, interval: GainInterval
) -> tuple[bool, str]:
    """The promotion ladder: the challenger must be new, judged on enough rows where the metric is defined, better
    by the margin, and its gain interval must lie above 0. Returns whether to promote and why (the first rung that
    fails, or all that pass). An undecidable comparison keeps the champion: it is a decision, not an error."""
    if same_version:
        return False, "the challenger already is the champion"
    if n < policy.min_samples:
        return False, f"holdout has {n} rows; promotion.min_samples is {policy.min_samples}"
    if gain is None:
        return False, f"the metric is undefined on the holdout: {interval.problem or 'a model output is not finite'}"
    if gain < policy.min_improvement:
        return False, f"gain {gain:.4f} < min_improvement {policy.min_improvement}"
    if interval.problem or interval.low is None or interval.high is None:
        return False, f"no {policy.confidence:.0%} interval of the gain: {interval.problem or 'not finite'}"
    if not interval.low > 0:
        return (
            False,
            f"{policy.confidence:.0%} interval of the gain [{interval.low:.4f}, {interval.high:.4f}] includes 0",
        )
    return (
        True,
        f"gain {gain:.4f} >= {policy.min_improvement},"
        f" {policy.confidence:.0%} interval [{interval.low:.4f}, {interval.high:.4f}] above 0",
    )


@dataclass(frozen=True)
class SegmentGain:
    """Champion and challenger on one segment value's rows of the holdout: both metrics, the gain and its interval
    (None where undefined or not judged: fewer than ``promotion.min_samples`` rows, said in ``problem``)."""

    segment: str
    value: str
    n: int
    champion_metric: float | None
    challenger_metric: float | None
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON for XCom and the decision record: an undefined number is null (:func:`pipelines.records.jsonable`)."""
        return jsonable(asdict(self))


def segment_gains(
    config: Config, segments: pd.DataFrame, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray
) -> list[SegmentGain]:
    """Per column of ``segments`` (the holdout's ``monitoring.segments`` columns, row for row with ``y`` and the
    outputs) and per value: the paired bootstrap of the gain inside the segment (:func:`gain_interval`), for the
    values with at least ``promotion.min_samples`` rows; smaller ones are listed, not judged."""
    y, champion, challenger = np.asarray(y), np.asarray(champion), np.asarray(challenger)
    gains = []
    for column in segments.columns:
        values = segments[column].astype(object)
        for value in sorted(str(v) for v in values.dropna().unique()):
            mask = (values.astype(str).eq(value) & values.notna()).to_numpy()
            n = int(mask.sum())
            if n < config.promotion.min_samples:
                problem = f"{n} rows < promotion.min_samples {config.promotion.min_samples}: not judged"
                gains.append(SegmentGain(column, value, n, None, None, None, None, None, problem))
                continue
            ys, old, new = y[mask], champion[mask], challenger[mask]
            one_class = config.task == "classification" and len(np.unique(ys)) < 2
            metrics = [None if one_class else defined(metric_value(config.model.metric, ys, o)) for o in (old, new)]
            gain = None if None in metrics else metric_gain(config, metrics[1], metrics[0])
            interval = gain_interval(config, ys, old, new)
            gains.append(SegmentGain(column, value, n, *metrics, gain, interval.low, interval.high, interval.problem))
    return gains


def segment_guard(policy: PromotionConfig, gains: list[SegmentGain]) -> str | None:
    """Why a challenger that wins overall is kept out, or None: the first segment value (of those judged) whose
    gain interval lies wholly below ``-promotion.max_segment_loss``, i.e. worse there by more than the allowed loss
    at ``promotion.confidence``, named with its numbers. Pure."""
    for found in gains:
        if found.ci_high is not None and found.gain is not None and found.ci_high < -policy.max_segment_loss:
            return (
                f"worse on segment {found.segment}={found.value} ({found.n} rows): gain {found.gain:.4f},"
                f" {policy.confidence:.0%} interval [{found.ci_low:.4f}, {found.ci_high:.4f}] below"
                f" -max_segment_loss {policy.max_segment_loss}"
            )
    return None


def guarded_verdict(policy: PromotionConfig, promoted: bool, why: str, gains: list[SegmentGain]) -> tuple[bool, str]:
    """The overall verdict, then the segment guard: a challenger promoted overall is kept out when a segment
    loses (:func:`segment_guard`), and the reason names the segment and keeps the overall reason. Pure."""
    if not promoted:
        return promoted, why
    guard = segment_guard(policy, gains)
    return (False, f"{guard}; overall: {why}") if guard else (promoted, why)
