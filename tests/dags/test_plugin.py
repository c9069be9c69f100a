"""The links plugin: Airflow loads it, and it turns task return values into MLflow UI addresses."""

from __future__ import annotations

import pytest
from mlops_links import REPORT, drift_report_url, mlflow_url

PROBE = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 10, 1, tz="UTC"), catchup=False)
def links_probe():
    @task(multiple_outputs=False)
    def check() -> dict:
        return {"day": "2026-10-18", "mlflow_run_id": "r1", "experiment_id": "7", "report_url": "/lake/r"}

    @task
    def nothing() -> None:
        return None

    check()
    nothing()


links_probe()
"""


@pytest.mark.e2e
def test_links_are_computed_from_a_real_task_result(airflow_db, tmp_path, monkeypatch):
    """A task runs under Airflow and returns a drift result; the links Airflow loaded from the plugins folder read
    that return value from the metadata database, as the API server does, and point at its MLflow run."""
    from airflow import plugins_manager
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    monkeypatch.setenv("MLFLOW_UI_URL", "http://mlflow.test:5000")
    (tmp_path / "links_probe.py").write_text(PROBE)
    bag = BundleDagBag(dag_folder=tmp_path, bundle_path=tmp_path)
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)  # a DAG run needs its DAG serialized; this one is outside the bundle
    run = bag.dags["links_probe"].test()
    links = {link.name: link for link in plugins_manager.get_global_operator_extra_links()}
    assert set(links) >= {"MLflow", "Drift report"}
    check, nothing = (run.get_task_instance(task_id).key for task_id in ("check", "nothing"))
    assert links["MLflow"].get_link(None, ti_key=check) == "http://mlflow.test:5000/#/experiments/7/runs/r1"
    assert links["Drift report"].get_link(None, ti_key=check) == (
        "http://mlflow.test:5000/#/experiments/7/runs/r1/artifactPath/drift/drift_report.html"
    )
    assert links["MLflow"].get_link(None, ti_key=nothing) == ""  # a task with no result: a disabled button


@pytest.mark.unit
def test_links_from_return_values(monkeypatch):
    monkeypatch.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5000/")
    trained = {"run_id": "abc", "model_name": "credit default", "version": "3", "metric": "roc_auc"}
    assert mlflow_url(trained) == "http://127.0.0.1:5000/#/models/credit%20default/versions/3"
    decision = {"model_name": "m", "challenger_version": "4", "promoted": True}
    assert mlflow_url(decision) == "http://127.0.0.1:5000/#/models/m/versions/4"
    drift = {
        "day": "2026-10-18",
        "mlflow_run_id": "r1",
        "experiment_id": "7",
        "report_url": "/lake/reports/date=2026-10-18",
    }
    assert mlflow_url(drift) == "http://127.0.0.1:5000/#/experiments/7/runs/r1"
    # The report file itself (MLflow's artifact view selects and renders it), not the collapsed folder.
    assert drift_report_url(drift) == (
        "http://127.0.0.1:5000/#/experiments/7/runs/r1/artifactPath/drift/drift_report.html"
    )
    assert mlflow_url({"day": "2026-10-18", "rows_in": 5}) == "" and mlflow_url(["x"]) == ""
    assert drift_report_url({"status": "skipped"}) == ""
    from pipelines.drift_report import REPORT_FOLDER, REPORT_HTML

    assert f"{REPORT_FOLDER}/{REPORT_HTML}" == REPORT  # where check_drift logs the report
    assert (
        drift_report_url({"report_url": "/lake/reports/date=2026-10-18", "mlflow_run_id": "r1"}) == ""
    )  # older results
