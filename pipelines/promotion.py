"""Promoting a challenger only if it beats the champion on current data, and rolling back: the registry's actions.

Champion and challenger are scored on the same current holdout (the newest labeled days, which the challenger
never trained on), each with features of its own recorded definitions (:mod:`pipelines.lineage`);
:mod:`pipelines.promotion_rules` gives the verdict. The decision is recorded before anything acts on it
(:mod:`pipelines.promotion_record`), so a retried task finishes the first try's decision rather than taking another.
Promotion moves ``previous_champion`` to the old champion first, then ``champion`` to the challenger: an
alias names one version at a time, so no reader ever sees zero or two champions, and a failure between the two
calls leaves the old champion in place. Every decision and rollback is recorded as tags on the version and as an
MLflow run.

    python -m pipelines.promotion rollback --reason "v7 misbehaves in production"
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines import lineage
from pipelines.config import Config, load_config
from pipelines.errors import DataError, DefinitionMismatch, RegistryError
from pipelines.model_artifacts import load_model
from pipelines.modeling import metric_value, model_input, model_output
from pipelines.performance import holdout_days
from pipelines.promotion_record import Decision, find_decision, mark_applied, record_decision, tag_version
from pipelines.promotion_rules import (
    GainInterval,
    gain_interval,
    guarded_verdict,
    metric_gain,
    promotion_verdict,
    segment_gains,
)
from pipelines.records import defined, jsonable
from pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ModelRef,
    Registry,
    RunKind,
    Tag,
    connect,
    require_alias,
)
from pipelines.training import labeled_window, train_and_register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rollback:
    model_name: str
    from_version: str
    to_version: str
    reason: str
    mlflow_run_id: str

    def as_dict(self) -> dict[str, Any]:
        return jsonable({**asdict(self), "version": self.to_version})  # "version": the one now champion, for UI links

    def __str__(self) -> str:
        return (
            f"rolled back {self.model_name}: champion v{self.from_version} -> v{self.to_version}"
            f" (reason: {self.reason}; MLflow run {self.mlflow_run_id})"
        )


def train_challenger(config: Config, day: date, reason: str, registry: Registry | None = None) -> str:
    """Train on the window that ends before the holdout days (the newest days labeled by ``day``), with the labels
    known by ``day``; register it and give it the ``challenger`` alias."""
    registry = registry or connect(config)
    end = holdout_days(config, day)[0] - timedelta(days=1)
    result = train_and_register(config, end, reason=f"challenger: {reason}", as_of=day, registry=registry)
    registry.set_alias(config.model.name, CHALLENGER, result.version)
    registry.set_model_tag(config.model.name, Tag.LAST_RETRAIN, day.isoformat())
    return result.version


def evaluate_and_promote(
    config: Config,
    day: date,
    challenger_version: str,
    trigger: str,
    run_key: str = "none",
    registry: Registry | None = None,
    hold: bool = False,
) -> Decision:
    """Score champion and challenger on the same newest labeled days (labels arrived by ``day``); promote only on a
    significant margin. Safe to retry: the decision is recorded, keyed by ``run_key`` (the Airflow run id), the day
    and the challenger, before anything acts on it, and a retry returns that record and finishes what it says
    (alias moves and version tags are idempotent) instead of deciding again on a registry it may have changed.
    ``hold`` (``promotion.approval: required``): a promotion is recorded and left for a person to approve
    (:mod:`pipelines.approval`); a challenger kept out is settled at once."""
    registry = registry or connect(config)
    decision = find_decision(registry, config, day, challenger_version, run_key)
    if decision is None:
        decision = record_decision(
            registry, config, judge(config, registry, day, challenger_version, trigger), day, run_key
        )
    else:
        log.warning("v%s was already decided on %s in run %s: a retry", challenger_version, day, decision.mlflow_run_id)
    if hold and decision.promoted:
        registry.set_tags(decision.mlflow_run_id, {Tag.APPROVAL: "pending"})
        log.info("promotion of %s v%s awaits approval (%s)", config.model.name, challenger_version, decision.reason)
        return decision
    apply_decision(registry, config, decision, day)
    log.info(
        "promotion decision for %s v%s: %s (%s)",
        config.model.name,
        decision.challenger_version,
        "PROMOTED" if decision.promoted else "kept champion",
        decision.reason,
    )
    return decision


def judge(config: Config, registry: Registry, day: date, challenger_version: str, trigger: str) -> Decision:
    """The decision, from the registry and the lake as they are (it writes nothing): both models' metric on the
    holdout, the gain's interval and the promotion ladder's verdict."""
    champion = require_alias(registry, config.model.name)
    held_out = holdout_days(config, day)  # the newest days whose labels have arrived by the run's day
    span = (held_out[-1] - held_out[0]).days + 1
    holdout_config = config.model_copy(
        update={"training": config.training.model_copy(update={"window_days": span, "min_rows": 1})}
    )
    holdout, days = labeled_window(holdout_config, held_out[-1], as_of=day)
    y = holdout[config.dataset.target].to_numpy()
    challenger = registry.version(config.model.name, challenger_version).ref
    inputs, unjudged = {}, None
    for ref in (champion, challenger):
        try:
            inputs[ref.version] = _own_input(holdout_config, registry, ref, holdout, held_out[-1], day)
        except DefinitionMismatch as exc:
            unjudged = unjudged or str(exc)
    outputs = {
        ref.version: model_output(
            load_model(ref, config.tracking_uri, "cpu", config.scoring.torch_batch_rows),
            inputs[ref.version],
            config.task,
        )
        for ref in (champion, challenger)
        if ref.version in inputs
    }
    champion_metric, challenger_metric = (
        _holdout_metric(config, y, outputs[ref.version]) if ref.version in outputs else None
        for ref in (champion, challenger)
    )
    promotion = config.promotion
    segments = config.monitoring.segments
    if unjudged:  # kept out: a comparison on features one model never learned would decide nothing
        interval, gain, gains = GainInterval(None, None, unjudged), None, []
        promoted, why = (
            False,
            f"not judged on the models' own features: {unjudged};"
            " move the champion alias by hand if the challenger is wanted",
        )
    else:
        interval = gain_interval(config, y, outputs[champion.version], outputs[challenger.version])
        gain = (
            metric_gain(config, challenger_metric, champion_metric)
            if champion_metric is not None and challenger_metric is not None
            else None
        )
        promoted, why = promotion_verdict(promotion, challenger.version == champion.version, len(y), gain, interval)
        gains = (
            segment_gains(config, holdout[segments], y, outputs[champion.version], outputs[challenger.version])
            if segments
            else []
        )
        promoted, why = guarded_verdict(promotion, promoted, why, gains)
    return Decision(
        model_name=config.model.name,
        promoted=promoted,
        reason=why,
        challenger_version=challenger.version,
        champion_version=champion.version,
        champion_after=challenger.version if promoted else champion.version,
        metric=config.model.metric,
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
        segments=[g.as_dict() for g in gains],
    )


def _own_input(
    holdout_config: Config, registry: Registry, ref: ModelRef, holdout: pd.DataFrame, end_day: date, day: date
) -> pd.DataFrame:
    """The holdout rows as ``ref`` learned to see them: the config's features if its recorded definitions are the
    config's (or it records none: trained before lineage, judged as always), else the same rows (by key, in the
    holdout's order) with features computed by its own definitions, the way training computes a stale day again
    (:func:`~pipelines.training.labeled_window`). :class:`DefinitionMismatch` where its definitions cannot be
    rebuilt (no lineage record, a history table no longer declared): it cannot be judged on its own features."""
    recorded = registry.version(ref.name, ref.version).tags.get(Tag.FEATURE_DEFINITIONS)
    if recorded is None or recorded == lineage.definitions_hash(holdout_config):
        return model_input(holdout, holdout_config)
    what = f"{ref.name} v{ref.version}"
    try:
        record = registry.record(ref.run_id, lineage.RECORD_ARTIFACT) if ref.run_id else None
    except FileNotFoundError:
        record = None
    if record is None:
        raise DefinitionMismatch(f"{what} records feature definitions {recorded} but no {lineage.RECORD_ARTIFACT}")
    own = lineage.config_with_definitions(holdout_config, record, what)
    log.warning("%s was trained with other feature definitions (%s): judged on features of its own", what, recorded)
    frame, _ = labeled_window(own, end_day, as_of=day)
    key = holdout_config.dataset.key
    missing = set(holdout[key]) - set(frame[key])
    if missing:
        raise DataError(f"{what}: {len(missing)} holdout rows (keys) have no features by its own definitions")
    return model_input(frame.set_index(key).loc[holdout[key]].reset_index(), own)


def _holdout_metric(config: Config, y: np.ndarray, output: np.ndarray) -> float | None:
    """The metric on the holdout, or None where it is undefined (one class only, a non-finite output)."""
    if config.task == "classification" and len(np.unique(y)) < 2:
        return None
    if not np.isfinite(output).all():
        return None
    return defined(metric_value(config.model.metric, y, output))


def apply_decision(registry: Registry, config: Config, decision: Decision, day: date) -> None:
    """Make the registry say what the recorded decision says; each step checks first, so a retry repeats none."""
    name = config.model.name
    if decision.promoted:
        current = registry.alias(name, CHAMPION)
        if current is None or current.version != decision.challenger_version:
            promote(registry, name, decision.champion_version, decision.challenger_version)
    settle_challenger(registry, name, decision.challenger_version, challenger_holds=not decision.promoted)
    tag_version(registry, config, decision, day)
    mark_applied(registry, decision)


def settle_challenger(registry: Registry, name: str, version: str, challenger_holds: bool) -> None:
    """The rule for ``challenger`` after a decision: it names the last evaluated challenger that was kept out, and
    no version once that challenger is promoted (it is the champion then), so it never names a stale version."""
    champion = registry.alias(name, CHAMPION)
    if challenger_holds and (champion is None or champion.version != version):
        registry.set_alias(name, CHALLENGER, version)
    elif registry.alias(name, CHALLENGER) is not None:
        registry.delete_alias(name, CHALLENGER)


def promote(registry: Registry, name: str, old: str, new: str) -> None:
    """``previous_champion`` <- old, then ``champion`` <- new; a failure leaves exactly one champion and says which."""
    registry.set_alias(name, PREVIOUS, old)
    try:
        registry.set_alias(name, CHAMPION, new)
    except Exception as exc:
        current = registry.alias(name, CHAMPION)
        raise RegistryError(
            f"promoting {name} v{new} failed after previous_champion was set to v{old}; "
            f"champion is still v{current.version if current else '?'}: {exc}"
        ) from exc


def rollback(config: Config, reason: str, registry: Registry | None = None) -> Rollback:
    """``champion`` <- ``previous_champion`` (and the two swap), recorded as tags on both versions and a run."""
    registry = registry or connect(config)
    name = config.model.name
    current = require_alias(registry, name)
    previous = registry.alias(name, PREVIOUS)
    if previous is None:
        raise RegistryError(f"model {name!r} has no {PREVIOUS!r} alias: nothing to roll back to")
    promote(registry, name, current.version, previous.version)
    tags = {
        Tag.MODEL_NAME: name,
        Tag.FROM_VERSION: current.version,
        Tag.TO_VERSION: previous.version,
        Tag.REASON: reason,
    }
    run_id = registry.start_run(RunKind.ROLLBACK, f"rollback-v{current.version}-to-v{previous.version}", tags)
    registry.end_run(run_id)  # a record of tags only: complete once created
    registry.set_version_tag(name, current.version, Tag.ROLLED_BACK, f"replaced by v{previous.version}: {reason}")
    registry.set_version_tag(name, previous.version, Tag.RESTORED, f"rollback from v{current.version}: {reason}")
    log.warning("rolled back %s: champion v%s -> v%s (%s)", name, current.version, previous.version, reason)
    return Rollback(name, current.version, previous.version, reason, run_id)


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
