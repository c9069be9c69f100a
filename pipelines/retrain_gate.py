"""The retraining gate with the lake and the registry asked: whether a day's drift check warrants retraining, and
the decision recorded either way (tags and a description on the day's drift run, a banner on its report).

The rules themselves are pure (:mod:`pipelines.retrain_rules`); this module gathers their inputs (the realized metric
of the newest labeled day, the last retraining, the labels since the champion's window) and records the outcome.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import Config
from pipelines.drift_report import annotate_report, decision_banner
from pipelines.monitoring import DriftResult, output_column
from pipelines.performance import holdout_days
from pipelines.performance_window import WINDOW
from pipelines.records import jsonable
from pipelines.registry import Registry, RunKind, Tag, connect, require_alias
from pipelines.retrain_rules import RetrainDecision, nothing_new, retrain_decision
from pipelines.segments import labeled_segment_metrics, segment_metrics_for_mlflow
from pipelines.storage import Lake, Table
from pipelines.training import read_labels

log = logging.getLogger(__name__)


def with_labeled_realized(
    config: Config, drift: DriftResult, champion_version: str | None, performance: pd.DataFrame | None = None
) -> DriftResult:
    """The drift result with the realized metric of the newest *labeled* day the champion scored (from the
    performance table), in place of the just-checked day's, whose labels have mostly not arrived yet; none such
    day: no realized metric, so the metric-drop trigger stays silent rather than judging on a few early labels.
    Only days within ``monitoring.label_horizon_days`` count (the champion scores every day, so its newest labeled
    day is a few days old). With ``monitoring.metric_window_days`` above 1, the figures of the day's trailing window
    stand for the day's (labeled share, metric, rows, estimate): a low-volume model's days alone have none.
    ``performance``: those rows as the day's performance update left them (default: read from the table)."""
    from pipelines.performance import estimated_on, recent_performance, trigger_day

    day = date.fromisoformat(drift.day)
    prefix = WINDOW if config.monitoring.metric_window_days > 1 else ""  # a low-volume model's trailing window
    rows = None
    if config.dataset.labels:
        rows = performance if performance is not None else recent_performance(config, day)
    if rows is not None and champion_version is not None:
        drift = replace(drift, estimated_metric=estimated_on(rows, champion_version, day, prefix))
    row = (
        trigger_day(rows, champion_version, config.monitoring.min_label_share, day, prefix)
        if champion_version is not None and rows is not None
        else None
    )
    if row is None:
        return replace(drift, realized_metric=None, realized_rows=0, realized_day=None)
    return replace(
        drift,
        realized_metric=float(row[f"{prefix}value"]),
        realized_rows=int(row[f"{prefix}labeled_rows"]),
        realized_day=row["date"],
        labeled_segments=_labeled_segments(config, str(row["date"]), drift.day),
    )


def _labeled_segments(config: Config, labeled_day: str, day: str) -> dict[str, Any] | None:
    """The labeled day's realized metric per segment value, on the labels known by ``day`` (no segments: None)."""
    if not config.monitoring.segments:
        return None
    found = labeled_segment_metrics(
        config, date.fromisoformat(labeled_day), date.fromisoformat(day), output_column(config)
    )
    return {"day": labeled_day, "segments": found}


def retrain_reason(
    config: Config,
    drift: DriftResult,
    day: date,
    force: bool = False,
    registry: Registry | None = None,
    performance: pd.DataFrame | None = None,
) -> RetrainDecision:
    """Whether a drift result warrants retraining now, and why (or why not), with the registry and lake asked
    (``performance``: the day's recent performance rows when the caller holds them, see
    :func:`with_labeled_realized`)."""
    if drift.status == "checked":  # the metric-drop signal: only days whose labels have arrived
        drift = with_labeled_realized(config, drift, drift.model_version, performance)
    registry = registry or connect(config)

    def last_retrain() -> date | None:
        """The later of the last retraining that ran (the model's tag) and the last day before this one whose check
        started one: under the scheduler a catch-up's drift runs follow each other before the retraining the first
        of them started has run, and each would start another."""
        tag = registry.model_tag(config.model.name, Tag.LAST_RETRAIN)
        started = [
            date.fromisoformat(run.tags[Tag.DAY])
            for kind in (RunKind.DRIFT, RunKind.RETRAIN_DECISION)
            for run in registry.find_runs(kind, **{Tag.MODEL_NAME: config.model.name, Tag.DECISION: RETRAIN})
        ]
        return max([d for d in started if d < day] + ([date.fromisoformat(tag)] if tag else []), default=None)

    decision = retrain_decision(
        config, drift, day, last_retrain, lambda: _labels_since_champion(config, registry, day), force=force
    )
    return replace(decision, labeled_segments=drift.labeled_segments) if drift.labeled_segments else decision


