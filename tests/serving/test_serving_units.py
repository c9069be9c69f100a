"""Pure parts of the model server: body checks and the canary split (no server, no registry)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.config import Config
from pipelines.serving import routing
from pipelines.serving.schema import BodyError, parse_rows


def row(config: Config, **changes) -> dict:
    values = {c: 1.0 for c in config.dataset.features.numerical} | {c: "x" for c in config.dataset.features.categorical}
    return {config.dataset.key: "k1", **values, "age": 40.0, **changes}  # age: within the config's bounds


def problems(config: Config, body) -> list[tuple[list, str]]:
    with pytest.raises(BodyError) as caught:
        parse_rows(json.dumps(body).encode(), config, max_rows=10)
    return [(d["loc"], d["type"]) for d in caught.value.detail]


@pytest.mark.unit
def test_every_kind_of_bad_body_names_its_field(config):
    assert problems(config, row(config, income="1")) == [(["body", "income"], "float_type")]
    assert problems(config, row(config, income=True)) == [(["body", "income"], "float_type")]
    assert problems(config, row(config, region=1)) == [(["body", "region"], "string_type")]
    assert problems(config, row(config, extra=1)) == [(["body", "extra"], "extra_forbidden")]
    assert problems(config, {k: v for k, v in row(config).items() if k != "age"}) == [(["body", "age"], "missing")]
    assert problems(config, [row(config), row(config, age=float("inf"))]) == [
        (["body", 1, "customer_id"], "duplicate_key"),
        (["body", 1, "age"], "finite_number"),
    ]
    assert problems(config, row(config, event_time="yesterday")) == [(["body", "event_time"], "datetime")]
    assert problems(config, []) == [(["body"], "body_type")]
    assert problems(config, [row(config, customer_id=i) for i in range(11)]) == [(["body"], "too_many_rows")]


@pytest.mark.unit
def test_a_good_body_becomes_the_batch_path_input(config):
    frame = parse_rows(json.dumps([row(config, age=None), row(config, customer_id=7)]).encode(), config, 10)
    assert list(frame.columns) == ["customer_id", "event_time", *config.dataset.features.all]
    assert frame["age"].dtype == np.float64 and np.isnan(frame.loc[0, "age"])
    assert str(frame["event_time"].dt.tz) == "UTC" and frame["event_time"].notna().all()
    times = [row(config, customer_id=1, event_time="2026-10-18T12:00:00+02:00"), row(config, customer_id=2)]
    iso = parse_rows(json.dumps(times).encode(), config, 10)["event_time"]
    assert iso[0] == pd.Timestamp("2026-10-18T10:00:00Z") and iso[1] > pd.Timestamp("2026-10-18", tz="UTC")
    other = parse_rows(json.dumps(row(config, event_time="18 Oct 2026 12:00 +0200")).encode(), config, 10)
    assert other["event_time"].tolist() == [pd.Timestamp("2026-10-18T10:00:00Z")]  # any form check_rows accepts


@pytest.mark.unit
def test_canary_share_holds_on_10k_keys_is_stable_and_independent_of_the_log_sample():
    keys = pd.Series([f"customer-{i}" for i in range(10_000)])
    routed = routing.to_challenger(keys, 0.2)
    assert abs(routed.mean() - 0.2) < 0.015
    shuffled = keys.sample(frac=1, random_state=1)  # another request order, another process: the same arm per key
    assert (routing.to_challenger(shuffled, 0.2) == routed[shuffled.index.to_numpy()]).all()
    assert not routing.to_challenger(keys, 0.0).any() and routing.to_challenger(keys, 1.0).all()
    logged = routing.logged(keys, 0.1)
    assert abs(logged[routed].mean() - 0.1) < 0.03  # the challenger's keys are not the logged keys


@pytest.mark.unit
def test_batch_metrics_are_written_for_a_textfile_collector_only_when_asked(tmp_path, monkeypatch):
    from datetime import date

    from pipelines import metrics

    monkeypatch.delenv(metrics.ENV, raising=False)
    assert metrics.write_scoring("m", "3", date(2026, 10, 4), 990, 10, 99, 12.5) is None
    monkeypatch.setenv(metrics.ENV, str(tmp_path))
    path = metrics.write_scoring("m", "3", date(2026, 10, 4), 990, 10, 99, 12.5)
    text = path.read_text()
    assert 'mlops_batch_rows_scored{day="2026-10-04",model="m",version="3"} 990.0' in text
    assert 'mlops_batch_rows_dead_lettered{day="2026-10-04",model="m",version="3"} 10.0' in text
    assert 'mlops_batch_seconds{day="2026-10-04",model="m",version="3"} 12.5' in text
    drift = metrics.write_drift("m", "3", date(2026, 10, 4), 0.25, None).read_text()
    assert 'mlops_drift_share{day="2026-10-04",model="m",version="3"} 0.25' in drift
    assert 'mlops_realized_metric{day="2026-10-04",model="m",version="3"} NaN' in drift


@pytest.mark.unit
def test_a_failed_log_write_keeps_its_rows_for_the_next_flush(tmp_path, monkeypatch):
    from pipelines.serving.predlog import PredictionLogWriter
    from pipelines.storage import Lake, Table

    lake = Lake(str(tmp_path / "lake"))
    writer = PredictionLogWriter(lake, "event_time", flush_rows=10)
    times = pd.to_datetime(["2030-01-01T10:00:00Z", "2030-01-02T10:00:00Z", "2030-01-02T11:00:00Z"])
    rows = pd.DataFrame({"k": ["a", "b", "c"], "event_time": times, "model_version": "1", "arm": "champion"})
    assert writer.add(Table.PREDICTION_LOG, rows) is False
    real_write = writer._write

    def failing(*args):
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_write", failing)
    with pytest.raises(OSError):
        writer.flush()
    monkeypatch.setattr(writer, "_write", real_write)
    assert writer.flush() == 3
    assert lake.count_rows(Table.PREDICTION_LOG, times[0].date()) == 1
    assert lake.count_rows(Table.PREDICTION_LOG, times[1].date()) == 2
    assert lake.read(Table.PREDICTION_LOG, times[1].date())["arm"].tolist() == ["champion", "champion"]


class FailsOnOldRows:
    """A model that rejects any frame holding a row with age > 95 (as a real model can reject a value)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if (x["age"] > 95).any():
            raise ValueError("age out of range")
        return np.column_stack([np.full(len(x), 0.25), np.full(len(x), 0.75)])


