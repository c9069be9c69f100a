"""Alerts arrive on real local endpoints (an SMTP server and an HTTP webhook on 127.0.0.1) when the DAGs run with
``dag.test()``: a quarantine spike on a published day, a day the quality gate refuses, and a task failing for good.

Drift and promotion alerts are checked in tests/e2e/test_continuous_training.py, on the run that drifts and
promotes. Each case here is a cheap run: extraction of a 600-row day, or a training task refusing its day.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from alert_inbox import SMTP_ALERTS, SmtpInbox, webhook_server
from dag_runs import load_dags, run_dag
from lakes import START, write_config

pytestmark = pytest.mark.e2e

WEBHOOK = "mlops_alerts_webhook"


def _alerts(**extra) -> dict:
    return {**SMTP_ALERTS, "webhook": {"conn_id": WEBHOOK, "endpoint": "hooks/mlops"}, **extra}


def test_quarantine_spike_gate_failure_and_task_failure_reach_smtp_and_webhook(
    airflow_db, alert_inbox, tmp_path, raw_data, monkeypatch
):
    inbox = alert_inbox
    with webhook_server() as (posts, webhook_connection):
        monkeypatch.setenv(f"AIRFLOW_CONN_{WEBHOOK.upper()}", webhook_connection)
        config_file = write_config(tmp_path, raw_data, mlflow_store=False, alerts=_alerts(quarantine_warn_share=0.01))
        monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
        dags = load_dags()

        # 8 bad rows of 600 (1.3%): the day is published, above the 1% warn level.
        assert run_dag(dags, "feature_extraction__credit_default", START) == "success"
        # The same share fails the day once the gate's own limit is 1%: sent as a quarantine alert, once.
        write_config(
            tmp_path,
            raw_data,
            mlflow_store=False,
            alerts=_alerts(quarantine_warn_share=0.01),
            quality={"max_quarantine_share": 0.01},
        )
        second = date(2026, 10, 2)
        assert run_dag(dags, "feature_extraction__credit_default", second) == "failed"
        # Any other final failure: a training run for a day before schedule.start_date.
        early = date(2026, 9, 20)
        assert run_dag(dags, "model_training__credit_default", early, date=early.isoformat()) == "failed"

    subjects = [message["Subject"] for message in inbox.messages]
    assert subjects == [
        "[mlops] quarantine: feature_extraction__credit_default 2026-10-01: 8 of 600 rows quarantined (1.3%), at or"
        " above alerts.quarantine_warn_share 1.0%; the day was published",
        "[mlops] quarantine: feature_extraction__credit_default 2026-10-02: pipelines.errors.QualityGateError:"
        " features 2026-10-02 not published: 8 of 600 rows quarantined (1.3%), above quality.m…",
        "[mlops] task_failure: model_training__credit_default 2026-09-20: pipelines.errors.ConfigError: 2026-09-20 is"
        " before schedule.start_date 2026-10-01: the pipeline does not process it (se…",
    ]
    assert all(message["To"] == "oncall@mlops.test" for message in inbox.messages)
    spike, gate, failure = (SmtpInbox.body(message) for message in inbox.messages)
    quarantine = tmp_path / "lake" / "quarantine" / "date=2026-10-01"
    assert "<b>DAG:</b> feature_extraction__credit_default" in spike and "<b>Day:</b> 2026-10-01" in spike
    assert f'<b>Quarantine:</b> <a href="{quarantine}">' in spike
    assert re.search(
        r'<b>Airflow log:</b> <a href="[^"]*/dags/feature_extraction__credit_default/runs/[^"]*/tasks/extract', gate
    )
    assert "top quarantine reasons" in gate
    assert re.search(r'<a href="[^"]*/dags/model_training__credit_default/runs/[^"]*/tasks/train', failure)

    # The webhook got the same three alerts as JSON, on the configured endpoint.
    assert [post["path"] for post in posts] == ["/hooks/mlops"] * 3
    bodies = [post["json"] for post in posts]
    assert [(b["event"], b["dag_id"], b["task_id"], b["day"]) for b in bodies] == [
        ("quarantine", "feature_extraction__credit_default", "extract", "2026-10-01"),
        ("quarantine", "feature_extraction__credit_default", "extract", "2026-10-02"),
        ("task_failure", "model_training__credit_default", "train", "2026-09-20"),
    ]
    assert bodies[0]["links"] == {"Quarantine": str(quarantine)}
    assert bodies[2]["reason"].startswith("pipelines.errors.ConfigError: 2026-09-20 is before schedule.start_date")
    assert bodies[2]["text"].startswith(subjects[2])
