"""The promotion verdict: whether a challenger beats the champion on the same holdout, and why (pure).

The challenger is promoted only if its metric beats the champion's by ``promotion.min_improvement`` and a paired
bootstrap confidence interval of the gain lies above zero. A holdout that cannot support the comparison (a metric
undefined on one class, an interval no resample supports) keeps the champion, with the reason in words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.config import Config, PromotionConfig
from pipelines.modeling import paired_bootstrap, resampled_metric, unresamplable
from pipelines.records import defined


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
