"""Alert wiring in the DAGs: every task of every model's DAGs alerts on failure with its own config, and a
channel that cannot be reached is logged without failing the task that sends."""

from __future__ import annotations

import logging
import socket
from types import SimpleNamespace

import pytest
from alert_inbox import SMTP_ALERTS

from _alerts import notify, task_day
from _support import models
from pipelines.config import AlertsConfig, load_config

pytestmark = pytest.mark.unit


def test_every_task_of_every_model_alerts_on_failure_with_its_own_config(dag_bag):
    configs = {model.name: model.config for model in models()}
    assert len(configs) == 2
    for dag_id, dag in dag_bag.dags.items():
        config = configs[dag_id.split("__", 1)[1]]
        for task in dag.tasks:
            callbacks = [(type(cb).__name__, cb.config_path) for cb in task.on_failure_callback]
            assert callbacks == [("FailureAlert", config)], f"{dag_id}.{task.task_id}"


def _context(**params) -> dict:
    return {
        "dag": SimpleNamespace(dag_id="batch_scoring__credit_default"),
        "ti": SimpleNamespace(task_id="score", log_url="http://airflow/log"),
        "task": SimpleNamespace(op_kwargs={"day": "2026-10-04"}),
        "run_id": "manual__1",
        "params": params,
    }


def test_a_mapped_task_alerts_for_its_own_day():
    assert task_day(_context()) == "2026-10-04"
    assert task_day({**_context(date="2026-10-05"), "task": SimpleNamespace(op_kwargs={})}) == "2026-10-05"


def test_an_unreachable_channel_is_logged_and_the_task_goes_on(monkeypatch, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_ALERTS_SMTP",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port},'
        ' "extra": {"disable_ssl": true, "disable_tls": true, "from_email": "a@b.test", "timeout": 2}}',
    )
    config = load_config("include/config/demo.yaml")
    alerting = config.model_copy(update={"alerts": AlertsConfig.model_validate(SMTP_ALERTS)})
    assert notify(config, _context(), "task_failure", "boom") == []  # no channel configured: nothing tried
    with caplog.at_level(logging.ERROR):
        assert notify(alerting, _context(), "task_failure", "boom") == []
    assert (
        "task_failure alert for batch_scoring__credit_default 2026-10-04 not sent through smtp:mlops_alerts_smtp"
        in caplog.text
    )
    assert "ConnectionRefusedError" in caplog.text  # the connection was found and the server tried
