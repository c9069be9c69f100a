"""deploy/kubernetes/: the Helm values and manifests parse and name the image, config and settings the compose file
runs with (nothing here installs them: docs/kubernetes.md)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy/kubernetes"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
VALUES = yaml.safe_load((DEPLOY / "airflow-values.yaml").read_text())
MANIFESTS = {
    doc["kind"]: doc
    for file in ("mlops-env.yaml", "dask-cluster.yaml")
    for doc in yaml.safe_load_all((DEPLOY / file).read_text())
}


def _containers(pod_spec: dict) -> list[dict]:
    return pod_spec["spec"]["containers"]


def test_every_file_parses_as_kubernetes_objects_or_values():
    for path in DEPLOY.glob("*.yaml"):
        documents = list(yaml.safe_load_all(path.read_text()))
        assert documents and all(isinstance(doc, dict) for doc in documents), path
    assert set(MANIFESTS) == {"ConfigMap", "DaskCluster", "DaskWorkerGroup"}
    for doc in MANIFESTS.values():
        assert doc["apiVersion"] in ("v1", "kubernetes.dask.org/v1") and doc["metadata"]["name"]


def test_the_environment_is_the_compose_files_with_cluster_addresses():
    """The same config file and variables as every compose service; only the Dask scheduler's address is the
    operator's Service name, and credentials stay in a Secret."""
    env = MANIFESTS["ConfigMap"]["data"]
    compose = {k: str(v) for k, v in COMPOSE["x-mlops-env"].items() if "${" not in str(v)}
    assert set(env) == set(compose) | {"MLOPS_METRICS_DIR"}
    differing = {k for k in compose if env[k] != compose[k]}
    assert differing == {"DASK_SCHEDULER_ADDRESS"}
    cluster = MANIFESTS["DaskCluster"]["metadata"]["name"]
    port = MANIFESTS["DaskCluster"]["spec"]["scheduler"]["service"]["ports"][0]["port"]
    assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://{cluster}-scheduler:{port}"
    assert compose["DASK_SCHEDULER_ADDRESS"].endswith(f":{port}")
    assert env["MLOPS_METRICS_DIR"] == SERVICES["airflow-worker"]["environment"]["MLOPS_METRICS_DIR"]
    assert (REPO / env["MLOPS_CONFIG"].replace("/opt/mlops/", "")).is_file()
    assert not {k for k in env if re.search("SECRET|PASSWORD|ACCESS_KEY", k)}


def test_the_dask_cluster_is_the_compose_files_with_a_cpu_and_a_gpu_worker_group():
    cluster, gpu = MANIFESTS["DaskCluster"]["spec"], MANIFESTS["DaskWorkerGroup"]["spec"]
    (scheduler,) = _containers(cluster["scheduler"])
    (cpu_worker,) = _containers(cluster["worker"])
    (gpu_worker,) = _containers(gpu["worker"])
    assert gpu["cluster"] == MANIFESTS["DaskCluster"]["metadata"]["name"]
    assert scheduler["image"] == cpu_worker["image"] == SERVICES["dask-worker"]["image"] == "mlops-pipeline:latest"
    assert gpu_worker["image"] == SERVICES["dask-worker-gpu"]["image"] == "mlops-pipeline:gpu"
    assert scheduler["args"] == shlex.split(SERVICES["dask-scheduler"]["command"])
    address = MANIFESTS["ConfigMap"]["data"]["DASK_SCHEDULER_ADDRESS"]
    for container, service in ((cpu_worker, "dask-worker"), (gpu_worker, "dask-worker-gpu")):
        compose = shlex.split(SERVICES[service]["command"])
        assert container["args"][: len(compose)] == [address if a.startswith("tcp://") else a for a in compose]
        assert {"configMapRef": {"name": "mlops-env"}} in container["envFrom"]
    assert "--resources" in cpu_worker["args"] and "CPU=1" in cpu_worker["args"]
    assert "GPU=1" in gpu_worker["args"] and gpu_worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in cpu_worker["resources"]["limits"]
    assert SERVICES["dask-worker"]["deploy"]["replicas"] == cluster["worker"]["replicas"]
    assert scheduler["readinessProbe"]["httpGet"]["path"] == "/health"  # the compose file's health check
    for worker in (cpu_worker, gpu_worker):
        assert worker["readinessProbe"]["httpGet"]["path"] == "/health"


