"""Drift detection triggers retraining, the better challenger is promoted, and a rollback restores the champion.

All through the real DAGs with ``dag.test()``: Evidently computes the drift, MLflow holds the aliases, Airflow
records the triggered retraining run that ``drift_monitoring`` creates, and the drift and promotion alerts reach a
real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from airflow.models.dagrun import DagRun
from alert_inbox import SMTP_ALERTS, SmtpInbox
from dag_runs import load_dags, run_dag
from lakes import evidently_verdicts, write_config
from mlflow.tracking import MlflowClient

from pipelines import registry
from pipelines.config import load_config
from pipelines.performance import read_performance

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)


def _aliases(config) -> dict[str, str]:
    client = registry.connect(config)
    refs = {alias: client.alias(config.model.name, alias) for alias in ("champion", "previous_champion")}
    return {alias: ref.version for alias, ref in refs.items() if ref}


def _plugin_links(dag_ids: list[str]) -> dict:
    """Each task instance's links as the API server computes them, through the plugin Airflow loaded."""
    import sys

    from airflow import plugins_manager
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    links = {link.name: link for link in plugins_manager.get_global_operator_extra_links()}
    assert {"MLflow", "Drift report"} <= set(links), sys.path
    found: dict = {}
    with create_session() as session:
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id.in_(dag_ids))):
            found[(ti.dag_id, ti.task_id)] = {name: link.get_link(None, ti_key=ti.key) for name, link in links.items()}
    return found


