"""The server's scoring child process: the same predictions as the batch path, and a killed child replaced."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from pipelines.config import Config
from pipelines.modeling import build_model
from pipelines.registry import ModelRef
from pipelines.scoring import checked_input, predict_frame
from pipelines.serving.scorer import ProcessScorer


def fitted(config: Config, raw_data: Path) -> tuple[object, pd.DataFrame]:
    """The configured model fitted on the good rows of one raw demo day (arbitrary labels: only predictions are
    compared), and the day's first rows, bad ones included (the demo data holds some: their reasons are compared)."""
    frame = pd.read_parquet(sorted((raw_data / "raw").glob("*.parquet"))[0]).head(400).reset_index(drop=True)
    x, reasons = checked_input(frame, config)
    assert not reasons.empty
    model = build_model(config)
    model.fit(x.drop(index=reasons.index), np.arange(len(x) - len(reasons)) % 2)
    return model, frame


def workers() -> list[psutil.Process]:
    """This process's children started by multiprocessing's spawn (not its resource tracker)."""
    return [c for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())]


@pytest.mark.integration
def test_the_child_predicts_as_the_batch_path_and_a_killed_child_is_replaced(config, raw_data):
    model, frame = fitted(config, raw_data)
    expected = predict_frame(frame, model, config)
    assert len(expected[0]) + len(expected[1]) == len(frame)  # every row predicted or given its reason
    ref = ModelRef(config.model.name, "7", None)
    others = {c.pid for c in workers()}  # the session's Dask workers, if started already
    scorer = ProcessScorer(config)
    try:
        scorer.prepare(ref, model)
        (child,) = [c for c in workers() if c.pid not in others]
        predicted, reasons = scorer.predict(ref, model, frame)
        pd.testing.assert_frame_equal(predicted, expected[0])
        pd.testing.assert_series_equal(reasons, expected[1])

        os.kill(child.pid, signal.SIGKILL)  # what the OOM killer would do mid-service
        child.wait(10)
        predicted, reasons = scorer.predict(ref, model, frame)  # on a new child, sent the version again
        pd.testing.assert_frame_equal(predicted, expected[0])
        pd.testing.assert_series_equal(reasons, expected[1])
        (replacement,) = [c for c in workers() if c.pid not in others]
        assert replacement.pid != child.pid
    finally:
        scorer.close()
    assert {c.pid for c in workers()} <= others
