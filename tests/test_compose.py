"""docker-compose.yaml: parsed by docker-compose itself (no engine needed) and checked for structure and secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

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
    """The UIs the README lists are published, each on 127.0.0.1 only, and nothing else is."""
    published = {
        name: [str(port) for port in service["ports"]] for name, service in SERVICES.items() if "ports" in service
    }
    assert published == {
        "minio": ["127.0.0.1:9001:9001"],
        "mlflow": ["127.0.0.1:5000:5000"],
        "airflow-apiserver": ["127.0.0.1:8080:8080"],
        "dask-scheduler": ["127.0.0.1:8787:8787"],
    }


def test_no_secret_is_hard_coded():
    text = (REPO / "docker-compose.yaml").read_text()
    secretish = re.compile(r"(PASSWORD|SECRET|_KEY|ACCESS_KEY_ID)\w*:\s*(?!\$\{)\S+")
    assert not secretish.findall(text), secretish.findall(text)
    assert re.findall(r"\$\{(\w+)\}", text)
    example = (REPO / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)\}", text)):
        assert f"{variable}=" in example, f"{variable} is not documented in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
