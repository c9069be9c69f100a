"""A promotion that waits for a person, under Airflow's real scheduler: the retraining run stops at `approve`
(Airflow's ApprovalOperator, waiting in the scheduler with no worker slot held), a rejection through the REST API
keeps the champion, an approval moves it. Who answered is on the challenger version.

The registry and lake are prepared in-process (ten demo days, a champion on the first three, labels known at
once); the stack only runs the retraining DAG, triggered through the API as a user would.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from lakes import days
from mlflow.tracking import MlflowClient
from scheduler_stack import AirflowStack

pytestmark = pytest.mark.e2e

DAG = "retraining__credit_default"
DAY = days(10)[9]  # drifted: a challenger trained on the days before it beats the champion there


@pytest.fixture(scope="module")
def stack(build_lake, migrated_airflow_db: Path, tmp_path_factory: pytest.TempPathFactory):
    config = build_lake(
        10,
        days(10)[2],
        dataset={"label_time": None},
        training={"window_days": 3},
        promotion={"bootstrap": 100, "approval": "required", "approval_timeout_hours": 1},
        schedule={"start_date": "2026-10-01", "retraining_cron": None},
    )
    stack = AirflowStack(tmp_path_factory.mktemp("approval-home"), {"MLOPS_CONFIG": str(_config_file(config))})
    try:
        stack.start(migrated_airflow_db)
        stack.unpause(DAG)
        yield stack, config
    finally:
        stack.stop()


def _config_file(config) -> Path:
    return Path(config.storage.root).parent / "config.yaml"  # lakes.write_config puts it beside the lake


def _task(stack: AirflowStack, run_id: str, task_id: str) -> dict:
    return stack.api("GET", f"/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")


def _answer(stack: AirflowStack, run_id: str, option: str) -> dict:
    """Wait until the run asks, check what it shows, then answer as the UI's Required actions page does."""
    stack.wait_for(lambda: _task(stack, run_id, "approve")["state"] == "awaiting_input", 120, "approve to wait")
    path = f"/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"
    asked = stack.api("GET", path)
    assert asked["subject"].startswith("Promote credit_default v") and asked["options"] == ["Approve", "Reject"]
    assert "paired bootstrap interval of the gain: [+" in asked["body"] and "champion v1 **" in asked["body"]
    assert _task(stack, run_id, "promote_approved")["state"] in (None, "scheduled", "none")  # nothing moved yet
    return stack.api("PATCH", path, {"chosen_options": [option]})


def _finished(stack: AirflowStack, run_id: str, option: str) -> str:
    """Wait for the run to end. A try of ``approve`` that Airflow fails as its deferral resumes (seen under load:
    "TI was not in a state where it could be marked as running", previous state up_for_retry) is retried, and the
    retry asks again: answered again here, as its person would in the UI. The answer is never taken from a try
    that did not record it (tested below: the version's tags and the decision run say who answered)."""
    path = f"/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"

    def state() -> str | None:
        found = stack.api("GET", f"/dags/{DAG}/dagRuns/{quote(run_id, safe='')}")["state"]
        if found not in ("success", "failed") and _task(stack, run_id, "approve")["state"] == "awaiting_input":
            if not stack.api("GET", path).get("response_received"):
                stack.api("PATCH", path, {"chosen_options": [option]})
        return found if found in ("success", "failed") else None

    return stack.wait_for(state, 300, f"run {run_id} to finish", every=2)


def test_a_promotion_waits_a_rejection_keeps_the_champion_and_an_approval_moves_it(stack):
    stack, config = stack
    client = MlflowClient(config.tracking_uri)
    name = config.model.name

    rejected = stack.trigger(DAG, {"date": DAY.isoformat(), "reason": "drift (test)"})
    answered = _answer(stack, rejected, "Reject")
    assert answered["responded_by"]["name"] == "admin" and answered["chosen_options"] == ["Reject"]
    assert _finished(stack, rejected, "Reject") == "success"
    assert _task(stack, rejected, "promote_approved")["state"] == "skipped"
    assert _task(stack, rejected, "keep_champion")["state"] == "success"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    tags = client.get_model_version(name, "2").tags
    assert (tags["decision.approval"], tags["decision.approval.by"], tags["decision.promoted"]) == (
        "rejected",
        "admin",
        "False",
    )
    run = client.get_run(tags["decision.run_id"]).data.tags
    assert (run["approval"], run["approval.by"], run["applied"]) == ("rejected", "admin", "true")

    approved = stack.trigger(DAG, {"date": DAY.isoformat(), "reason": "drift (test, again)"})
    _answer(stack, approved, "Approve")
    assert _finished(stack, approved, "Approve") == "success"
    assert _task(stack, approved, "keep_champion")["state"] == "skipped"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"
    assert str(client.get_model_version_by_alias(name, "previous_champion").version) == "1"
    tags = client.get_model_version(name, "3").tags
    assert (tags["decision.approval"], tags["decision.approval.by"]) == ("approved", "admin")
    assert tags["decision.approval.at"] and client.get_run(tags["decision.run_id"]).data.tags["approval"] == "approved"