@pytest.mark.unit
def test_a_model_error_fails_only_the_request_whose_row_caused_it(config):
    """Three requests predicted in one batch; the model rejects one row of the second: that request gets a 422
    naming the row and the error, the other two (and nothing else) are answered 200."""
    import asyncio

    import httpx

    from pipelines.registry import ModelRef
    from pipelines.serving.app import create_app
    from pipelines.serving.engine import Loaded

    # 300 ms: long enough for the three to share a batch; in a thread: the model is a class of this test module
    serving = config.serving.model_copy(update={"max_wait_ms": 300.0, "predict_in": "thread"})
    app = create_app([config.model_copy(update={"serving": serving})])
    server = app.state.server
    served = server.models[config.model.name]
    served.arms["champion"] = Loaded(ModelRef(config.model.name, "3", None), FailsOnOldRows(), "champion", 0.0)
    path = f"/v1/models/{config.model.name}:predict"

    async def three_requests() -> list[httpx.Response]:
        batcher = asyncio.create_task(served.batcher.run())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
            responses = await asyncio.gather(
                client.post(path, json=row(config, customer_id="a")),
                client.post(path, json=[row(config, customer_id="b"), row(config, customer_id="c", age=99.0)]),
                client.post(path, json=[row(config, customer_id="d"), row(config, customer_id="e")]),
            )
        batcher.cancel()
        return responses

    first, second, third = asyncio.run(three_requests())
    batches = server.metrics.registry.get_sample_value("serving_batch_rows_count", {"model": config.model.name})
    sizes = server.metrics.registry.get_sample_value("serving_batch_rows_sum", {"model": config.model.name})
    assert (batches, sizes) == (1.0, 5.0)  # one batch of all five rows
    assert second.status_code == 422
    assert second.json() == {
        "detail": {
            "model_version": "3",
            "errors": [{"loc": ["body", 1], "msg": "ValueError: age out of range", "type": "model_error"}],
        }
    }
    assert (first.status_code, third.status_code) == (200, 200)
    assert [p["key"] for p in first.json()["predictions"] + third.json()["predictions"]] == ["a", "d", "e"]
    assert {(p["probability"], p["model_version"]) for p in third.json()["predictions"]} == {(0.75, "3")}
