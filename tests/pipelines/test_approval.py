"""A held promotion settled by a person's answer, on the in-memory registry: approve moves the alias, reject and
timeout keep the champion, and who answered and when is on the version and the decision run."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.approval import Answer, answer_of, approval_request, settle_approval
from pipelines.promotion import evaluate_and_promote
from pipelines.promotion_record import Decision
from pipelines.registry import RunKind, Tag, tracked_run
from pipelines.registry_memory import MemoryRegistry

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 9)


def _held(demo, monkeypatch) -> tuple[MemoryRegistry, Decision]:
    """v1 champion, v2 challenger, and a promotion verdict recorded but held for approval."""
    from pipelines import promotion

    name = demo.model.name
    store = MemoryRegistry()
    for i in range(2):
        with tracked_run(store, RunKind.TRAINING, f"train-{i}") as run_id:
            store.register_version(name, f"models:/m-{i}", run_id)
    store.set_alias(name, "champion", "1")
    store.set_alias(name, "challenger", "2")
    verdict = Decision(
        name, True, "gain 0.0300 >= 0.005, 95% interval [0.0100, 0.0500] above 0", "2", "1", "2", "roc_auc", 0.70,
        0.73, 0.03, 0.01, 0.05, 600, 0.005, 0.95, "2026-10-09..2026-10-09", "drift share 0.30 >= 0.15",
        segments=[{"segment": "region", "value": "north", "n": 300, "champion_metric": 0.7, "challenger_metric": 0.72,
                   "gain": 0.02, "ci_low": -0.01, "ci_high": 0.05, "problem": ""}],
    )  # fmt: skip
    monkeypatch.setattr(promotion, "judge", lambda *args: verdict)
    held = evaluate_and_promote(demo, DAY, "2", "drift", run_key="manual__1", registry=store, hold=True)
    assert store.alias(name, "champion").version == "1"  # held: nothing moved yet
    assert store.run(held.mlflow_run_id).tags[Tag.APPROVAL] == "pending"
    return store, held


def test_the_request_shows_both_metrics_the_interval_the_segments_and_the_links(demo, monkeypatch):
    _, held = _held(demo, monkeypatch)
    subject, body = approval_request(held, {"Decision run in MLflow": "http://mlflow/#/r", "Drift report": ""})
    assert subject == "Promote credit_default v2 over champion v1?"
    assert "challenger v2 **0.7300**, champion v1 **0.7000**, gain +0.0300" in body
    assert "95% paired bootstrap interval of the gain: [+0.0100, +0.0500]" in body
    assert "| region=north | 300 | 0.7000 | 0.7200 | +0.0200 | [-0.0100, +0.0500] |  |" in body
    assert "- [Decision run in MLflow](http://mlflow/#/r)" in body and "Drift report" not in body


def test_approval_moves_the_alias_and_records_who_and_when(demo, monkeypatch):
    store, held = _held(demo, monkeypatch)
    answer = answer_of(
        {"chosen_options": ["Approve"], "responded_by_user": {"id": "admin", "name": "admin"}, "responded_at": "t1"}
    )
    applied = settle_approval(demo, store, held, answer, DAY)
    settle_approval(demo, store, held, answer, DAY)  # a retry changes nothing
    name = demo.model.name
    assert applied.promoted and store.alias(name, "champion").version == "2"
    assert store.alias(name, "previous_champion").version == "1" and store.alias(name, "challenger") is None
    tags = store.version(name, "2").tags
    assert (tags["decision.approval"], tags["decision.approval.by"], tags["decision.approval.at"]) == (
        "approved",
        "admin",
        "t1",
    )
    run = store.run(held.mlflow_run_id).tags
    assert (run[Tag.APPROVAL], run[Tag.APPROVED_BY], run[Tag.APPLIED]) == ("approved", "admin", "true")


@pytest.mark.parametrize(
    ("response", "outcome", "who"),
    [
        ({"chosen_options": ["Reject"], "responded_by_user": {"id": "ann", "name": "ann"}}, "rejected", "ann"),
        ({"chosen_options": ["Reject"], "responded_by_user": None}, "timed out", None),  # the timeout's default
    ],
)
def test_rejection_or_timeout_keeps_the_champion_and_says_so(demo, monkeypatch, response, outcome, who):
    store, held = _held(demo, monkeypatch)
    answer = answer_of({**response, "responded_at": "t2"})
    assert answer == Answer(outcome, who, "t2")
    applied = settle_approval(demo, store, held, answer, DAY)
    name = demo.model.name
    assert not applied.promoted and applied.reason.startswith(f"{outcome} by {who or 'nobody'}")
    assert store.alias(name, "champion").version == "1" and store.alias(name, "challenger").version == "2"
    version = store.version(name, "2")
    assert version.tags["decision.approval"] == outcome and version.tags["decision.promoted"] == "False"
    assert version.description.startswith(f"**Kept out on {DAY}**")
    assert store.run(held.mlflow_run_id).tags[Tag.PROMOTED] == "False"
    assert store.record(held.mlflow_run_id, "decision.json")["promoted"] is True  # the verdict stays on record