def test_drift_triggers_retraining_promotion_and_rollback(
    airflow_db, alert_inbox, tmp_path, raw_data, monkeypatch, scheduler_address
):
    config_file = write_config(
        tmp_path,
        raw_data,
        training={"window_days": 3},
        # The champion has little skill to lose on the small lake (roc_auc 0.56 on its 114 holdout rows; 0.52 on
        # the newest drifted day half labeled by day 9): a drop of 0.02 is enough to count as one.
        monitoring={"sample_rate": 1.0, "window_days": 2, "drift_share_threshold": 0.15, "metric_drop_threshold": 0.02},
        promotion={"bootstrap": 100},
        alerts={**SMTP_ALERTS, "events": ["drift", "promotion"]},
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    earlier = {run.run_id for run in DagRun.find(dag_id="retraining__credit_default")}  # other tests' runs, same DB

    def retrainings() -> list[DagRun]:
        return [run for run in DagRun.find(dag_id="retraining__credit_default") if run.run_id not in earlier]

    dags = load_dags()
    config = load_config(config_file)
    days = [START + timedelta(days=i) for i in range(10)]
    for day in days:
        assert run_dag(dags, "feature_extraction__credit_default", day) == "success"
    assert run_dag(dags, "model_training__credit_default", days[2], date=days[2].isoformat()) == "success"

    # A stable day: the check runs, nothing is triggered. Labels arrive 1 to 3 days late: the performance table
    # holds the day just scored with none yet, and the day before with about a third.
    for day in days[3:5]:
        assert run_dag(dags, "batch_scoring__credit_default", day) == "success"
    assert run_dag(dags, "drift_monitoring__credit_default", days[4]) == "success"
    assert retrainings() == []
    early = read_performance(config).set_index("date")
    assert early.loc[days[4].isoformat(), "labeled_rows"] == 0 and early["scored_rows"].tolist() == [592, 592]
    assert 0.25 < early.loc[days[3].isoformat(), "label_share"] < 0.42
    assert set(early["labels_as_of"]) == {days[4].isoformat()} and set(early["model_version"]) == {"1"}
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    [calm] = client.search_runs([experiment], f"tags.kind = 'drift' and tags.day = '{days[4].isoformat()}'")
    assert calm.data.tags["decision"] == "no retrain"  # not retraining is on the record too, with why
    assert calm.data.tags["decision.reason"].startswith("no trigger: drift share ")
    assert alert_inbox.messages == []  # no drift, no alert

    # Drifted days: the check starts the retraining DAG with its reasons. The realized metric behind the second is
    # the newest day the champion scored that is half labeled by day 9 (day 7); day 9 itself has no label yet.
    for day in days[7:10]:
        assert run_dag(dags, "batch_scoring__credit_default", day) == "success"
    assert run_dag(dags, "drift_monitoring__credit_default", days[9]) == "success"
    report = Path(config.storage.root) / "reports" / f"date={days[9].isoformat()}" / "drift_summary.json"
    verdicts = {column: v["drifted"] for column, v in json.loads(report.read_text())["columns"].items()}
    assert verdicts == {column: v["drifted"] for column, v in evidently_verdicts(config, days[9]).items()}
    triggered = retrainings()
    assert len(triggered) == 1
    conf = triggered[0].conf
    assert conf["date"] == days[9].isoformat() and "drift share" in conf["reason"]
    assert "realized roc_auc" in conf["reason"] and "below training" in conf["reason"]
    performance = read_performance(config).set_index("date")
    label = {day: performance.loc[day.isoformat()] for day in (days[3], days[7], days[8], days[9])}
    assert label[days[3]]["labeled_rows"] == 592 and label[days[3]]["labels_as_of"] == days[9].isoformat()
    assert 0.58 < label[days[7]]["label_share"] < 0.75 and 0.25 < label[days[8]]["label_share"] < 0.42
    assert label[days[9]]["labeled_rows"] == 0 and pd.isna(label[days[9]]["value"])
    assert label[days[3]]["ci_low"] < label[days[3]]["value"] < label[days[3]]["ci_high"]
    (day3_run,) = client.search_runs([experiment], f"tags.kind = 'performance' and tags.day = '{days[3]}'")
    filling = {m.step: m.value for m in client.get_metric_history(day3_run.info.run_id, "label_share")}
    assert filling == {1: early.loc[days[3].isoformat(), "label_share"], 6: 1.0}  # as of days 4 and 9
    assert day3_run.data.metrics["realized_roc_auc"] == pytest.approx(label[days[3]]["value"])
    (drift_alert,) = alert_inbox.messages
    assert drift_alert["Subject"].startswith(f"[mlops] drift: drift_monitoring__credit_default {days[9]}: drift share")

    # Run what was triggered: the holdout is the newest day labeled by day 9 (day 7, not day 9), and the challenger
    # (trained on the days before it, one of them drifted) beats the champion there.
    assert _aliases(config) == {"champion": "1"}
    assert run_dag(dags, "retraining__credit_default", logical=triggered[0].logical_date, **conf) == "success"
    assert _aliases(config) == {"champion": "2", "previous_champion": "1"}
    tags = MlflowClient(config.tracking_uri).get_model_version(config.model.name, "2").tags
    assert tags["decision.promoted"] == "True" and "drift share" in tags["decision.trigger"]
    assert tags["decision.holdout"] == f"{days[7]}..{days[7]}"
    assert int(tags["decision.n"]) == label[days[7]]["labeled_rows"]
    assert (tags["window_start"], tags["window_end"]) == (days[4].isoformat(), days[6].isoformat())

    # The drifted day's decision is on its drift run, with the reason the retraining was started with.
    drift_runs = client.search_runs([experiment], f"tags.kind = 'drift' and tags.day = '{days[9].isoformat()}'")
    assert [run.data.tags["decision"] for run in drift_runs] == ["retrain"]
    assert drift_runs[0].data.tags["decision.reason"] == conf["reason"]
    # The drift alert links to that run and its report, as the plugin's buttons do.
    drift_run = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{drift_runs[0].info.run_id}"
    body = SmtpInbox.body(drift_alert)
    assert f'<b>MLflow:</b> <a href="{drift_run}">' in body
    assert f'<b>Drift report:</b> <a href="{drift_run}/artifactPath/drift/drift_report.html">' in body
    assert f"<b>Day:</b> {days[9]}" in body and "<b>Reason:</b> drift share" in body
    promotion_alert = alert_inbox.messages[1]
    assert promotion_alert["Subject"].startswith(
        f"[mlops] promotion: retraining__credit_default {days[9]}: challenger v2 promoted, replacing v1: roc_auc"
    )
    assert '<a href="http://127.0.0.1:5000/#/models/credit_default/versions/2">' in SmtpInbox.body(promotion_alert)

    # The plugin's buttons on those task instances (before the reruns below, whose `check` has no day left to
    # check) point at the promoted version and at the drift run's report.
    links = _plugin_links(["retraining__credit_default", "drift_monitoring__credit_default"])
    assert links[("retraining__credit_default", "evaluate_and_promote")]["MLflow"].endswith(
        "/#/models/credit_default/versions/2"
    )
    # (one task instance per key is kept: the stable day's run or the drifted day's, each with its own drift run)
    checked = {calm.info.run_id, drift_runs[0].info.run_id}
    report_link = links[("drift_monitoring__credit_default", "check")]["Drift report"]
    run_id, _, path = report_link.partition(f"/#/experiments/{experiment}/runs/")[2].partition("/")
    assert path == "artifactPath/drift/drift_report.html" and run_id in checked
    decided = links[("drift_monitoring__credit_default", "check")]["MLflow"]
    assert decided.partition(f"/#/experiments/{experiment}/runs/")[2] in checked

    # History is not rewritten: checking day 9 again under the new champion (as a backlog would) changes nothing,
    # nor does rerunning day 4, whose labels were known later: the performance table keeps what day 9 knew.
    report = Path(config.storage.root) / "reports" / f"date={days[9].isoformat()}" / "drift_summary.json"
    seen, table = report.read_text(), read_performance(config)
    assert run_dag(dags, "drift_monitoring__credit_default", days[9]) == "success"
    assert run_dag(dags, "drift_monitoring__credit_default", days[4]) == "success"
    drift_runs = client.search_runs([experiment], f"tags.kind = 'drift' and tags.day = '{days[9].isoformat()}'")
    assert [run.data.tags["model_version"] for run in drift_runs] == ["1"] and report.read_text() == seen
    pd.testing.assert_frame_equal(read_performance(config), table)
    assert len(alert_inbox.messages) == 2  # the re-checks sent nothing

    assert run_dag(dags, "model_rollback__credit_default", days[9], reason="e2e rollback") == "success"
    assert _aliases(config) == {"champion": "1", "previous_champion": "2"}
