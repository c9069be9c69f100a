"""docker-compose.yaml: parsed by docker-compose itself (no engine needed) and checked for structure and secrets."""

from __future__ import annotations

import importlib.util
import json
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
        # What compose makes of the file: every Airflow service on the CeleryExecutor, workers after the API server.
        resolved = yaml.safe_load(result.stdout)["services"]
        airflow = {name for name in resolved if name.startswith("airflow-")}
        assert {resolved[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] for name in airflow} == {"CeleryExecutor"}
        assert resolved["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
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
        "airflow-worker",
        "redis",
        "dask-scheduler",
        "dask-worker",
        "dask-worker-gpu",
    }
    assert expected <= set(SERVICES)
    assert SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
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


def _health_check(name: str) -> str:
    test = SERVICES[name]["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test[1:])


def test_health_checks_and_start_order():
    """Every long-running service of the data path says when it is up, each the way Airflow's own compose file
    checks it; services wait for what they need to be healthy, not merely started. (The one-shot services have
    none; the monitoring images' checks use their own wget, which cannot be run here.)"""
    checks = {name: _health_check(name) for name in SERVICES if "healthcheck" in SERVICES[name]}
    expected = {
        "postgres": "pg_isready -U ${POSTGRES_USER}",
        "redis": "redis-cli -u redis://localhost:6379 ping | grep -q PONG",
        "airflow-apiserver": "http://localhost:8080/api/v2/version",
        "airflow-scheduler": "http://localhost:8974/health",
        "airflow-dag-processor": "airflow jobs check --job-type DagProcessorJob --local",
        "airflow-triggerer": "airflow jobs check --job-type TriggererJob --local",
        "airflow-worker": (
            'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@$${HOSTNAME}"'
        ),
        "dask-scheduler": "http://localhost:8787/health",
        "mlflow": "http://localhost:5000/health",
        "minio": "mc ready local",
        "serving": "http://localhost:8000/readyz",
        "dask-worker": "http://localhost:8788/health",
        "dask-worker-gpu": "http://localhost:8788/health",
        "batch-metrics": "http://localhost:9100/metrics",
        "prometheus": "http://localhost:9090/-/healthy",
        "grafana": "http://localhost:3000/api/health",
    }
    assert set(checks) == set(expected)
    for name, fragment in expected.items():
        assert fragment in checks[name], (name, checks[name])
    # The scheduler's /health answers only when its health-check server is on.
    assert SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert SERVICES["redis"]["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD}"  # the ping authenticates
    healthy = {
        "mlflow": {"postgres"},
        "airflow-scheduler": {"postgres", "redis"},
        "airflow-worker": {"postgres", "redis", "airflow-apiserver", "mlflow", "dask-scheduler"},
        "dask-worker": {"dask-scheduler"},
        "dask-worker-gpu": {"dask-scheduler"},
    }
    for name, needs in healthy.items():
        waits = {dep for dep, spec in SERVICES[name]["depends_on"].items() if spec["condition"] == "service_healthy"}
        assert needs <= waits, (name, needs - waits)
    for name in (
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    ):
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name


def test_airflow_runs_tasks_on_scalable_celery_workers():
    """The CeleryExecutor as Airflow's own compose file sets it up: Redis as the broker, results in the metadata
    database, `airflow celery worker` services that `--scale` can multiply, task logs on a volume they share."""
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:${REDIS_PASSWORD}@redis:6379/0"
    # The driver named: for a bare postgresql:// SQLAlchemy 2.1 picks psycopg 3, which the image does not have.
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].endswith("@postgres:5432/airflow")
    assert SERVICES["redis"]["command"] == "redis-server --requirepass ${REDIS_PASSWORD}"
    assert "ports" not in SERVICES["redis"]  # reachable from the stack's network only
    worker = SERVICES["airflow-worker"]
    assert worker["command"] == "airflow celery worker"
    assert int(worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"]) >= 1
    assert not {"hostname", "container_name", "ports"} & set(worker)  # replicas would clash on any of these
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        assert "airflow-logs:/opt/mlops/airflow/logs" in SERVICES[name]["volumes"], name
        assert SERVICES[name]["environment"]["AIRFLOW_HOME"] == "/opt/mlops/airflow", name
    assert "mkdir -p /opt/mlops/metrics /opt/mlops/airflow/logs" in (REPO / "Dockerfile").read_text()


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
        "serving": ["127.0.0.1::8000"],  # an ephemeral loopback port per replica, so `--scale serving=N` works
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
    }


def test_no_secret_is_hard_coded():
    text = (REPO / "docker-compose.yaml").read_text()
    secretish = re.compile(r"(PASSWORD|SECRET|_KEY|ACCESS_KEY_ID)\w*:\s*(?!\$\{)\S+")
    assert not secretish.findall(text), secretish.findall(text)
    interpolated = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))  # $${NAME} is the container's own variable
    assert interpolated
    example = (REPO / ".env.example").read_text()
    for variable in interpolated:
        assert f"{variable}=" in example, f"{variable} is not documented in .env.example"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.unit
def test_airflow_init_creates_the_registry_pool():
    """Promotions and rollbacks run in this pool: without it their tasks would wait forever."""
    pool = re.search(r'REGISTRY_POOL = "(\w+)"', (REPO / "dags/_support.py").read_text()).group(1)
    shell, flag, script = SERVICES["airflow-init"]["command"]
    assert (shell, flag) == ("bash", "-c")
    assert script.startswith("airflow db migrate && ")
    assert f"airflow pools set {pool} 1 " in script


def _compose_env(service: str) -> dict[str, str]:
    """The service's environment without the values compose takes from .env (secrets)."""
    return {k: str(v) for k, v in SERVICES[service]["environment"].items() if "${" not in str(v)}