def decide_retraining(
    config: Config,
    drift: DriftResult,
    force: bool = False,
    registry: Registry | None = None,
    performance: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Retrain or not after a day's drift check (checked or skipped), and record it either way. Returns the decision
    for the DAG (``retrain``, ``reason``, ``date``, and the MLflow run and report it is recorded on)."""
    registry = registry or connect(config)
    day = date.fromisoformat(drift.day)
    decision = retrain_reason(config, drift, day, force=force, registry=registry, performance=performance)
    run_id, experiment_id = record_retrain_decision(config, registry, drift, decision)
    log.info("retrain=%s on %s: %s", decision.retrain, drift.day, decision.reason)
    return jsonable(
        {
            "date": drift.day,
            **decision.as_dict(),
            "model_version": drift.model_version,
            "mlflow_run_id": run_id,
            "experiment_id": experiment_id,
            "report_url": drift.report_url,
        }
    )


RETRAIN = "retrain"  # the decision tag of a day whose check started a retraining


def record_retrain_decision(
    config: Config, registry: Registry, drift: DriftResult, decision: RetrainDecision
) -> tuple[str, str]:
    """A day's decision (``retrain`` or ``no retrain``) as tags and a readable description on the day's drift run,
    or on a run of its own when the check was skipped, and on top of the day's HTML report: "why did we (not)
    retrain on day D" is answered in the MLflow UI and in the report. Returns the MLflow run and experiment ids."""
    retrain, reason, lines = decision.retrain, decision.reason, decision.signals
    verdict = RETRAIN if retrain else "no retrain"
    triggers = "; ".join(decision.triggers) if decision.triggers else "none"
    title = f"Retraining decision for {drift.day}: {verdict}"
    note = "\n".join(
        [f"**{title}** ({config.model.name} v{drift.model_version})", "", reason, "", *(f"- {x}" for x in lines)]
    )
    run_id = drift.mlflow_run_id or _decision_run(registry, config, drift.day)
    if decision.labeled_segments:
        flat = segment_metrics_for_mlflow("realized_segment", decision.labeled_segments["segments"])
        registry.log(run_id, metrics=flat)
    registry.set_tags(
        run_id, {Tag.DECISION: verdict, Tag.DECISION_REASON: reason, Tag.DECISION_TRIGGERS: triggers, Tag.NOTE: note}
    )
    if drift.status == "checked" and drift.report_url:
        sample = (
            f"verdicts on all {drift.rows_current} logged rows of the window; the charts below are drawn from a sample"
            f" of at most {config.monitoring.report_rows} rows of it and of the reference"
        )
        annotate_report(
            config,
            registry,
            date.fromisoformat(drift.day),
            drift.mlflow_run_id,
            decision_banner(title, retrain, reason, [*lines, sample]),
        )
    return run_id, registry.experiment_id


def _decision_run(registry: Registry, config: Config, day: str) -> str:
    """The run recording the decision of a day whose check was skipped: the one a retry or rerun already made, so
    the day keeps one such run, or a new one."""
    tags = {Tag.DAY: day, Tag.MODEL_NAME: config.model.name}
    found = registry.find_runs(RunKind.RETRAIN_DECISION, **tags)
    if found:
        return found[0].run_id
    run_id = registry.start_run(RunKind.RETRAIN_DECISION, f"retrain-decision-{day}", tags)
    registry.end_run(run_id)  # a record of tags only: complete once created
    return run_id


def _labels_since_champion(config: Config, registry: Registry, day: date) -> int:
    """The labeled rows (known by the end of ``day``) of the days extracted after the champion's training window, up
    to ``day``: counted newest days first, in doubling batches, only until ``monitoring.min_new_labels`` is reached.

    The rule asks for at least that many, and its refusal names the count, which is then exact. Counting every day
    since a champion trained months ago read millions of keys and their labels on each day a trigger fired, ~10 s
    over a year of history; a week of labels is far past any sensible minimum."""
    champion = require_alias(registry, config.model.name)
    end = date.fromisoformat(registry.version(champion.name, champion.version).tags.get(Tag.WINDOW_END, "1970-01-01"))
    lake = Lake.from_config(config)
    days = sorted((d for d in lake.days(Table.FEATURES) if end < d <= day), reverse=True)
    counted, batch = 0, 1
    while days and counted < config.monitoring.min_new_labels:
        read, days, batch = days[:batch], days[batch:], 2 * batch
        keys = lake.read_days(Table.FEATURES, sorted(read), [config.dataset.key])
        if not config.dataset.labels:
            counted += len(keys)
            continue
        wanted = keys[config.dataset.key].astype(str)
        counted += int(wanted.isin(read_labels(config, wanted, as_of=day)[config.dataset.key]).sum())
    return counted


def scheduled_retraining_skip(config: Config, day: date, registry: Registry | None = None) -> str | None:
    """:func:`nothing_new` for a scheduled retraining on ``day``, from the lake and the registry: a weekly run (e.g.
    the first after unpausing over old data) with no newly labeled day skips instead of retraining on stale data."""
    registry = registry or connect(config)
    name = config.model.name
    champion = require_alias(registry, name)
    window_end = registry.version(name, champion.version).tags.get(Tag.WINDOW_END)
    seen = [date.fromisoformat(window_end)] if window_end else []
    for version in registry.versions(name):
        holdout = version.tags.get(Tag.decision("holdout"))
        if holdout:
            seen.append(date.fromisoformat(holdout.split("..")[-1]))
    return nothing_new(holdout_days(config, day)[-1], seen)
