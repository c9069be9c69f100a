"""Airflow plugin: links from a task instance to what it produced in MLflow.

- **MLflow**: the registered model version a training/retraining task produced, or the MLflow run of a drift
  check, promotion decision or rollback.
- **Drift report**: the day's HTML report (Evidently's, with the retraining decision on top), opened in the
  artifact view of the day's drift run (``#/experiments/E/runs/R/artifactPath/drift/drift_report.html``: the
  MLflow UI selects that file and renders it), on the ``check`` task (the decided day's).

Airflow 3 evaluates global links in the API server when the UI asks for a task instance's links, so they read the
task's return value from the metadata database; the UI shows them as buttons (empty ones disabled). The MLflow
UI's address comes from ``MLFLOW_UI_URL`` (default http://127.0.0.1:5000, where `make mlflow-ui` serves it).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink


def _base() -> str:
    return os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def mlflow_url(result: Any) -> str:
    """The MLflow page for a task's return value; empty when the task produced nothing in MLflow."""
    if not isinstance(result, dict):
        return ""
    experiment, run = result.get("experiment_id"), result.get("mlflow_run_id") or result.get("run_id")
    if result.get("model_name") and result.get("version"):
        return f"{_base()}/#/models/{quote(result['model_name'])}/versions/{result['version']}"
    if result.get("model_name") and result.get("challenger_version"):
        return f"{_base()}/#/models/{quote(result['model_name'])}/versions/{result['challenger_version']}"
    if experiment and run:
        return f"{_base()}/#/experiments/{experiment}/runs/{run}"
    return ""


REPORT = "drift/drift_report.html"  # pipelines.drift_report's REPORT_FOLDER/REPORT_HTML (no pipelines import here)


def drift_report_url(result: Any) -> str:
    """The drift run's artifact page with the HTML report opened (the MLflow UI renders it there), not the folder."""
    if not isinstance(result, dict) or not result.get("report_url"):
        return ""
    experiment, run = result.get("experiment_id"), result.get("mlflow_run_id")
    return f"{_base()}/#/experiments/{experiment}/runs/{run}/artifactPath/{REPORT}" if experiment and run else ""


def return_value(ti_key: Any) -> Any:
    """The task instance's return value, read from the metadata database.

    Global links run in the API server (``get_extra_links`` calls ``get_link`` there). Airflow 3.3 has no public
    XCom reader for that process: the Task SDK's ``XCom.get_value(ti_key=..., key=...)``, which provider links
    use, talks to a running task's supervisor and fails outside a task (links declared on an operator are computed
    in the worker and stored, which global links are not). So this is the query Airflow's own ``XComOperatorLink``
    runs in the API server, through the same model; tests/dags/test_plugin.py checks it against a real task run.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=ti_key.run_id,
        key="return_value",
        dag_ids=ti_key.dag_id,
        task_ids=ti_key.task_id,
        map_indexes=ti_key.map_index,
    )
    with create_session() as session:
        row = session.execute(query.with_only_columns(XComModel.value)).first()
    return XComModel.deserialize_value(row) if row is not None else None


class MlflowLink(BaseOperatorLink):
    name = "MLflow"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return mlflow_url(return_value(ti_key))


class DriftReportLink(BaseOperatorLink):
    name = "Drift report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return drift_report_url(return_value(ti_key))


class MlopsLinksPlugin(AirflowPlugin):
    name = "mlops_links"
    global_operator_extra_links = [MlflowLink(), DriftReportLink()]  # noqa: RUF012 (Airflow's plugin API)
