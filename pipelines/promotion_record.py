"""A promotion decision and its record in MLflow: written once per Airflow run, day and challenger, found by a retry.

A task can fail after its decision was taken, e.g. when its result cannot be handed to XCom; Airflow then retries
it. Deciding again would write a second record, send a second alert and judge a registry the first try already
changed (the challenger may be champion by then). So the decision is recorded first, keyed by the run, the day and
the challenger, with its whole content as an artifact (``decision.json``); a retry finds that record and returns
it, and everything done because of it (alias moves, version tags, the alert: :func:`pipelines.registry.alert_once`)
checks whether it was already done.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from pipelines.config import Config
from pipelines.records import jsonable
from pipelines.registry import Registry, RunKind, Tag, tracked_run

log = logging.getLogger(__name__)

RECORD_ARTIFACT = "decision.json"
VERSION_TAGS = (  # the fields written as ``decision.<field>`` tags on the challenger version
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
)


@dataclass(frozen=True)
class Decision:
    """A promotion decision. A number the holdout cannot define (a metric on one class, an interval no resample
    supports) is None, never NaN: the decision travels as JSON (XCom, its MLflow record) and the reason says why."""

    model_name: str
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str
    champion_after: str
    metric: str
    champion_metric: float | None
    challenger_metric: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    min_improvement: float
    confidence: float
    holdout: str
    trigger: str
    mlflow_run_id: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)  # per segment value: n, both metrics, gain, interval

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _key(config: Config, day: date, challenger_version: str, run_key: str) -> dict[str, str]:
    """What a decision's record is found by: the model, the day, the challenger and the Airflow run."""
    return {
        Tag.MODEL_NAME: config.model.name,
        Tag.DAY: day.isoformat(),
        Tag.CHALLENGER_VERSION: challenger_version,
        Tag.AIRFLOW_RUN_ID: run_key,
    }


def find_decision(
    registry: Registry, config: Config, day: date, challenger_version: str, run_key: str
) -> Decision | None:
    """The decision already recorded for this run, day and challenger, or None. A run left unfinished by a try
    that died while recording holds no complete record: it is deleted, and the decision is taken again."""
    found = registry.find_runs(RunKind.PROMOTION, **_key(config, day, challenger_version, run_key))
    finished = [r for r in found if r.finished]
    for run in found:
        if not run.finished:
            log.warning("deleting the incomplete promotion record %s of an earlier try", run.run_id)
            registry.delete_run(run.run_id)
    if not finished:
        return None
    run = finished[0]  # the oldest: the first try's
    content = registry.record(run.run_id, RECORD_ARTIFACT)
    return Decision(**{**content, "mlflow_run_id": run.run_id})


def record_decision(registry: Registry, config: Config, decision: Decision, day: date, run_key: str) -> Decision:
    """The decision as a run (tags, params, the defined metrics and the whole record as ``decision.json``), before
    anything acts on it. Returns the decision with its run id."""
    fields = decision.as_dict()
    tags = {
        **_key(config, day, decision.challenger_version, run_key),
        Tag.PROMOTED: str(decision.promoted),
        Tag.REASON: decision.reason,
        Tag.TRIGGER: decision.trigger,
        Tag.APPLIED: "pending",  # until the aliases and version tags say what the record says
    }
    name = f"{RunKind.PROMOTION}-{day.isoformat()}-v{decision.challenger_version}"
    with tracked_run(registry, RunKind.PROMOTION, name, tags) as run_id:
        registry.log(
            run_id,
            metrics={
                **{k: v for k, v in fields.items() if isinstance(v, float)},  # None (undefined) left out
                **segment_metrics(decision),
            },
            params={
                k: v
                for k, v in fields.items()
                if isinstance(v, str | int) and k not in ("reason", "trigger", "promoted")
            },
        )
        recorded = replace(decision, mlflow_run_id=run_id)
        registry.log_record(run_id, RECORD_ARTIFACT, recorded.as_dict())
    return recorded


def tag_version(registry: Registry, config: Config, decision: Decision, day: date) -> None:
    """The decision as ``decision.*`` tags on the challenger version (an undefined number has no tag: the reason
    says why) and, once, in words in its description, for the version's page in the MLflow UI."""
    name, version, fields = config.model.name, decision.challenger_version, decision.as_dict()
    for key in VERSION_TAGS:
        if fields[key] is not None:
            registry.set_version_tag(name, version, Tag.decision(key), str(fields[key]))
    registry.set_version_tag(name, version, Tag.DECISION_RUN_ID, decision.mlflow_run_id)
    previous = registry.version(name, version).description
    if decision.mlflow_run_id in previous:
        return  # a retry: the description already tells this decision
    text = decision_description(decision, day)
    registry.set_version_description(name, version, f"{previous}\n\n---\n\n{text}" if previous else text)


def mark_applied(registry: Registry, decision: Decision) -> None:
    registry.set_tags(decision.mlflow_run_id, {Tag.APPLIED: "true"})


def _number(value: float | None, spec: str) -> str:
    return "undefined" if value is None else format(value, spec)


def decision_description(decision: Decision, day: date) -> str:
    """The promotion decision in words (Markdown), for the model version's page in the MLflow UI."""
    challenger, champion = f"v{decision.challenger_version}", f"v{decision.champion_version}"
    if decision.promoted:
        head = f"**Promoted on {day}**: {challenger} replaced {champion} as champion."
    else:
        head = f"**Kept out on {day}**: {champion} stays champion; {challenger} was not promoted."
    interval = (
        f"[{decision.ci_low:+.4f}, {decision.ci_high:+.4f}]"
        if decision.ci_low is not None and decision.ci_high is not None
        else "not computable"
    )
    return "\n".join(
        [
            head,
            "",
            f"- {decision.metric} on the holdout {decision.holdout} ({decision.n} labeled rows):"
            f" challenger {challenger} {_number(decision.challenger_metric, '.4f')}, champion {champion}"
            f" {_number(decision.champion_metric, '.4f')}, gain {_number(decision.difference, '+.4f')}",
            f"- {decision.confidence:.0%} paired bootstrap interval of the gain: {interval}",
            f"- required: gain >= {decision.min_improvement} and the interval above 0",
            f"- why: {decision.reason}",
            f"- trigger: {decision.trigger}",
            f"- decision run: {decision.mlflow_run_id}",
            *segment_lines(decision),
        ]
    )


def segment_metrics(decision: Decision) -> dict[str, float]:
    """The segment table's defined numbers as flat MLflow metrics (``segment.region.north.gain``)."""
    from pipelines.segments import metric_name

    return {
        metric_name("segment", s["segment"], s["value"], k): float(s[k])
        for s in decision.segments
        for k in ("n", "champion_metric", "challenger_metric", "gain", "ci_low", "ci_high")
        if s[k] is not None
    }


def segment_lines(decision: Decision) -> list[str]:
    """The decision's segment table as Markdown (none without ``monitoring.segments``)."""
    if not decision.segments:
        return []
    rows = [
        f"| {s['segment']}={s['value']} | {s['n']} | {_number(s['champion_metric'], '.4f')} |"
        f" {_number(s['challenger_metric'], '.4f')} | {_number(s['gain'], '+.4f')} |"
        f" {_interval(s['ci_low'], s['ci_high'])} | {s['problem']} |"
        for s in decision.segments
    ]
    head = ["", "| segment | rows | champion | challenger | gain | interval | note |", "|---|---|---|---|---|---|---|"]
    return [*head, *rows]


def _interval(low: float | None, high: float | None) -> str:
    return f"[{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else "-"
