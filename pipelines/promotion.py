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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from pipelines import registry
from pipelines.config import Config, PromotionConfig, load_config
from pipelines.modeling import metric_value, model_input, model_output, paired_bootstrap, unresamplable
from pipelines.monitoring import DriftResult, annotate_report, decision_banner
from pipelines.performance import holdout_days
from pipelines.promotion_record import Decision, find_decision, mark_applied, record_decision, tag_version
from pipelines.records import defined, jsonable
from pipelines.storage import Lake, Table
from pipelines.training import labeled_window, read_labels, train_and_register

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
PREVIOUS = "previous_champion"
LAST_RETRAIN_TAG = "last_retrain_day"
DECISION_KIND = "retrain_decision"  # the `kind` of the run recording a decision on a day whose check was skipped
NOTE_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's description


@dataclass(frozen=True)
class GainInterval:
    """A confidence interval of the challenger's gain, or why the holdout cannot support one (then no bounds)."""

    low: float | None
    high: float | None
    problem: str = ""


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


def _gain(config: Config, challenger: float, champion: float) -> float:
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

    def gain(y_: np.ndarray, champion_: np.ndarray, challenger_: np.ndarray) -> float:
        return _gain(config, metric_value(metric, y_, challenger_), metric_value(metric, y_, champion_))

    low, high, undefined = paired_bootstrap(config, gain, y, champion, challenger)
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
class Signal:
    """One monitored signal of a checked day: whether it calls for retraining, and a line saying why (or why not)."""

    fired: bool
    line: str


def retrain_signals(config: Config, drift: DriftResult) -> list[Signal]:
    """Every signal the retraining gate weighs, each a configurable trigger with its own line: the drift share, the
    model output's drift, a rise of missing values (a feature entirely missing counts: no drift test can see it) and
    the realized metric's drop below training."""
    monitoring = config.monitoring
    return [
        _share_signal(drift, monitoring.drift_share_threshold),
        _output_signal(drift, monitoring.output_drift_trigger),
        _missing_signal(drift, monitoring.missing_share_threshold, monitoring.missing_trigger),
        _metric_signal(config, drift),
    ]


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


def _metric_signal(config: Config, drift: DriftResult) -> Signal:
    metric, threshold = config.model.metric, config.monitoring.metric_drop_threshold
    if drift.realized_metric is None or drift.champion_metric is None:
        return Signal(False, f"realized {metric} not known ({drift.realized_rows} labeled rows)")
    drop = -_gain(config, drift.realized_metric, drift.champion_metric)
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


def retrain_reason(config: Config, drift: DriftResult, day: date, force: bool = False) -> RetrainDecision:
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


def decide_retraining(config: Config, results: list[DriftResult], force: bool = False) -> dict[str, Any]:
    """Retrain or not, from the newest day actually checked among a run's checks (a skipped newest day of a backlog,
    e.g. an empty one, does not hide the drift of the days before it), and record it either way: the decided day
    carries the decision, every other day of the run says which day decided. Returns the decision for the DAG
    (``retrain``, ``reason``, ``date``, and the MLflow run and report it is recorded on)."""
    latest = max(results, key=lambda r: (r.status == "checked", r.day))
    decision = retrain_reason(config, latest, date.fromisoformat(latest.day), force=force)
    verdict = _verdict(decision.retrain)
    for other in results:
        if other is latest:
            continue
        if other.status == "checked":
            record_retrain_decision(
                config, other, None, f"decided on {latest.day}, the newest day checked in the same run: {verdict}"
            )
        else:
            record_retrain_decision(config, other, False, f"no drift check: {other.reason}")
    run_id, experiment_id = record_retrain_decision(config, latest, decision.retrain, decision.reason, decision)
    log.info("retrain=%s on %s: %s", decision.retrain, latest.day, decision.reason)
    return jsonable(
        {
            "date": latest.day,
            **decision.as_dict(),
            "model_version": latest.model_version,
            "mlflow_run_id": run_id,
            "experiment_id": experiment_id,
            "report_url": latest.report_url,
        }
    )


def _verdict(retrain: bool | None) -> str:
    return "retrain" if retrain else "no retrain" if retrain is False else "none"


def record_retrain_decision(
    config: Config, drift: DriftResult, retrain: bool | None, reason: str, decision: RetrainDecision | None = None
) -> tuple[str, str]:
    """A day's decision (``retrain``, ``no retrain``, or ``none`` when another day of the run decided) as tags and
    a readable description on the day's drift run, or on a run of its own when the check was skipped, and on top
    of the day's HTML report: "why did we (not) retrain on day D" is answered in the MLflow UI and in the report.
    Returns the MLflow run and experiment ids."""
    client = registry.connect(config)
    experiment_id = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    verdict, lines = _verdict(retrain), decision.signals if decision else []
    triggers = "; ".join(decision.triggers) if decision and decision.triggers else "none"
    title = f"Retraining decision for {drift.day}: {verdict}"
    note = "\n".join(
        [f"**{title}** ({config.model.name} v{drift.model_version})", "", reason, "", *(f"- {x}" for x in lines)]
    )
    run_id = drift.mlflow_run_id or _decision_run(client, config, experiment_id, drift.day)
    tags = {"decision": verdict, "decision.reason": reason, "decision.triggers": triggers, NOTE_TAG: note}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if drift.status == "checked" and drift.report_url:
        sample = (
            f"verdicts on all {drift.rows_current} logged rows of the window; the charts below are drawn from a sample"
            f" of at most {config.monitoring.report_rows} rows of it and of the reference"
        )
        annotate_report(config, drift, decision_banner(title, retrain, reason, [*lines, sample]))
    return run_id, experiment_id


