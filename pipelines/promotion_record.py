"""A promotion decision and its record in MLflow: written once per Airflow run, day and challenger, found by a retry.

A task can fail after its decision was taken, e.g. when its result cannot be handed to XCom; Airflow then retries
it. Deciding again would write a second record, send a second alert and judge a registry the first try already
changed (the challenger may be champion by then). So the decision is recorded first, keyed by the run, the day and
the challenger, with its whole content as an artifact (``decision.json``); a retry finds that record and returns
it, and everything done because of it (alias moves, version tags, the alert: :func:`pipelines.registry.once_per_run`)
checks whether it was already done.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from pipelines.config import Config
from pipelines.records import jsonable

log = logging.getLogger(__name__)

PROMOTION_KIND = "promotion"  # the `kind` tag of a decision's run
RECORD_ARTIFACT = "decision.json"
APPLIED_TAG = "applied"  # "pending" until the aliases and version tags say what the record says, then "true"
VERSION_TAGS = (
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

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _key_filter(config: Config, day: date, challenger_version: str, run_key: str) -> str:
    return (
        f"tags.kind = '{PROMOTION_KIND}' and tags.model_name = '{config.model.name}' and tags.day = '{day}'"
        f" and tags.challenger_version = '{challenger_version}' and tags.airflow_run_id = '{_quoted(run_key)}'"
    )


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"a run key with a quote cannot be searched for: {value!r}")
    return value


def find_decision(
    client: MlflowClient, config: Config, day: date, challenger_version: str, run_key: str
) -> Decision | None:
    """The decision already recorded for this run, day and challenger, or None. A run left unfinished by a try
    that died while recording holds no complete record: it is deleted, and the decision is taken again."""
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    found = client.search_runs([experiment], _key_filter(config, day, challenger_version, run_key))
    finished = [r for r in found if r.info.status == RunStatus.to_string(RunStatus.FINISHED)]
    for run in found:
        if run not in finished:
            log.warning("deleting the incomplete promotion record %s of an earlier try", run.info.run_id)
            client.delete_run(run.info.run_id)
    if not finished:
        return None
    run = min(finished, key=lambda r: r.info.start_time)
    content = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{RECORD_ARTIFACT}")
    return Decision(**{**content, "mlflow_run_id": run.info.run_id})


def record_decision(config: Config, decision: Decision, day: date, run_key: str) -> Decision:
    """The decision as an MLflow run (tags, params, the defined metrics and the whole record as ``decision.json``),
    before anything acts on it. Returns the decision with its run id."""
    fields = decision.as_dict()
    with mlflow.start_run(run_name=f"{PROMOTION_KIND}-{day.isoformat()}-v{decision.challenger_version}") as run:
        mlflow.set_tags(
            {
                "kind": PROMOTION_KIND,
                "day": day.isoformat(),
                "model_name": config.model.name,
                "challenger_version": decision.challenger_version,
                "airflow_run_id": run_key,
                "promoted": str(decision.promoted),
                "reason": decision.reason,
                "trigger": decision.trigger,
                APPLIED_TAG: "pending",
            }
        )
        mlflow.log_params(
            {k: v for k, v in fields.items() if isinstance(v, str | int) and k not in ("reason", "trigger", "promoted")}
        )
        mlflow.log_metrics({k: v for k, v in fields.items() if isinstance(v, float)})  # None (undefined) left out
        recorded = replace(decision, mlflow_run_id=run.info.run_id)
        mlflow.log_dict(recorded.as_dict(), RECORD_ARTIFACT)
    return recorded


def tag_version(client: MlflowClient, config: Config, decision: Decision, day: date) -> None:
    """The decision as ``decision.*`` tags on the challenger version (an undefined number has no tag: the reason
    says why) and, once, in words in its description, for the version's page in the MLflow UI."""
    name, version, fields = config.model.name, decision.challenger_version, decision.as_dict()
    for key in VERSION_TAGS:
        if fields[key] is not None:
            client.set_model_version_tag(name, version, f"decision.{key}", str(fields[key]))
    client.set_model_version_tag(name, version, "decision.run_id", decision.mlflow_run_id)
    previous = client.get_model_version(name, version).description or ""
    if decision.mlflow_run_id in previous:
        return  # a retry: the description already tells this decision
    text = decision_description(decision, day)
    client.update_model_version(name, version, description=f"{previous}\n\n---\n\n{text}" if previous else text)


def mark_applied(client: MlflowClient, decision: Decision) -> None:
    client.set_tag(decision.mlflow_run_id, APPLIED_TAG, "true")


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
        ]
    )
