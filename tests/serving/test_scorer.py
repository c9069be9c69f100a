"""The server's scoring child process: the same batch results as in the server's own thread and as the batch path,
and a killed child replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from pipelines.config import Config
from pipelines.modeling import build_model
from pipelines.predict import checked_input, predict_frame
from pipelines.serving.batch import BatchResult, Job, Stamp
from pipelines.serving.schema import to_frame
from pipelines.serving.scorer import ProcessScorer, ThreadScorer


def fitted(config: Config, raw_data: Path) -> tuple[object, list[dict]]:
    """The configured model fitted on the good rows of one raw demo day (arbitrary labels: only predictions are
    compared), and those rows as a server gets them (checked request rows: NaN as None, ISO event times)."""
    frame = pd.read_parquet(sorted((raw_data / "raw").glob("*.parquet"))[0]).head(400).reset_index(drop=True)
    x, reasons = checked_input(frame, config)
    model = build_model(config)
    model.fit(x.drop(index=reasons.index), np.arange(len(x) - len(reasons)) % 2)
    good = frame.drop(index=reasons.index)[
        [config.dataset.key, config.dataset.event_time, *config.dataset.features.all]
    ]
    good[config.dataset.event_time] = good[config.dataset.event_time].map(lambda t: t.isoformat())
    return model, good.astype(object).where(good.notna(), None).to_dict("records")


def job(rows: list[dict]) -> Job:
    """Three requests: two logged by the key sample, one A/B request (every row logged) to the challenger's log."""
    sizes = [len(rows) - 30, 20, 10]
    return Job(
        rows,
        sizes,
        ["champion", "champion", "b"],
        ["prediction_log"] * 3,
        [False, False, True],
        Stamp("m", "7", "", "run"),
    )


def assert_same(result: BatchResult, expected: BatchResult) -> None:
    assert result.values.keys() == expected.values.keys() and result.errors == expected.errors
    for column, values in expected.values.items():
        np.testing.assert_array_equal(result.values[column], values)
    assert [t for t, _ in result.logs] == [t for t, _ in expected.logs]
    for (_, rows), (_, want) in zip(result.logs, expected.logs, strict=True):
        pd.testing.assert_frame_equal(rows.drop(columns="scored_at"), want.drop(columns="scored_at"))


def workers() -> list[psutil.Process]:
    """This process's children started by multiprocessing's spawn (not its resource tracker)."""
    return [c for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())]


@pytest.mark.integration
def test_the_child_scores_as_the_thread_and_the_batch_path_and_a_killed_child_is_replaced(config, raw_data):
    model, rows = fitted(config, raw_data)
    batch = job(rows)
    expected = asyncio.run(ThreadScorer(config).score("m/7", model, batch))
    predicted, reasons = predict_frame(
        to_frame(rows, config).assign(**{config.dataset.key: range(len(rows))}), model, config
    )
    assert reasons.empty and len(predicted) == len(rows)
    np.testing.assert_array_equal(expected.values["probability"], predicted["probability"].to_numpy())
    ((table, logged),) = expected.logs
    assert 30 < len(logged) < len(rows) and logged["arm"].tolist().count("b") == 10
    assert table == "prediction_log"  # the key sample of the first two requests, and every row of the A/B one
    others = {c.pid for c in workers()}  # the session's Dask workers, if started already

    async def scenario() -> tuple[BatchResult, BatchResult, int, int]:
        scorer = ProcessScorer(config, keep=2)
        try:
            await scorer.start()
            await scorer.prepare("m/7", model)
            (child,) = [c for c in workers() if c.pid not in others]
            first = await scorer.score("m/7", model, batch)
            os.kill(child.pid, signal.SIGKILL)  # what the OOM killer would do mid-service
            await asyncio.to_thread(child.wait, 10)
            again = await scorer.score("m/7", model, batch)  # on a new child, sent the version again
            (replacement,) = [c for c in workers() if c.pid not in others]
            return first, again, child.pid, replacement.pid
        finally:
            await scorer.close()

    first, again, child, replacement = asyncio.run(scenario())
    assert_same(first, expected)
    assert_same(again, expected)
    assert replacement != child
    assert {c.pid for c in workers()} <= others
