"""Alerts from the DAGs, through Airflow's notifiers: a task's final failure (``on_failure_callback`` on every task
of every model's DAGs), drift starting a retraining, a promotion decision, and a quarantine spike.

Channels and events come from the config's ``alerts`` section; servers, URLs and credentials from Airflow
connections (``AIRFLOW_CONN_<ID>`` or a secrets backend), never from the config file or git. Messages are sent by
the maintained providers' notifiers (``SmtpNotifier``, ``HttpNotifier``) from the task's own process, after the
result is recorded: an alert that cannot be sent is logged and never fails or retries the task (a retry would
repeat a promotion for the sake of an e-mail).

Light at import, as the DAG processor imports it with every DAG file: the providers, ``pipelines`` and the links
plugin are imported when an alert is sent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from _schedule import partition_day

if TYPE_CHECKING:
    from pipelines.alerts import Alert
    from pipelines.config import AlertEvent, AlertsConfig, Config

log = logging.getLogger(__name__)


def task_day(context: Any) -> str:
    """The day a task instance works on: a mapped task's own ``day`` (a backlog or late day), else the run's."""
    day = (getattr(context.get("task"), "op_kwargs", None) or {}).get("day")
    return str(day) if day else partition_day(context).isoformat()


def result_links(result: dict[str, Any] | None) -> dict[str, str]:
    """The MLflow and drift-report links of a task's result, built by the plugin behind the UI's buttons."""
    if not result:
        return {}
    from mlops_links import drift_report_url, mlflow_url  # Airflow puts the plugins folder on sys.path

    return {"MLflow": mlflow_url(result), "Drift report": drift_report_url(result)}


def _notifiers(alerts: AlertsConfig, alert: Alert) -> dict[str, BaseNotifier]:
    """One provider notifier per configured channel, carrying the composed message."""
    notifiers: dict[str, BaseNotifier] = {}
    if alerts.smtp is not None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers[f"smtp:{alerts.smtp.conn_id}"] = SmtpNotifier(
            to=alerts.smtp.to,
            from_email=alerts.smtp.from_email,
            subject=alert.subject,
            html_content=alert.html(),
            smtp_conn_id=alerts.smtp.conn_id,
        )
    if alerts.webhook is not None:
        from airflow.providers.http.notifications.http import HttpNotifier

        notifiers[f"webhook:{alerts.webhook.conn_id}"] = HttpNotifier(
            http_conn_id=alerts.webhook.conn_id, endpoint=alerts.webhook.endpoint, json=alert.payload()
        )
    return notifiers


def notify(
    config: Config,
    context: Any,
    event: AlertEvent,
    reason: str,
    *,
    result: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
    day: str | None = None,
) -> list[str]:
    """Send one alert through every configured channel if ``event`` is selected; returns the channels that took it.

    ``result`` (a task's return value) gives the MLflow and drift-report links. Each notifier's ``notify`` is
    called directly rather than through ``__call__``, which would render the message as a Jinja template: an
    error message holding ``{{`` must arrive as it was written.
    """
    if not config.alerts.wants(event):
        return []
    from pipelines.alerts import Alert

    ti = context.get("ti")
    alert = Alert(
        event=event,
        dag_id=context["dag"].dag_id,
        task_id=getattr(ti, "task_id", ""),
        run_id=context.get("run_id", ""),
        day=day or (result or {}).get("day") or task_day(context),
        reason=reason,
        links={**result_links(result), **(links or {})},
    )
    sent = []
    for channel, notifier in _notifiers(config.alerts, alert).items():
        try:
            notifier.notify(context)
        except Exception:
            log.exception("%s alert for %s %s not sent through %s", event, alert.dag_id, alert.day, channel)
        else:
            log.info("%s alert for %s %s sent through %s", event, alert.dag_id, alert.day, channel)
            sent.append(channel)
    return sent


def notify_drift(config: Config, context: Any, drift: dict[str, Any], reason: str) -> list[str]:
    """Drift monitoring decided to retrain: the day checked, why, and its MLflow run and report."""
    return notify(config, context, "drift", reason, result=drift)


def notify_promotion(config: Config, context: Any, decision: dict[str, Any]) -> list[str]:
    """A challenger was promoted or kept: both metrics, the verdict's reason, the challenger's MLflow version."""
    from pipelines.alerts import promotion_reason

    return notify(config, context, "promotion", promotion_reason(decision), result=decision)


def notify_quarantine(config: Config, context: Any, extracted: dict[str, Any]) -> list[str]:
    """A published day whose quarantine share reached ``alerts.quarantine_warn_share``."""
    from pipelines.alerts import quarantine_warning

    warning = quarantine_warning(extracted, config.alerts)
    if warning is None:
        return []
    return notify(config, context, "quarantine", warning, links={"Quarantine": extracted["quarantine_url"]})


class FailureAlert(BaseNotifier):
    """``on_failure_callback`` of every task of one model's DAGs, holding that model's config path.

    Airflow 3 runs it in the failed task's own process once no retry is left (``dag.test()`` runs it in-process
    too), with the error as ``context["exception"]``. A day refused by the quality gate is sent as a
    ``quarantine`` alert, any other failure as ``task_failure``, with the task's log as the link.
    """

    def __init__(self, config_path: str) -> None:
        super().__init__()
        self.config_path = config_path

    def notify(self, context: Any) -> None:
        from pipelines.alerts import failure_event, failure_reason
        from pipelines.config import load_config
        from pipelines.errors import ConfigError

        try:
            config = load_config(self.config_path)
        except ConfigError as exc:  # the failure may be this very config: the task's own log says it all
            log.warning("no failure alert: the config cannot be read (%s)", exc)
            return
        error = context.get("exception")
        ti = context.get("ti")
        notify(
            config,
            context,
            failure_event(error),
            failure_reason(error),
            links={"Airflow log": getattr(ti, "log_url", "")},
        )
