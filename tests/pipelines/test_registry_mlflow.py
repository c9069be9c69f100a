"""The MLflow registry keeps its store to itself: no process-wide tracking URI, no active run, no environment."""

from __future__ import annotations

import os

import pytest

from pipelines.registry import RunKind, connect, tracked_run

pytestmark = pytest.mark.integration


def test_connecting_and_recording_leave_the_process_wide_store_alone(config, tmp_path):
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = connect(config)
    with tracked_run(store, RunKind.DRIFT, "drift-2026-10-05", {"day": "2026-10-05"}) as run_id:
        store.log(run_id, metrics={"drift_share": 0.1})
        assert mlflow.active_run() is None
    assert store.run(run_id).metrics == {"drift_share": 0.1}
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before != (config.tracking_uri,) * 2
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_EXPERIMENT_NAME" not in os.environ


def test_a_sqlite_store_keeps_a_write_ahead_log_and_is_read_while_written(config):
    """Write-ahead-log mode: a reader (``mlflow ui`` beside a running DAG) does not block the writer."""
    import sqlite3

    store = connect(config)
    path = config.tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(path) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM runs").fetchone()  # a read transaction held open
        with tracked_run(store, RunKind.DRIFT, "drift-2026-10-06", {"day": "2026-10-06"}) as run_id:
            store.log(run_id, metrics={"drift_share": 0.2})
        reader.rollback()
    assert store.run(run_id).metrics == {"drift_share": 0.2}
