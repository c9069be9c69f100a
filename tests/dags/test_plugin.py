"""The links plugin: Airflow loads it, and it turns task return values into MLflow UI addresses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
sys.path.insert(0, str(PLUGINS))
from mlops_links import MlopsLinksPlugin, drift_report_url, mlflow_url  # noqa: E402


def test_airflow_loads_the_plugin_and_its_global_links():
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()  # the session's plugins folder is this repository's
    assert errors == {}
    loaded = {p.name: p for p in plugins}
    assert "mlops_links" in loaded
    assert {link.name for link in loaded["mlops_links"].global_operator_extra_links} == {"MLflow", "Drift report"}
    assert MlopsLinksPlugin.name == "mlops_links"


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
    assert drift_report_url(drift) == "http://127.0.0.1:5000/#/experiments/7/runs/r1/artifacts"
    assert mlflow_url({"day": "2026-10-18", "rows_in": 5}) == "" and mlflow_url(["x"]) == ""
    assert drift_report_url({"status": "skipped"}) == ""
    assert (
        drift_report_url({"report_url": "/lake/reports/date=2026-10-18", "mlflow_run_id": "r1"}) == ""
    )  # older results
