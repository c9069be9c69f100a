"""The same pipeline code against real services started as processes on 127.0.0.1: S3, Dask, MLflow server."""

from __future__ import annotations

import json
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import boto3
import pandas as pd
import pytest
from lakes import append_while_overwriting, extract_and_train, rewrite_while_reading, write_config
from services import dask_cluster, mlflow_server, moto_s3

from pipelines.cluster import dask_client
from pipelines.config import load_config
from pipelines.features import extract_features
from pipelines.promotion import evaluate_and_promote, train_challenger
from pipelines.scoring import score_day
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register

pytestmark = pytest.mark.integration

START = date(2026, 10, 1)
CREDENTIALS = {"key": "testing", "secret": "testing"}


def test_chain_with_source_and_lake_on_s3(tmp_path, raw_data, dask_client, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_s3(tmp_path) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="mlops")
        for kind in ("raw", "labels"):
            for file in sorted((raw_data / kind).glob("*.parquet"))[:5]:
                s3.upload_file(str(file), "mlops", f"incoming/{kind}/{file.name}")
        config = load_config(
            write_config(
                tmp_path,
                raw_data,
                dataset={
                    "source": "s3://mlops/incoming/raw/*.parquet",
                    "labels": "s3://mlops/incoming/labels/*.parquet",
                },
                storage={"root": "s3://mlops/lake", "options": {"endpoint_url": endpoint, **CREDENTIALS}},
                training={"window_days": 3},
            )
        )
        for i in range(4):
            result = extract_features(config, START + timedelta(days=i))
            assert (result.rows_valid, result.rows_quarantined) == (592, 8)
        train_and_register(config, START + timedelta(days=2))
        scored = score_day(config, START + timedelta(days=3), "s3-run", dask_client)
        assert scored.rows_scored == 592 and scored.predictions_url.startswith("s3://mlops/lake/")

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlops", Prefix="lake/")["Contents"]]
        for table in ("features", "quarantine", "predictions", "prediction_log"):  # Delta tables, on S3 as well
            assert f"lake/{table}/_delta_log/00000000000000000000.json" in keys
        lake = Lake.from_config(config)
        assert lake.days(Table.FEATURES) == [START + timedelta(days=i) for i in range(4)]
        assert len(lake.files(Table.PREDICTIONS, START + timedelta(days=3))) == 3  # one file per row group
        # A rerun replaces the day on S3 as well: no duplicates.
        score_day(config, START + timedelta(days=3), "s3-rerun", dask_client)
        predictions = lake.read(Table.PREDICTIONS, START + timedelta(days=3))
        assert len(predictions) == 592 and set(predictions["run_id"]) == {"s3-rerun"}


def _s3_lake(tmp_path, endpoint: str) -> Lake:
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket="mlops")
    return Lake("s3://mlops/lake", {"endpoint_url": endpoint, **CREDENTIALS})


def test_on_s3_a_reader_sees_the_old_day_or_the_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_s3(tmp_path) as endpoint:
        reads, seen = rewrite_while_reading(_s3_lake(tmp_path, endpoint), START)
    assert reads > 0 and seen >= 2  # the reader overlapped the rewrites, and every read was one whole version


def test_on_s3_online_appends_and_a_batch_rerun_keep_each_others_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_s3(tmp_path) as endpoint:
        append_while_overwriting(_s3_lake(tmp_path, endpoint), START)


def test_scoring_on_an_external_cluster_with_cpu_and_gpu_workers(tmp_path, config, monkeypatch):
    extract_and_train(config, 4, START + timedelta(days=2))
    with dask_cluster(tmp_path, [["--resources", "CPU=1"], ["--resources", "GPU=1"]]) as address:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
        config = load_config(Path(tmp_path) / "config.yaml")
        assert config.scheduler_address == address
        with dask_client(config) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            cpu = {a for a, w in workers.items() if w["resources"].get("CPU")}
            result = score_day(config, START + timedelta(days=3), "external", client)
    assert result.rows_scored == 592 and set(result.workers) == cpu


def _rest(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}", timeout=10) as response:
        return json.loads(response.read())


def test_train_register_and_promote_through_an_mlflow_server(tmp_path, raw_data, dask_client, monkeypatch):
    with mlflow_server(tmp_path) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        config = load_config(
            write_config(
                tmp_path,
                raw_data,
                training={"window_days": 3},
                promotion={"bootstrap": 100},
                monitoring={"sample_rate": 1.0},
            )
        )
        assert config.tracking_uri == url
        assert extract_and_train(config, 10, START + timedelta(days=2)).version == "1"
        challenger = train_challenger(config, START + timedelta(days=9), "integration")
        decision = evaluate_and_promote(config, START + timedelta(days=9), challenger, "integration")
        assert decision.promoted, decision

        name = config.model.name
        champion = _rest(url, f"registered-models/alias?name={name}&alias=champion")["model_version"]
        previous = _rest(url, f"registered-models/alias?name={name}&alias=previous_champion")["model_version"]
        assert (champion["version"], previous["version"]) == (challenger, "1")
        assert {t["key"]: t["value"] for t in champion["tags"]}["decision.promoted"] == "True"
        reference = pd.read_parquet(
            __import__("mlflow").artifacts.download_artifacts(
                run_id=champion["run_id"], artifact_path="reference/reference.parquet"
            )
        )
        assert len(reference) > 0
        assert champion["description"].startswith(f"**Promoted on {START + timedelta(days=9)}**: v{challenger}")
        _drift_report_opens_in_the_mlflow_ui(config, url, tmp_path, dask_client, monkeypatch)


def _drift_report_opens_in_the_mlflow_ui(config, url: str, tmp_path: Path, client, monkeypatch) -> None:
    """The Airflow "Drift report" button, followed in Chromium: the MLflow UI shows the report file itself in its
    HTML viewer (before, the button landed on a collapsed ``drift/`` folder with no file open)."""
    import shutil
    import subprocess

    from mlops_links import drift_report_url

    from pipelines.monitoring import check_drift
    from pipelines.retrain_gate import decide_retraining

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (`make test` installs Debian's chromium when run as root)")
    day = START + timedelta(days=9)
    score_day(config, day, "score-ui", client)
    decision = decide_retraining(config, check_drift(config, day))
    monkeypatch.setenv("MLFLOW_UI_URL", url)
    link = drift_report_url(decision)
    assert link.endswith("/artifactPath/drift/drift_report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}"]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=30000", "--dump-dom", link],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'class="mlflow-html-iframe"' in dom and "drift/drift_report.html" in dom, dom[-2000:]