def _decision_run(client: MlflowClient, config: Config, experiment_id: str, day: str) -> str:
    """The run recording the decision of a day whose check was skipped: the one a retry or rerun already made, so
    the day keeps one such run, or a new one."""
    tags = {"kind": DECISION_KIND, "day": day, "model_name": config.model.name}
    found = client.search_runs(
        [experiment_id], " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items()), max_results=1
    )
    if found:
        return found[0].info.run_id
    with mlflow.start_run(run_name=f"retrain-decision-{day}") as run:
        mlflow.set_tags(tags)
    return run.info.run_id


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


def nothing_new(newest_labeled: date, seen: list[date]) -> str | None:
    """Why a scheduled retraining has nothing to learn from, or None: the newest labeled day is no newer than every
    day already used, the champion's training window or a holdout a challenger was judged on (pure)."""
    if seen and newest_labeled <= max(seen):
        return (
            f"no day labeled since {max(seen)} (the newest labeled day is {newest_labeled}): a challenger would be "
            "trained and judged on data already used"
        )
    return None


def scheduled_retraining_skip(config: Config, day: date) -> str | None:
    """:func:`nothing_new` for a scheduled retraining on ``day``, from the lake and the registry: a weekly run (e.g.
    the first after unpausing over old data) with no newly labeled day skips instead of retraining on stale data."""
    client = registry.connect(config)
    name = config.model.name
    champion = registry.require_alias(client, name)
    window_end = client.get_model_version(name, champion.version).tags.get("window_end")
    seen = [date.fromisoformat(window_end)] if window_end else []
    for version in client.search_model_versions(f"name='{name}'"):
        holdout = version.tags.get("decision.holdout")
        if holdout:
            seen.append(date.fromisoformat(holdout.split("..")[-1]))
    return nothing_new(holdout_days(config, day)[-1], seen)


def train_challenger(config: Config, day: date, reason: str) -> str:
    """Train on the window that ends before the holdout days (the newest days labeled by ``day``), with the labels
    known by ``day``; register it and give it the ``challenger`` alias."""
    end = holdout_days(config, day)[0] - timedelta(days=1)
    result = train_and_register(config, end, reason=f"challenger: {reason}", as_of=day)
    client = registry.connect(config)
    client.set_registered_model_alias(config.model.name, CHALLENGER, result.version)
    client.set_registered_model_tag(config.model.name, LAST_RETRAIN_TAG, day.isoformat())
    return result.version


def evaluate_and_promote(
    config: Config, day: date, challenger_version: str, trigger: str, run_key: str = "none"
) -> Decision:
    """Score champion and challenger on the same newest labeled days (labels arrived by ``day``); promote only on a
    significant margin. Safe to retry: the decision is recorded, keyed by ``run_key`` (the Airflow run id), the day
    and the challenger, before anything acts on it, and a retry returns that record and finishes what it says
    (alias moves and version tags are idempotent) instead of deciding again on a registry it may have changed."""
    client = registry.connect(config)
    decision = find_decision(client, config, day, challenger_version, run_key)
    if decision is None:
        decision = record_decision(config, judge(config, client, day, challenger_version, trigger), day, run_key)
    else:
        log.warning("v%s was already decided on %s in run %s: a retry", challenger_version, day, decision.mlflow_run_id)
    apply_decision(client, config, decision, day)
    log.info(
        "promotion decision for %s v%s: %s (%s)",
        config.model.name,
        decision.challenger_version,
        "PROMOTED" if decision.promoted else "kept champion",
        decision.reason,
    )
    return decision


def judge(config: Config, client: MlflowClient, day: date, challenger_version: str, trigger: str) -> Decision:
    """The decision, from the registry and the lake as they are (it writes nothing): both models' metric on the
    holdout, the gain's interval and the promotion ladder's verdict."""
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
    interval = gain_interval(config, y, outputs[champion.version], outputs[challenger.version])
    champion_metric, challenger_metric = (
        _holdout_metric(config, y, outputs[ref.version]) for ref in (champion, challenger)
    )
    gain = (
        _gain(config, challenger_metric, champion_metric)
        if champion_metric is not None and challenger_metric is not None
        else None
    )
    promotion = config.promotion
    promoted, why = promotion_verdict(promotion, challenger.version == champion.version, len(y), gain, interval)
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
    )


def _holdout_metric(config: Config, y: np.ndarray, output: np.ndarray) -> float | None:
    """The metric on the holdout, or None where it is undefined (one class only, a non-finite output)."""
    if config.task == "classification" and len(np.unique(y)) < 2:
        return None
    if not np.isfinite(output).all():
        return None
    return defined(metric_value(config.model.metric, y, output))


def apply_decision(client: MlflowClient, config: Config, decision: Decision, day: date) -> None:
    """Make the registry say what the recorded decision says; each step checks first, so a retry repeats none."""
    name = config.model.name
    if decision.promoted:
        current = registry.alias_version(client, name, registry.CHAMPION)
        if current is None or current.version != decision.challenger_version:
            promote(client, name, decision.champion_version, decision.challenger_version)
    settle_challenger(client, name, decision.challenger_version, challenger_holds=not decision.promoted)
    tag_version(client, config, decision, day)
    mark_applied(client, decision)


def settle_challenger(client: MlflowClient, name: str, version: str, challenger_holds: bool) -> None:
    """The rule for ``challenger`` after a decision: it names the last evaluated challenger that was kept out, and
    no version once that challenger is promoted (it is the champion then), so it never names a stale version."""
    champion = registry.alias_version(client, name, registry.CHAMPION)
    if challenger_holds and (champion is None or champion.version != version):
        client.set_registered_model_alias(name, CHALLENGER, version)
    elif registry.alias_version(client, name, CHALLENGER) is not None:
        client.delete_registered_model_alias(name, CHALLENGER)


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
