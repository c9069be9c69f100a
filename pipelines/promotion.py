"""Continuous training: when to retrain, and promoting a challenger only if it beats the champion on current data.

Champion and challenger are scored on the same current holdout (the newest labeled days, which the challenger
never trained on). The challenger is promoted only if its metric beats the champion's by ``min_improvement`` and
a paired bootstrap confidence interval of the difference lies above zero. Promotion moves ``previous_champion``
to the old champion first, then ``champion`` to the challenger: an alias names one version at a time, so no reader
ever sees zero or two champions, and a failure between the two calls leaves the old champion in place.
Every decision and rollback is recorded as tags on the version and as an MLflow run.

    python -m pipelines.promotion rollback --reason "v7 misbehaves in production"
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from scipy import stats

from pipelines import registry
from pipelines.config import Config, PromotionConfig, load_config
from pipelines.modeling import metric_value, model_input, model_output
from pipelines.monitoring import DriftResult
from pipelines.performance import holdout_days
from pipelines.storage import Lake, Table
from pipelines.training import labeled_window, read_labels, train_and_register

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
PREVIOUS = "previous_champion"
LAST_RETRAIN_TAG = "last_retrain_day"


@dataclass(frozen=True)
class Decision:
    model_name: str
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str
    champion_after: str
    metric: str
    champion_metric: float
    challenger_metric: float
    difference: float
    ci_low: float
    ci_high: float
    n: int
    min_improvement: float
    confidence: float
    holdout: str
    trigger: str
    mlflow_run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GainInterval:
    """A confidence interval of the challenger's gain, or why the holdout cannot support one (then NaN bounds)."""

    low: float
    high: float
    problem: str = ""


@dataclass(frozen=True)
class Rollback:
    model_name: str
    from_version: str
    to_version: str
    reason: str
    mlflow_run_id: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version": self.to_version}  # "version": the one now champion, for UI links

    def __str__(self) -> str:
        return (
            f"rolled back {self.model_name}: champion v{self.from_version} -> v{self.to_version}"
            f" (reason: {self.reason}; MLflow run {self.mlflow_run_id})"
        )


def _gain(config: Config, challenger: float, champion: float) -> float:
    """Positive when the challenger is better, whichever direction the metric runs."""
    return challenger - champion if config.greater_is_better else champion - challenger


