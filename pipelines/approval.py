"""A person between the verdict and the alias move (``promotion.approval: required``).

The retraining DAG then records a promotion verdict without acting on it and asks through Airflow's own
``ApprovalOperator`` (human-in-the-loop: the task waits in the scheduler, holding no worker slot). The request shows
what a reviewer needs: both metrics, the gain and its interval, the segment table, links to the decision run, the
challenger version and the drift report (:func:`approval_request`). The answer settles the decision
(:func:`settle_approval`): approved, the recorded promotion is applied (the alias moves); rejected or timed out
(``promotion.approval_timeout_hours``), the champion stays and the challenger keeps its alias. Either way who
answered and when is recorded on the challenger version and on the decision run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from pipelines.config import Config
from pipelines.promotion import apply_decision
from pipelines.promotion_record import Decision, segment_lines
from pipelines.registry import Registry, RunKind, Tag

log = logging.getLogger(__name__)

APPROVE, REJECT = "Approve", "Reject"  # the ApprovalOperator's two options


def _number(value: float | None, spec: str) -> str:
    return "undefined" if value is None else format(value, spec)


def approval_request(decision: Decision, links: dict[str, str]) -> tuple[str, str]:
    """The request's subject and Markdown body: the verdict with both metrics, the interval, the segments and the
    links (those that are empty are left out). Pure."""
    subject = (
        f"Promote {decision.model_name} v{decision.challenger_version} over champion v{decision.champion_version}?"
    )
    interval = (
        f"[{decision.ci_low:+.4f}, {decision.ci_high:+.4f}]"
        if decision.ci_low is not None and decision.ci_high is not None
        else "not computable"
    )
    lines = [
        f"**Verdict: promote** ({decision.reason})",
        "",
        f"- {decision.metric} on the holdout {decision.holdout} ({decision.n} labeled rows): challenger"
        f" v{decision.challenger_version} **{_number(decision.challenger_metric, '.4f')}**, champion"
        f" v{decision.champion_version} **{_number(decision.champion_metric, '.4f')}**, gain"
        f" {_number(decision.difference, '+.4f')}",
        f"- {decision.confidence:.0%} paired bootstrap interval of the gain: {interval}",
        f"- trigger: {decision.trigger}",
        *segment_lines(decision),
        "",
        *(f"- [{name}]({url})" for name, url in links.items() if url),
        "",
        f"{APPROVE} moves `champion` to v{decision.challenger_version}; {REJECT} (or no answer in time) keeps"
        f" v{decision.champion_version}.",
    ]
    return subject, "\n".join(lines)


@dataclass(frozen=True)
class Answer:
    """What came back from the request: the outcome, who gave it (None: nobody, the timeout) and when."""

    outcome: str  # "approved", "rejected" or "timed out"
    by: str | None
    at: str

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


def answer_of(response: dict[str, Any]) -> Answer:
    """The ApprovalOperator's result (``chosen_options``, ``responded_by_user``, ``responded_at``) as an
    :class:`Answer`; the timeout's default answer has no user. Pure."""
    user = response.get("responded_by_user")
    chosen = (response.get("chosen_options") or [REJECT])[0]
    at = str(response.get("responded_at") or "")
    if user is None:
        return Answer("timed out", None, at)
    who = str(user.get("name") or user.get("id"))
    return Answer("approved" if chosen == APPROVE else "rejected", who, at)


def settle_approval(config: Config, registry: Registry, decision: Decision, answer: Answer, day: date) -> Decision:
    """Apply the held decision as the answer says and record the answer on the decision run and the challenger
    version; returns the decision as applied (kept out, with the answer in its reason, unless approved). Safe to
    repeat: applying and tagging are idempotent."""
    name, version = config.model.name, decision.challenger_version
    who = answer.by or "nobody (promotion.approval_timeout_hours passed)"
    applied = decision
    if not answer.approved:
        applied = replace(
            decision,
            promoted=False,
            champion_after=decision.champion_version,
            reason=f"{answer.outcome} by {who} at {answer.at}; the verdict was to promote: {decision.reason}",
        )
    apply_decision(registry, config, applied, day)
    registry.set_tags(
        decision.mlflow_run_id,
        {
            Tag.APPROVAL: answer.outcome,
            Tag.APPROVED_BY: who,
            Tag.APPROVED_AT: answer.at,
            Tag.PROMOTED: str(applied.promoted),
        },
    )
    for key, value in ((Tag.APPROVAL, answer.outcome), (Tag.APPROVED_BY, who), (Tag.APPROVED_AT, answer.at)):
        registry.set_version_tag(name, version, Tag.decision(key), value)
    log.info("promotion of %s v%s %s by %s at %s", name, version, answer.outcome, who, answer.at)
    return applied


def drift_run_of(registry: Registry, config: Config, day: date) -> str | None:
    """The MLflow run of ``day``'s drift check (whose report the request links to), or None."""
    found = registry.find_runs(RunKind.DRIFT, **{Tag.DAY: day.isoformat(), Tag.MODEL_NAME: config.model.name})
    return found[0].run_id if found else None
