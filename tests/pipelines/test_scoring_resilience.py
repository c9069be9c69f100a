"""Scoring under bad input, a killed worker, and GPU/CPU worker pools (issue: robust batch scoring)."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client
from lakes import with_section
from sklearn.linear_model import LogisticRegression

from pipelines.cluster import local_cluster
from pipelines.scoring import ERROR, score_day
from pipelines.storage import Lake, Table
from pipelines.training import train_and_register
from pipelines.validation import DataError

pytestmark = pytest.mark.integration

START = date(2026, 10, 1)
TRAIN_END = date(2026, 10, 3)


class SlowLogistic(LogisticRegression):
    """A model slow enough (0.1 s a batch) that a worker can be killed while a run is in flight."""

    def predict_proba(self, X):
        time.sleep(0.1)
        return super().predict_proba(X)


class PickyLogistic(LogisticRegression):
    """A model that rejects whole batches containing a customer older than 95 (after scaling: a large value)."""

    def predict_proba(self, X):
        if (np.asarray(X)[:, 1] > 4.5).any():
            raise ValueError("age out of the range this model accepts")
        return super().predict_proba(X)


@pytest.fixture(scope="module")
def env(build_lake):
    """One lake + registry for the module: four extracted days and a champion trained on the first three."""
    return build_lake(4, TRAIN_END, monitoring={"sample_rate": 0.25})


def _with_model(config, name: str, estimator: str, **params):
    model = config.model.model_copy(update={"name": name, "estimator": estimator, "params": params})
    return config.model_copy(update={"model": model})


def _features(config, day: date) -> pd.DataFrame:
    return Lake.from_config(config).read(Table.FEATURES, day)


def _write_features(config, day: date, frame: pd.DataFrame, rows_per_group: int) -> None:
    Lake.from_config(config).write(Table.FEATURES, day, frame, row_group_rows=rows_per_group)


def _identity(result) -> None:
    assert result.rows_in == result.rows_scored + result.rows_dead_lettered


def test_outputs_carry_keys_and_the_log_is_a_stable_key_sample(env, dask_client):
    day = START + timedelta(days=3)
    result = score_day(env, day, "run-a", dask_client)
    _identity(result)
    logged = Lake.from_config(env).read(Table.PREDICTION_LOG, day)
    assert result.rows_logged == len(logged) and 0.15 < len(logged) / result.rows_scored < 0.35
    assert {
        "customer_id",
        "event_time",
        "income",
        "region",
        "prediction",
        "probability",
        "model_version",
        "run_id",
    } <= set(logged)
    score_day(env, day, "run-b", dask_client)
    again = Lake.from_config(env).read(Table.PREDICTION_LOG, day)
    assert sorted(again["customer_id"]) == sorted(logged["customer_id"])  # same keys in, rerun replaces
    assert set(again["run_id"]) == {"run-b"}
    assert result.device == "cpu"


def test_bad_input_corpus_is_dead_lettered_and_counts_hold(env, dask_client, tmp_path):
    day = date(2026, 11, 1)
    frame = _features(env, START + timedelta(days=3)).head(300).reset_index(drop=True)
    # An upstream that typed a number as text: a features table of its own (a Delta table's column has one type).
    env = with_section(env, "storage", root=str(tmp_path / "text-typed"))
    frame["income"] = frame["income"].astype("string")
    frame.loc[0, "income"] = pd.NA  # missing: imputed, scored
    frame.loc[1, "income"] = "lots"  # not a number
    frame.loc[2, "credit_utilization"] = np.inf  # not finite
    frame.loc[3, "debt_ratio"] = -np.inf
    frame.loc[4, "region"] = "atlantis"  # unseen category: ignored by the encoder, scored
    frame.loc[5, "customer_id"] = None  # no key
    frame.loc[6, "customer_id"] = frame.loc[7, "customer_id"]  # duplicate within a row group
    frame.loc[250, "customer_id"] = frame.loc[8, "customer_id"]  # duplicate across row groups
    _write_features(env, day, frame, rows_per_group=100)

    result = score_day(
        env.model_copy(update={"scoring": env.scoring.model_copy(update={"max_dead_letter_share": 0.05})}),
        day,
        "run-bad",
        dask_client,
    )
    _identity(result)
    assert (result.rows_in, result.rows_dead_lettered) == (300, 6)
    dead = Lake.from_config(env).read(Table.DEAD_LETTER, day)
    errors = dict(zip(dead["customer_id"].fillna("<none>"), dead[ERROR], strict=True))
    assert errors[frame.loc[1, "customer_id"]] == "income: not a number"
    assert errors[frame.loc[2, "customer_id"]] == "credit_utilization: not finite"
    assert errors["<none>"] == "customer_id: missing"
    assert "duplicate key" in errors[frame.loc[7, "customer_id"]]
    assert "earlier row group" in dead.loc[dead["customer_id"] == frame.loc[8, "customer_id"], ERROR].iloc[0]
    predictions = Lake.from_config(env).read(Table.PREDICTIONS, day)
    assert predictions["customer_id"].is_unique and len(predictions) == 294
    assert {frame.loc[0, "customer_id"], frame.loc[4, "customer_id"], frame.loc[8, "customer_id"]} <= set(
        predictions["customer_id"]
    )
    assert set(dead["run_id"]) == {"run-bad"}


def test_dead_letter_share_above_threshold_fails_without_publishing(env, dask_client):
    day = date(2026, 11, 2)
    frame = _features(env, START + timedelta(days=3)).head(100)
    frame.loc[frame.index[:10], "credit_utilization"] = np.inf
    _write_features(env, day, frame, rows_per_group=50)
    with pytest.raises(
        DataError, match=r"10 of 100 rows .* \(10.0%\) could not be scored, above scoring.max_dead_letter_share=1.0%"
    ):
        score_day(env, day, "run-x", dask_client)
    assert not Lake.from_config(env).exists(Table.PREDICTIONS, day)
    assert Lake.from_config(env).count_rows(Table.DEAD_LETTER, day) == 10


def test_rows_the_model_rejects_are_isolated_from_their_batch(env, dask_client):
    picky = _with_model(env, "picky", "test_scoring_resilience.PickyLogistic", max_iter=200)
    train_and_register(picky, TRAIN_END)
    day = date(2026, 11, 3)
    frame = _features(env, START + timedelta(days=3)).head(200).reset_index(drop=True)
    frame.loc[[17, 150], "age"] = 99.0  # each sinks its whole row group unless isolated
    _write_features(env, day, frame, rows_per_group=100)
    loose = picky.model_copy(update={"scoring": picky.scoring.model_copy(update={"max_dead_letter_share": 0.05})})
    result = score_day(loose, day, "run-p", dask_client)
    _identity(result)
    assert (result.rows_scored, result.rows_dead_lettered) == (198, 2)
    dead = Lake.from_config(env).read(Table.DEAD_LETTER, day)
    assert sorted(dead["customer_id"]) == sorted(frame.loc[[17, 150], "customer_id"])
    assert dead[ERROR].str.contains("ValueError: age out of the range").all()


def test_empty_partition_corrupt_file_and_missing_column(env, dask_client, tmp_path):
    empty = date(2026, 11, 4)
    _write_features(env, empty, _features(env, START).head(0), rows_per_group=10)
    result = score_day(env, empty, "run-e", dask_client)
    assert (result.rows_in, result.rows_scored, result.rows_dead_lettered) == (0, 0, 0)

    corrupt = date(2026, 11, 5)
    _write_features(env, corrupt, _features(env, START).head(10), rows_per_group=10)
    part = Path(Lake.from_config(env).files(Table.FEATURES, corrupt)[0])
    part.write_bytes(part.read_bytes()[:-20])
    with pytest.raises(DataError, match=rf"cannot read Parquet file .*date=2026-11-05/{part.name}"):
        score_day(env, corrupt, "run-c", dask_client)

    # A day written without a feature reads it as missing values (the Delta table has the column): scored, imputed.
    unset = date(2026, 11, 6)
    _write_features(env, unset, _features(env, START).head(10).drop(columns=["region"]), rows_per_group=10)
    assert score_day(env, unset, "run-u", dask_client).rows_scored == 10
    # Features that never had it (extracted with another config) cannot be scored by this model: named.
    other = with_section(env, "storage", root=str(tmp_path / "other-config"))
    _write_features(other, unset, _features(env, START).head(10).drop(columns=["region"]), rows_per_group=10)
    with pytest.raises(DataError, match=r"column\(s\) \['region'\] missing \(10 rows\)"):
        score_day(other, unset, "run-m", dask_client)
    assert not Lake.from_config(env).exists(Table.PREDICTIONS, corrupt)
    assert not Lake.from_config(other).exists(Table.PREDICTIONS, unset)


def test_killed_worker_mid_run_loses_and_duplicates_nothing(env):
    slow = _with_model(env, "slow", "test_scoring_resilience.SlowLogistic", max_iter=200)
    train_and_register(slow, TRAIN_END)
    day = date(2026, 11, 7)
    _write_features(env, day, _features(env, START + timedelta(days=3)), rows_per_group=20)  # 30 row groups
    stable = ["customer_id", "prediction", "probability"]
    with local_cluster(2) as cluster, Client(cluster) as client:
        clean = score_day(slow, day, "clean", client)
        expected = Lake.from_config(env).read(Table.PREDICTIONS, day)[stable].sort_values("customer_id")

        pids = list(client.run(os.getpid).values())
        outcome: dict = {}
        runner = threading.Thread(target=lambda: outcome.update(result=score_day(slow, day, "killed", client)))
        runner.start()
        folder = Path(Lake.from_config(env).partition(Table.PREDICTIONS, day))
        committed = {Path(f) for f in Lake.from_config(env).files(Table.PREDICTIONS, day)}
        deadline = time.monotonic() + 60  # the killed run's files: in the day's folder, not yet committed
        while time.monotonic() < deadline and len(set(folder.glob("*.parquet")) - committed) < 6:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive()
    result = outcome["result"]
    _identity(result)
    assert result.rows_scored == clean.rows_scored == 592
    got = Lake.from_config(env).read(Table.PREDICTIONS, day)
    assert got["customer_id"].is_unique and set(got["run_id"]) == {"killed"}
    pd.testing.assert_frame_equal(
        got[stable].sort_values("customer_id").reset_index(drop=True), expected.reset_index(drop=True)
    )


def test_gpu_pool_routing_with_declared_resources(env, dask_client, caplog):
    torch_config = _with_model(env, "torch_model", None).model_copy()
    torch_model = torch_config.model.model_copy(
        update={"flavor": "torch", "estimator": "pipelines.torch_model.TabularNet", "params": {"epochs": 3}}
    )
    torch_config = torch_config.model_copy(update={"model": torch_model})
    train_and_register(torch_config, TRAIN_END)
    day = START + timedelta(days=3)
    with local_cluster(1, gpu_workers=1) as cluster, Client(cluster) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        gpu = {a for a, w in workers.items() if w["resources"].get("GPU")}
        cpu = {a for a, w in workers.items() if w["resources"].get("CPU")}
        assert len(gpu) == len(cpu) == 1
        sklearn_result = score_day(env, day, "cpu-pool", client)
        torch_result = score_day(torch_config, day, "gpu-pool", client)
    assert set(sklearn_result.workers) == cpu
    assert set(torch_result.workers) == gpu
    assert torch_result.device == "cpu"  # the worker declares GPU=1, but there is no CUDA device here
    _identity(torch_result)
    predictions = Lake.from_config(env).read(Table.PREDICTIONS, day)
    assert predictions["probability"].between(0, 1).all() and len(predictions) == 592

    with caplog.at_level("WARNING"):  # the session's cluster has CPU workers only
        result = score_day(torch_config, day, "no-gpu", dask_client)
    assert "no Dask worker declares the GPU resource: scoring the torch model on CPU workers" in caplog.text
    assert result.rows_scored == 592 and result.device == "cpu"