def gain_interval(config: Config, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> GainInterval:
    """Percentile interval of the gain from a paired bootstrap (``scipy.stats.bootstrap``, rows resampled with both
    models' outputs kept together), at ``promotion.confidence`` with ``promotion.bootstrap`` resamples.

    A classification metric is undefined on a resample holding one class; if any resample does, the holdout is
    too unbalanced (or too small) to support an interval, and the result says so instead of bounds.
    """
    y, champion, challenger = np.asarray(y), np.asarray(champion), np.asarray(challenger)
    nan = float("nan")
    if len(y) < 2:
        return GainInterval(nan, nan, f"the holdout has {len(y)} rows, too few to resample")
    one_class_undefined = config.task == "classification"

    def gain(y_: np.ndarray, champion_: np.ndarray, challenger_: np.ndarray) -> float:
        if one_class_undefined and len(np.unique(y_)) < 2:
            return nan
        metric = config.model.metric
        return _gain(config, metric_value(metric, y_, challenger_), metric_value(metric, y_, champion_))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # the NaN case is reported below, in words
        result = stats.bootstrap(
            (y, champion, challenger),
            gain,
            paired=True,
            vectorized=False,
            n_resamples=config.promotion.bootstrap,
            confidence_level=config.promotion.confidence,
            method="percentile",
            rng=np.random.default_rng(config.training.seed),
        )
    undefined = int(np.isnan(result.bootstrap_distribution).sum())
    if undefined:
        return GainInterval(
            nan,
            nan,
            f"{undefined} of {config.promotion.bootstrap} bootstrap resamples of the {len(y)} holdout rows hold a"
            f" single class, where {config.model.metric} is undefined",
        )
    return GainInterval(float(result.confidence_interval.low), float(result.confidence_interval.high))


def promotion_verdict(
    policy: PromotionConfig, same_version: bool, n: int, gain: float, interval: GainInterval
) -> tuple[bool, str]:
    """The promotion ladder: the challenger must be new, judged on enough rows, better by the margin, and its gain
    interval must lie above 0. Returns whether to promote and why (the first rung that fails, or all that pass)."""
    if same_version:
        return False, "the challenger already is the champion"
    if n < policy.min_samples:
        return False, f"holdout has {n} rows; promotion.min_samples is {policy.min_samples}"
    if gain < policy.min_improvement:
        return False, f"gain {gain:.4f} < min_improvement {policy.min_improvement}"
    if interval.problem:
        return False, f"no {policy.confidence:.0%} interval of the gain: {interval.problem}"
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


def retrain_decision(
    config: Config,
    drift: DriftResult,
    day: date,
    last_retrain: Callable[[], date | None],
    new_labels: Callable[[], int],
    force: bool = False,
) -> tuple[bool, str]:
    """The retraining ladder: forced; else a checked day must show a trigger (drift share or metric drop), no
    retraining within ``cooldown_days`` and at least ``min_new_labels`` new labels. ``last_retrain`` and
    ``new_labels`` are asked only when their rung is reached (counting labels reads the lake)."""
    if force:
        return True, "forced"
    if drift.status != "checked" or drift.drift_share is None:
        return False, f"no drift check: {drift.reason}"
    monitoring = config.monitoring
    reasons = []
    if drift.drift_share >= monitoring.drift_share_threshold:
        reasons.append(f"drift share {drift.drift_share:.2f} >= {monitoring.drift_share_threshold}")
    if drift.realized_metric is not None and drift.champion_metric is not None:
        drop = -_gain(config, drift.realized_metric, drift.champion_metric)
        if drop >= monitoring.metric_drop_threshold:
            reasons.append(f"realized {config.model.metric} {drift.realized_metric:.4f} is {drop:.4f} below training")
    if not reasons:
        return False, "no trigger: drift and realized metric within thresholds"
    last = last_retrain()
    if last is not None and (day - last).days < monitoring.cooldown_days:
        return False, f"cooldown: last retraining {last}, monitoring.cooldown_days={monitoring.cooldown_days}"
    new = new_labels()
    if new < monitoring.min_new_labels:
        return (
            False,
            f"only {new} labeled rows since the champion's window;"
            f" monitoring.min_new_labels={monitoring.min_new_labels}",
        )
    return True, "; ".join(reasons)


def with_labeled_realized(config: Config, drift: DriftResult, champion_version: str | None) -> DriftResult:
    """The drift result with the realized metric of the newest *labeled* day the champion scored (from the
    performance table), in place of the just-checked day's, whose labels have mostly not arrived yet; none such
    day: no realized metric, so the metric-drop trigger stays silent rather than judging on a few early labels."""
    from pipelines.performance import read_performance, trigger_day

    row = (
        trigger_day(
            read_performance(config),
            champion_version,
            config.monitoring.min_label_share,
            date.fromisoformat(drift.day),
        )
        if champion_version is not None and config.dataset.labels
        else None
    )
    if row is None:
        return replace(drift, realized_metric=None, realized_rows=0, realized_day=None)
    return replace(
        drift, realized_metric=float(row["value"]), realized_rows=int(row["labeled_rows"]), realized_day=row["date"]
    )


def retrain_reason(config: Config, drift: DriftResult, day: date, force: bool = False) -> tuple[bool, str]:
    """Whether a drift result warrants retraining now, and why (or why not), with the registry and lake asked."""
    if drift.status == "checked":  # the metric-drop signal: only days whose labels have arrived
        drift = with_labeled_realized(config, drift, drift.model_version)

    def last_retrain() -> date | None:
        tag = registry.connect(config).get_registered_model(config.model.name).tags.get(LAST_RETRAIN_TAG)
        return date.fromisoformat(tag) if tag else None

    return retrain_decision(
        config,
        drift,
        day,
        last_retrain,
        lambda: _labels_since_champion(config, registry.connect(config), day),
        force=force,
    )


def _labels_since_champion(config: Config, client: MlflowClient, day: date) -> int:
    champion = registry.require_alias(client, config.model.name)
    end = date.fromisoformat(
        client.get_model_version(champion.name, champion.version).tags.get("window_end", "1970-01-01")
    )
    lake = Lake.from_config(config)
    days = [d for d in lake.days(Table.FEATURES) if end < d <= day]
    if not days:
        return 0
    keys = lake.read_days(Table.FEATURES, days, [config.dataset.key])
    if not config.dataset.labels:
        return len(keys)
    wanted = keys[config.dataset.key].astype(str)
    return int(wanted.isin(read_labels(config, wanted, as_of=day)[config.dataset.key]).sum())


def train_challenger(config: Config, day: date, reason: str) -> str:
    """Train on the window that ends before the holdout days (the newest days labeled by ``day``), with the labels
    known by ``day``; register it and give it the ``challenger`` alias."""
    end = holdout_days(config, day)[0] - timedelta(days=1)
    result = train_and_register(config, end, reason=f"challenger: {reason}", as_of=day)
    client = registry.connect(config)
    client.set_registered_model_alias(config.model.name, CHALLENGER, result.version)
    client.set_registered_model_tag(config.model.name, LAST_RETRAIN_TAG, day.isoformat())
    return result.version


def evaluate_and_promote(config: Config, day: date, challenger_version: str, trigger: str) -> Decision:
    """Score champion and challenger on the same newest labeled days (labels arrived by ``day``); promote only on a
    significant margin."""
    client = registry.connect(config)
    champion = registry.require_alias(client, config.model.name)
    held_out = holdout_days(config, day)  # the newest days whose labels have arrived by the run's day
    span = (held_out[-1] - held_out[0]).days + 1
    holdout_config = config.model_copy(
        update={"training": config.training.model_copy(update={"window_days": span, "min_rows": 1})}
    )
    holdout, days = labeled_window(holdout_config, held_out[-1], as_of=day)
    x, y = model_input(holdout, config), holdout[config.dataset.target].to_numpy()
    challenger = registry.version_ref(client, config.model.name, challenger_version)
    outputs = {
        ref.version: model_output(
            registry.load_model(ref, config.tracking_uri, "cpu", config.scoring.torch_batch_rows), x, config.task
        )
        for ref in (champion, challenger)
    }
    metric = config.model.metric
    champion_metric = metric_value(metric, y, outputs[champion.version])
    challenger_metric = metric_value(metric, y, outputs[challenger.version])
    gain = _gain(config, challenger_metric, champion_metric)
    interval = gain_interval(config, y, outputs[champion.version], outputs[challenger.version])
    promotion = config.promotion
    promoted, why = promotion_verdict(promotion, challenger.version == champion.version, len(y), gain, interval)
    if promoted:
        promote(client, config.model.name, champion.version, challenger.version)
    decision = Decision(
        model_name=config.model.name,
        promoted=promoted,
        reason=why,
        challenger_version=challenger.version,
        champion_version=champion.version,
        champion_after=challenger.version if promoted else champion.version,
        metric=metric,
        champion_metric=champion_metric,
        challenger_metric=challenger_metric,
        difference=gain,
        ci_low=interval.low,
        ci_high=interval.high,
        n=len(y),
        min_improvement=promotion.min_improvement,
        confidence=promotion.confidence,
        holdout=f"{days[0]}..{days[-1]}",
        trigger=trigger,
    )
    decision = _record(client, config, decision, kind="promotion", day=day)
    log.info(
        "promotion decision for %s v%s: %s (%s)",
        config.model.name,
        challenger.version,
        "PROMOTED" if promoted else "kept champion",
        why,
    )
    return decision


def promote(client: MlflowClient, name: str, old: str, new: str) -> None:
    """``previous_champion`` <- old, then ``champion`` <- new; a failure leaves exactly one champion and says which."""
    client.set_registered_model_alias(name, PREVIOUS, old)
    try:
        client.set_registered_model_alias(name, registry.CHAMPION, new)
    except Exception as exc:
        current = registry.alias_version(client, name, registry.CHAMPION)
        raise registry.RegistryError(
            f"promoting {name} v{new} failed after previous_champion was set to v{old}; "
            f"champion is still v{current.version if current else '?'}: {exc}"
        ) from exc


def rollback(config: Config, reason: str) -> Rollback:
    """``champion`` <- ``previous_champion`` (and the two swap), recorded as tags on both versions and an MLflow run."""
    client = registry.connect(config)
    name = config.model.name
    current = registry.require_alias(client, name)
    previous = registry.alias_version(client, name, PREVIOUS)
    if previous is None:
        raise registry.RegistryError(f"model {name!r} has no {PREVIOUS!r} alias: nothing to roll back to")
    promote(client, name, current.version, previous.version)
    with mlflow.start_run(run_name=f"rollback-v{current.version}-to-v{previous.version}") as run:
        mlflow.set_tags(
            {
                "kind": "rollback",
                "model_name": name,
                "from_version": current.version,
                "to_version": previous.version,
                "reason": reason,
            }
        )
    client.set_model_version_tag(name, current.version, "rolled_back", f"replaced by v{previous.version}: {reason}")
    client.set_model_version_tag(name, previous.version, "restored", f"rollback from v{current.version}: {reason}")
    log.warning("rolled back %s: champion v%s -> v%s (%s)", name, current.version, previous.version, reason)
    return Rollback(name, current.version, previous.version, reason, run.info.run_id)


def _record(client: MlflowClient, config: Config, decision: Decision, kind: str, day: date) -> Decision:
    """The decision as tags on the challenger version and as an MLflow run (metrics + params), for the UI."""
    fields = decision.as_dict()
    with mlflow.start_run(run_name=f"{kind}-{day.isoformat()}-v{decision.challenger_version}") as run:
        mlflow.set_tags(
            {
                "kind": kind,
                "day": day.isoformat(),
                "model_name": config.model.name,
                "promoted": str(decision.promoted),
                "reason": decision.reason,
                "trigger": decision.trigger,
            }
        )
        mlflow.log_params(
            {k: v for k, v in fields.items() if isinstance(v, str | int) and k not in ("reason", "trigger", "promoted")}
        )
        mlflow.log_metrics({k: float(v) for k, v in fields.items() if isinstance(v, float) and np.isfinite(v)})
    for key in (
        "promoted",
        "reason",
        "champion_version",
        "champion_metric",
        "challenger_metric",
        "difference",
        "ci_low",
        "ci_high",
        "n",
        "holdout",
        "trigger",
    ):
        client.set_model_version_tag(
            config.model.name, decision.challenger_version, f"decision.{key}", str(fields[key])
        )
    client.set_model_version_tag(config.model.name, decision.challenger_version, "decision.run_id", run.info.run_id)
    return Decision(**{**fields, "mlflow_run_id": run.info.run_id})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Model registry operations")
    sub = parser.add_subparsers(dest="command", required=True)
    back = sub.add_parser("rollback", help="set champion back to previous_champion")
    back.add_argument("--reason", required=True)
    back.add_argument("--config", default=None, help="YAML config (default: MLOPS_CONFIG or the demo config)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(rollback(load_config(args.config), args.reason))


if __name__ == "__main__":
    main()