def test_airflow_runs_the_compose_files_image_settings_and_celery_workers():
    airflow = COMPOSE["x-airflow"]
    env = airflow["environment"]
    repository, tag = airflow["image"].split(":")
    assert (VALUES["images"]["airflow"]["repository"], VALUES["images"]["airflow"]["tag"]) == (repository, tag)
    assert (VALUES["defaultAirflowRepository"], VALUES["defaultAirflowTag"]) == (repository, tag)
    assert VALUES["executor"] == env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    pinned = next(
        line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("apache-airflow==")
    )
    assert VALUES["airflowVersion"] == pinned.removeprefix("apache-airflow==")
    assert (
        VALUES["airflowHome"] == env["AIRFLOW_HOME"]
        and {"name": "AIRFLOW_HOME", "value": env["AIRFLOW_HOME"]} in VALUES["env"]
    )
    core = VALUES["config"]["core"]
    assert core["dags_folder"] == env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert core["plugins_folder"] == env["AIRFLOW__CORE__PLUGINS_FOLDER"]
    assert core["load_examples"] == env["AIRFLOW__CORE__LOAD_EXAMPLES"]
    worker_env = SERVICES["airflow-worker"]["environment"]
    assert VALUES["config"]["celery"]["worker_concurrency"] == int(worker_env["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
    visibility = env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"]
    assert VALUES["config"]["celery_broker_transport_options"]["visibility_timeout"] == int(visibility)
    assert "mlops-env" in VALUES["extraEnvFrom"] and "mlops-s3" in VALUES["extraEnvFrom"]
    # airflow-init's script, as the chart's migration job.
    assert VALUES["migrateDatabaseJob"]["args"] == SERVICES["airflow-init"]["command"]
    assert VALUES["workers"]["args"][-1] == f"exec {SERVICES['airflow-worker']['command']}"
    assert VALUES["redis"]["enabled"] and VALUES["dagProcessor"]["enabled"]


def test_airflow_health_checks_are_the_compose_files_and_need_nothing_from_the_apache_airflow_image():
    def compose_check(name: str) -> str:
        return " ".join(SERVICES[name]["healthcheck"]["test"][1:])

    for component, service in (("dagProcessor", "airflow-dag-processor"), ("triggerer", "airflow-triggerer")):
        assert " ".join(VALUES[component]["livenessProbe"]["command"]) == compose_check(service), component
    scheduler = ["airflow", "jobs", "check", "--job-type", "SchedulerJob", "--local"]  # compose asks its /health
    assert (
        VALUES["scheduler"]["livenessProbe"]["command"] == VALUES["scheduler"]["startupProbe"]["command"] == scheduler
    )
    ping = VALUES["workers"]["livenessProbe"]["command"][-1]
    assert ping == compose_check("airflow-worker").replace("$${HOSTNAME}", "$(hostname)")
    text = (DEPLOY / "airflow-values.yaml").read_text()
    assert "/entrypoint" not in re.sub(r"#.*", "", text) and "/clean-logs" not in re.sub(r"#.*", "", text)
    for component in ("scheduler", "dagProcessor", "triggerer", "workers"):
        assert VALUES[component]["logGroomerSidecar"]["enabled"] is False, component


def _secretish(node: object, path: str = "") -> list[str]:
    """Keys that look like a password, key or token and hold a value (names of Secrets excepted)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            named = re.search(r"(?i)pass|secret|token|jwt", str(key)) and not re.search(
                r"(?i)secretname$|secretref$", key
            )
            if named and value not in (None, "", {}):
                found.append(f"{path}.{key}")
            found += _secretish(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _secretish(item, f"{path}[{index}]")
    return found


def test_no_secret_is_in_the_files():
    for path in DEPLOY.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            assert _secretish(document) == [], path
    assert _secretish({"redis": {"password": "x"}}) == [".redis.password"]  # the check itself finds one