@pytest.mark.unit
def test_every_process_reads_the_stack_config_and_it_points_at_the_stack(monkeypatch):
    from pipelines.config import load_config

    for name in (
        "airflow-scheduler",
        "airflow-worker",
        "airflow-apiserver",
        "demo-data",
        "dask-worker",
        "dask-worker-gpu",
    ):
        assert SERVICES[name]["environment"]["MLOPS_CONFIG"] == "/opt/mlops/include/stack/config.yaml", name
    env = _compose_env("airflow-scheduler")
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    feast_redis = SERVICES["airflow-scheduler"]["environment"]["FEAST_REDIS"]
    assert feast_redis == "redis:6379,db=1,password=${REDIS_PASSWORD}"  # Redis's database 1; Celery uses 0
    monkeypatch.setenv("FEAST_REDIS", feast_redis.replace("${REDIS_PASSWORD}", "secret"))
    config = load_config(REPO / "include/stack/config.yaml")
    assert config.online_features and config.dataset.history["payments"].source == "s3://mlops/payments/*.parquet"
    online = {"type": "redis", "connection_string": "redis:6379,db=1,password=secret"}
    assert config.feature_store.online_store == online
    for name in ("serving", "airflow-worker"):  # the replicas that read and the workers that materialize
        assert SERVICES[name]["environment"]["FEAST_REDIS"] == feast_redis, name
    assert SERVICES["serving"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert config.dataset.source.startswith("s3://mlops/") and config.dataset.labels.startswith("s3://mlops/")
    assert config.storage.root == "s3://mlops/lake"
    assert config.storage.options == {"endpoint_url": env["AWS_ENDPOINT_URL"]} == {"endpoint_url": "http://minio:9000"}
    assert config.tracking_uri == env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert config.scheduler_address == env["DASK_SCHEDULER_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert "mlops" in SERVICES["minio-buckets"]["entrypoint"].split()[-2]  # the bucket the config uses is created


@pytest.mark.unit
def test_demo_data_is_loaded_once_the_buckets_and_mlflow_are_up():
    loader = SERVICES["demo-data"]
    assert loader["depends_on"]["minio-buckets"]["condition"] == "service_completed_successfully"
    assert loader["depends_on"]["mlflow"]["condition"] == "service_healthy"
    script = loader["command"].split()[1]
    assert (REPO / script).is_file() and "--bootstrap" in loader["command"]
    assert "COPY scripts ./scripts" in (REPO / "Dockerfile").read_text().splitlines()


def _load_demo_data_module():
    spec = importlib.util.spec_from_file_location("load_demo_data", REPO / "scripts/load_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_the_loader_writes_where_the_source_glob_reads():
    loader = _load_demo_data_module()
    files = [Path("events-2026-10-01.parquet"), Path("events-2026-10-02.parquet")]
    assert loader.target_folder("s3://mlops/raw/*.parquet", files) == "s3://mlops/raw"
    with pytest.raises(SystemExit, match="only its file name may be a pattern"):
        loader.target_folder("s3://mlops/*/events.parquet", files)
    with pytest.raises(SystemExit, match="would not read the demo's files"):
        loader.target_folder("s3://mlops/raw/*.csv", files)


@pytest.mark.unit
def test_gpu_workers_get_a_cuda_build_of_torch_and_the_rest_keep_the_cpu_build(tmp_path):
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    assert "ARG TORCH_VARIANT=cpu" in dockerfile
    gpu = SERVICES["dask-worker-gpu"]["build"]
    variant = gpu["args"]["TORCH_VARIANT"]
    assert variant == "cuda" and gpu["context"] == "."
    cpu_images = {
        s["image"]
        for n, s in SERVICES.items()
        if s.get("image", "").startswith("mlops-pipeline") and n != "dask-worker-gpu"
    }
    assert cpu_images == {"mlops-pipeline:latest"} != {SERVICES["dask-worker-gpu"]["image"]}
    assert COMPOSE["x-airflow"]["build"] == "."  # the CPU image: the Dockerfile's default variant
    assert (
        'RUN pip install --no-cache-dir $(sh scripts/torch_build.sh "$TORCH_VARIANT") -r requirements.txt \\'
        in dockerfile
    )
    # Run the image's own choice of build: the GPU image keeps the lock as PyPI serves it (PyPI's torch wheel is the
    # CUDA build), the CPU image changes only torch's build suffix and adds PyTorch's index.
    locked = (REPO / "constraints.txt").read_text().splitlines()
    version = next(line for line in locked if line.startswith("torch==")).removeprefix("torch==")
    assert "+" not in version  # the lock pins torch as PyPI serves it; the image picks the build
    for build, index in (("cuda", ""), ("cpu", "--extra-index-url https://download.pytorch.org/whl/cpu")):
        shutil.copy(REPO / "constraints.txt", tmp_path / "constraints.txt")
        chosen = subprocess.run(
            ["sh", str(REPO / "scripts/torch_build.sh"), build],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        image = (tmp_path / "constraints.image.txt").read_text().splitlines()
        changed = [(a, b) for a, b in zip(locked, image, strict=True) if a != b]
        assert (chosen.stdout.strip(), changed) == (
            (index, []) if build == "cuda" else (index, [(f"torch=={version}", f"torch=={version}+cpu")])
        )


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
    assert "batch-metrics:/opt/mlops/metrics" in SERVICES["airflow-worker"]["volumes"]  # the tasks run there
    assert SERVICES["airflow-worker"]["environment"]["MLOPS_METRICS_DIR"] == "/opt/mlops/metrics"
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
