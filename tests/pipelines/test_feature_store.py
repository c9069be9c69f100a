"""The generated Feast store: definitions from the config, each extracted day materialized from the lake, and the
online lookup answering what the batch path computed (and the declared defaults for an entity it lacks)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lakes import declared_features, with_section, write_config, write_payments

from pipelines import aggregates, feature_store
from pipelines.config import Config, load_config
from pipelines.features import extract_features
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.integration

DAYS = [date(2026, 10, 2), date(2026, 10, 3)]


@pytest.fixture
def declared(tmp_path: Path, raw_data: Path) -> Config:
    payments = write_payments(raw_data, tmp_path / "payments")
    overrides = {"dataset": declared_features(payments), "feature_store": {"repo": str(tmp_path / "feature_repo")}}
    return load_config(write_config(tmp_path, raw_data, mlflow_store=False, **overrides))


def test_each_extracted_day_is_materialized_and_looked_up_as_the_batch_path_computed_it(declared):
    for day in DAYS:
        extract_features(declared, day)
        written = feature_store.materialize_day(declared, day)
        assert written["materialized"] and written["views"] == ["credit_default__customer_id"]
    repo = feature_store.repo_path(declared)
    assert (repo / "feature_store.yaml").is_file() and (repo / "online.db").is_file()

    batch = Lake.from_config(declared).read_days(Table.FEATURES, DAYS)
    aggregated = declared.dataset.features.aggregated
    lookup = feature_store.OnlineLookup(declared)
    rows = [*batch[["customer_id"]].to_dict("records"), {"customer_id": "never-seen"}]
    found = lookup.lookup(rows)
    assert found.missing == 1
    expected = batch[aggregated].reset_index(drop=True)
    pd.testing.assert_frame_equal(found.values.iloc[:-1][aggregated], expected)  # each entity has one row here
    assert (batch["paid_sum_30d"] == 0).any(), "entities without history are materialized with their defaults"
    unknown = found.values.iloc[-1]
    defaults = aggregates.defaults(declared.dataset.features)
    assert unknown["paid_sum_30d"] == 0 and unknown["late_count_30d"] == 0 and np.isnan(unknown["paid_mean_7d"])
    assert defaults["paid_mean_7d"] is None
    # The defaults are what the batch path gives a row whose entity has no history.
    row = batch.head(1).drop(columns=declared.dataset.features.computed).assign(customer_id="never-seen")
    alone = aggregates.add_declared(declared, row)
    pd.testing.assert_series_equal(alone[aggregated].iloc[0], unknown[aggregated], check_names=False)


def test_without_declared_aggregates_nothing_is_materialized(tmp_path, raw_data):
    repo = {"repo": str(tmp_path / "feature_repo")}  # not the checkout's, which `make demo` fills
    config = load_config(write_config(tmp_path, raw_data, mlflow_store=False, feature_store=repo))
    assert not config.online_features
    assert feature_store.materialize_day(config, DAYS[0]) == {"day": "2026-10-02", "materialized": False}
    assert not (Path(config.feature_store.repo) / config.model.name).exists()


def test_the_latest_row_of_an_entity_wins(declared):
    extract_features(declared, DAYS[0])
    feature_store.materialize_day(declared, DAYS[0])
    batch = Lake.from_config(declared).read(Table.FEATURES, DAYS[0])
    key = batch["customer_id"].iloc[0]
    later = batch.head(1).assign(event_time=batch["event_time"].iloc[0] + timedelta(days=1), paid_sum_30d=12345.0)
    Lake.from_config(declared).write(Table.FEATURES, DAYS[1], later)
    feature_store.materialize_day(declared, DAYS[1])
    found = feature_store.OnlineLookup(declared).lookup([{"customer_id": key}])
    assert found.values["paid_sum_30d"].tolist() == [12345.0] and found.missing == 0


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port with a password, as the stack runs it; Feast's connection
    string for it (the stack's format: host:port,db=N,password=...)."""
    from integration.services import free_port, port_open, wait_for

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (`make test-tools` installs Debian's redis-server)")
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with open(tmp_path / "redis.log", "wb") as log:
        server = subprocess.Popen([*args, "--requirepass", "pw", "--dir", str(tmp_path)], stdout=log, stderr=log)
    try:
        wait_for(lambda: port_open(port), "redis-server", timeout=30)
        yield f"127.0.0.1:{port},db=1,password=pw"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_redis_online_store_answers_the_lookup_as_sqlite_does(declared, redis_url, tmp_path):
    on_redis = with_section(
        declared,
        "feature_store",
        repo=str(tmp_path / "redis_repo"),
        online_store={"type": "redis", "connection_string": redis_url},
    )
    extract_features(declared, DAYS[0])
    for config in (declared, on_redis):
        assert feature_store.materialize_day(config, DAYS[0])["materialized"]
    assert feature_store.repo_settings(on_redis)["online_store"]["type"] == "redis"
    assert not (feature_store.repo_path(on_redis) / "online.db").exists()  # nothing went to SQLite

    batch = Lake.from_config(declared).read(Table.FEATURES, DAYS[0])
    rows = [*batch[["customer_id"]].to_dict("records"), {"customer_id": "never-seen"}]
    on_sqlite = feature_store.OnlineLookup(declared).lookup(rows)
    found = feature_store.OnlineLookup(on_redis).lookup(rows)
    assert found.missing == on_sqlite.missing == 1
    pd.testing.assert_frame_equal(found.values, on_sqlite.values)
    aggregated = declared.dataset.features.aggregated
    pd.testing.assert_frame_equal(found.values.iloc[:-1][aggregated], batch[aggregated].reset_index(drop=True))
