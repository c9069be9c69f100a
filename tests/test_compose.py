"""docker-compose.yaml: parsed by docker-compose itself (no engine needed) and checked for structure and secrets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_docker_compose_validates_the_file(tmp_path):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (CI installs Debian's docker-compose in .ci/run)")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    for profile in ([], ["--profile", "gpu"]):
        result = subprocess.run(
            [
                binary,
                "--project-directory",
                str(REPO),
                "--env-file",
                str(tmp_path / ".env"),
                "-f",
                str(REPO / "docker-compose.yaml"),
                *profile,
                "config",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # the assertion below shows stderr
        )
        assert result.returncode == 0, result.stderr
    assert "dask-worker-gpu" in result.stdout


def test_the_whole_stack_is_there():
    expected = {
        "postgres",
        "minio",
        "minio-buckets",
        "mlflow",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "dask-scheduler",
        "dask-worker",
        "dask-worker-gpu",
    }
    assert expected <= set(SERVICES)
    assert SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert "--serve-artifacts" in SERVICES["mlflow"]["command"] and "s3://" in SERVICES["mlflow"]["command"]
    assert "mc mb" in SERVICES["minio-buckets"]["entrypoint"]


def test_gpu_workers_sit_behind_a_profile_with_a_device_reservation():
    gpu = SERVICES["dask-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert "--resources GPU=1" in gpu["command"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "--resources CPU=1" in SERVICES["dask-worker"]["command"]
    assert "profiles" not in SERVICES["dask-worker"]


def test_health_checks_and_start_order():
    for name in ("postgres", "minio", "mlflow", "airflow-apiserver"):
        assert "healthcheck" in SERVICES[name], name
    assert SERVICES["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_ports_bind_to_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_no_secret_is_hard_coded():
    text = (REPO / "docker-compose.yaml").read_text()
    secretish = re.compile(r"(PASSWORD|SECRET|_KEY|ACCESS_KEY_ID)\w*:\s*(?!\$\{)\S+")
    assert not secretish.findall(text), secretish.findall(text)
    assert re.findall(r"\$\{(\w+)\}", text)
    example = (REPO / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)\}", text)):
        assert f"{variable}=" in example, f"{variable} is not documented in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.unit
def test_serving_prometheus_and_grafana_are_wired():
    serving = SERVICES["serving"]
    assert "pipelines.serving" in serving["command"] and "--port 8000" in serving["command"]
    assert serving["ports"] == ["127.0.0.1::8000"]  # an ephemeral loopback port per replica: `--scale` works
    assert "readyz" in " ".join(serving["healthcheck"]["test"])
    assert serving["depends_on"]["mlflow"]["condition"] == "service_healthy"
    prometheus = yaml.safe_load((REPO / "monitoring/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["serving"]["dns_sd_configs"][0]["names"] == ["serving"]  # every replica, found by DNS
    assert jobs["dask"]["static_configs"][0]["targets"] == ["dask-scheduler:8787"]
    assert jobs["batch"]["static_configs"][0]["targets"] == ["batch-metrics:9100"]
    mounted = " ".join(SERVICES["prometheus"]["volumes"])
    assert "monitoring/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounted
    # The batch path writes its textfiles where the collector reads them.
    assert "batch-metrics:/opt/mlops/metrics" in SERVICES["airflow-scheduler"]["volumes"]
    assert SERVICES["airflow-scheduler"]["environment"]["MLOPS_METRICS_DIR"] == "/opt/mlops/metrics"
    assert "--collector.textfile.directory=/metrics" in SERVICES["batch-metrics"]["command"]
    assert "batch-metrics:/metrics:ro" in SERVICES["batch-metrics"]["volumes"]


@pytest.mark.unit
def test_grafana_dashboard_is_provisioned_with_every_panel_it_promises():
    grafana = SERVICES["grafana"]
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    provider = yaml.safe_load((REPO / "monitoring/grafana/provisioning/dashboards/mlops.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    source = yaml.safe_load((REPO / "monitoring/grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    dashboard = json.loads((REPO / "monitoring/grafana/dashboards/mlops.json").read_text())
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for series in (
        "serving_request_seconds_bucket",  # latency
        "serving_rows_total",  # throughput
        "serving_errors_total",  # errors
        "serving_queue_rows",
        "serving_batch_rows",
        "serving_model_version",
        "mlops_drift_share",
        "mlops_realized_metric",
        "mlops_batch_rows_scored",
    ):
        assert series in expressions, series
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["datasources"][0]["uid"]}
