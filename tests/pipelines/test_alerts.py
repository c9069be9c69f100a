"""What alerts say and when they go out: the config's ``alerts`` section, each event's reason, the message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.alerts import Alert, failure_event, failure_reason, promotion_reason, quarantine_warning
from pipelines.config import ALERT_EVENTS, AlertsConfig
from pipelines.errors import ConfigError, DataError, QualityGateError

pytestmark = pytest.mark.unit

SMTP = {"smtp": {"to": ["oncall@example.com"]}}


def test_no_channel_sends_nothing_and_a_channel_sends_every_event_by_default():
    assert not any(AlertsConfig().wants(event) for event in ALERT_EVENTS)
    assert all(AlertsConfig.model_validate(SMTP).wants(event) for event in ALERT_EVENTS)
    webhook_drift_only = AlertsConfig.model_validate({"webhook": {"conn_id": "chat"}, "events": ["drift"]})
    assert [event for event in ALERT_EVENTS if webhook_drift_only.wants(event)] == ["drift"]
    assert AlertsConfig.model_validate(SMTP).smtp.conn_id == "smtp_default"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"smtp": {"to": []}}, "smtp.to"),
        ({"smtp": {"to": ["a@b"], "password": "x"}}, "smtp.password"),  # secrets belong in the connection
        ({**SMTP, "events": ["drift", "outage"]}, "events.1"),
        ({"webhook": {}}, "webhook.conn_id"),
    ],
)
def test_invalid_alerts_sections_name_the_key(section, message):
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        AlertsConfig.model_validate(section)


def test_quarantine_warning_from_the_warn_level_up():
    alerts = AlertsConfig.model_validate({**SMTP, "quarantine_warn_share": 0.05})
    assert quarantine_warning({"rows_in": 1000, "rows_quarantined": 49}, alerts) is None
    assert quarantine_warning({"rows_in": 1000, "rows_quarantined": 50}, alerts) == (
        "50 of 1000 rows quarantined (5.0%), at or above alerts.quarantine_warn_share 5.0%; the day was published"
    )
    assert quarantine_warning({"rows_in": 0, "rows_quarantined": 0}, alerts) is None


DECISION = {
    "challenger_version": "3",
    "champion_version": "2",
    "metric": "roc_auc",
    "challenger_metric": 0.8123,
    "champion_metric": 0.70456,
    "holdout": "2026-10-09..2026-10-09",
    "n": 592,
    "reason": "gain 0.1077 >= 0.005 and interval [0.05, 0.16] above 0",
    "trigger": "drift share 0.27 >= 0.15",
}


def test_promotion_reason_says_who_is_champion_both_metrics_and_why():
    assert promotion_reason({**DECISION, "promoted": True}) == (
        "challenger v3 promoted, replacing v2: roc_auc 0.8123 (challenger) vs 0.7046 (champion) on"
        " 2026-10-09..2026-10-09, n=592; gain 0.1077 >= 0.005 and interval [0.05, 0.16] above 0;"
        " trigger: drift share 0.27 >= 0.15"
    )
    assert promotion_reason({**DECISION, "promoted": False}).startswith(
        "champion v2 kept, challenger v3 not promoted: roc_auc 0.8123"
    )


def test_a_refused_day_is_a_quarantine_alert_and_any_other_failure_a_task_failure():
    assert failure_event(QualityGateError("features 2026-10-02 not published")) == "quarantine"
    assert failure_event(DataError("missing partition")) == "task_failure"
    assert failure_event(ConfigError("bad key")) == "task_failure"
    assert failure_event(None) == "task_failure"
    assert failure_reason(DataError("missing partition")) == "pipelines.errors.DataError: missing partition"
    assert failure_reason("Task timed out") == "Task timed out"


def test_the_message_escapes_values_keeps_braces_and_drops_empty_links():
    alert = Alert(
        event="task_failure",
        dag_id="batch_scoring__m",
        day="2026-10-02",
        reason="bad <b>value</b> {{ not a template }}\nsecond line",
        links={"MLflow": "", "Airflow log": "http://airflow/dags/x?a=1&b=2"},
        task_id="score",
        run_id="manual__1",
    )
    assert alert.subject == "[mlops] task_failure: batch_scoring__m 2026-10-02: bad <b>value</b> {{ not a template }}"
    assert "bad &lt;b&gt;value&lt;/b&gt; {{ not a template }}" in alert.html()
    assert '<a href="http://airflow/dags/x?a=1&amp;b=2">' in alert.html() and "MLflow" not in alert.html()
    payload = alert.payload()
    assert payload["links"] == {"Airflow log": "http://airflow/dags/x?a=1&b=2"}
    assert (payload["event"], payload["dag_id"], payload["task_id"], payload["day"]) == (
        "task_failure",
        "batch_scoring__m",
        "score",
        "2026-10-02",
    )
    assert (
        payload["text"].splitlines()[0] == alert.subject
        and "Airflow log: http://airflow/dags/x?a=1&b=2" in payload["text"]
    )


def test_a_long_reason_is_cut_in_the_subject_only():
    alert = Alert(event="drift", dag_id="d", day="2026-10-02", reason="x" * 300)
    assert alert.subject == "[mlops] drift: d 2026-10-02: " + "x" * 119 + "…"
    assert alert.payload()["reason"] == "x" * 300
