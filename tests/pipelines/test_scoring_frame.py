"""Frame-level scoring: checked input, a model that rejects rows, non-finite outputs, duplicates, the log sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lakes import with_section

from pipelines.config import Config
from pipelines.scoring import ERROR, score_frame

pytestmark = pytest.mark.unit


class StubModel:
    """Probability from income; rejects any batch with an age above 95; returns NaN for a debt_ratio of 9."""

    classes_ = np.array([0, 1])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if (x["age"] > 95).any():
            raise ValueError("age out of range")
        positive = np.where(x["debt_ratio"] == 9, np.nan, np.clip(x["income"].fillna(50_000) / 100_000, 0, 1))
        return np.column_stack([1 - positive, positive])


def _frame(config: Config, n: int) -> pd.DataFrame:
    features = config.dataset.features
    frame = pd.DataFrame({c: np.linspace(0.5, 1, n) for c in features.numerical})  # within every check's bounds
    frame = frame.assign(**{c: ["x"] * n for c in features.categorical})
    return frame.assign(
        customer_id=[f"c{i}" for i in range(n)],
        event_time=pd.Timestamp("2026-10-18", tz="UTC"),
        income=np.linspace(10_000, 90_000, n),
        age=40.0,
    )


def test_score_frame_isolates_every_bad_row_and_scores_the_rest(demo):
    config = with_section(demo, "monitoring", sample_rate=1.0)
    frame = _frame(config, 40)
    frame["income"] = frame["income"].astype(object)
    frame.loc[1, "income"] = "lots"
    frame.loc[2, "credit_utilization"] = np.inf
    frame.loc[3, "customer_id"] = None
    frame.loc[5, "customer_id"] = frame.loc[4, "customer_id"]
    frame.loc[[11, 30], "age"] = 99.0  # each sinks its batch unless isolated
    frame.loc[20, "debt_ratio"] = 9.0  # the model returns NaN for it
    scores = score_frame(frame, StubModel(), config, duplicates=(33,))

    errors = dict(zip(scores.dead.index, scores.dead[ERROR], strict=True))
    assert errors == {
        1: "income: not a number",
        2: "credit_utilization: not finite",
        3: "customer_id: missing",
        5: "customer_id: duplicate key",
        11: "ValueError: age out of range",
        20: "model returned a non-finite prediction",
        30: "ValueError: age out of range",
        33: "customer_id: duplicate key (first seen in an earlier row group)",
    }
    assert len(scores.predictions) + len(scores.dead) == len(frame) == 40
    assert list(scores.predictions.columns) == ["customer_id", "prediction", "probability"]
    assert not set(scores.predictions.index) & set(errors)
    assert scores.predictions["probability"].between(0, 1).all()
    assert (scores.predictions["prediction"] == (scores.predictions["probability"] >= 0.5)).all()
    assert scores.dead.loc[1, "income"] == "lots" and scores.dead["income"].dtype == "string"  # original values
    assert list(scores.dead_positions) == sorted(errors)
    assert list(scores.logged.index) == list(scores.predictions.index)  # sample_rate 1.0: every scored row logged
    assert {"event_time", "income", "region", "probability"} <= set(scores.logged.columns)


def test_score_frame_log_sample_is_stable_by_key(demo):
    frame = _frame(demo, 400)
    none = score_frame(frame, StubModel(), with_section(demo, "monitoring", sample_rate=0.0))
    assert none.logged.empty and len(none.predictions) == 400 and none.dead.empty
    tenth = score_frame(frame, StubModel(), demo)  # the demo's 10%
    again = score_frame(frame.iloc[::-1].reset_index(drop=True), StubModel(), demo)
    assert 20 < len(tenth.logged) < 60
    assert set(tenth.logged["customer_id"]) == set(again.logged["customer_id"])  # the key decides, not the row


def test_score_frame_on_an_empty_frame(demo):
    scores = score_frame(_frame(demo, 0), StubModel(), demo)
    assert scores.predictions.empty and scores.dead.empty and scores.logged.empty
