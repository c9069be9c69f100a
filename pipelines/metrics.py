"""The batch path's numbers in Prometheus text format, for a textfile collector (node-exporter) to expose.

Set ``MLOPS_METRICS_DIR`` and each scoring run writes ``batch_scoring_<model>.prom`` (rows scored, dead-lettered,
logged, seconds, the day and version), each drift check ``drift_<model>.prom`` (drift share, realized metric).
Unset, nothing is written. Files are replaced atomically (prometheus_client writes a temporary file and renames
it), so the collector never reads half a file; one file per model and kind keeps the newest run's numbers.
"""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

log = logging.getLogger(__name__)

ENV = "MLOPS_METRICS_DIR"


def _write(kind: str, model: str, values: dict[str, tuple[str, float]], labels: dict[str, str]) -> Path | None:
    directory = os.environ.get(ENV)
    if not directory:
        return None
    registry = CollectorRegistry()
    names = ["model", *labels]
    for name, (help_text, value) in values.items():
        Gauge(name, help_text, names, registry=registry).labels(model, *labels.values()).set(value)
    path = Path(directory) / f"{kind}_{model}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    log.info("metrics written to %s", path)
    return path


def write_scoring(model: str, version: str, day: date, scored: int, dead: int, logged: int, seconds: float):
    """One batch scoring run: what it did and how long it took."""
    return _write(
        "batch_scoring",
        model,
        {
            "mlops_batch_rows_scored": ("Rows scored by the last batch run", scored),
            "mlops_batch_rows_dead_lettered": ("Rows dead-lettered by the last batch run", dead),
            "mlops_batch_rows_logged": ("Rows written to the prediction log by the last batch run", logged),
            "mlops_batch_seconds": ("Seconds the last batch run took for its day", seconds),
        },
        {"version": version, "day": day.isoformat()},
    )


def write_drift(model: str, version: str, day: date, drift_share: float | None, realized: float | None):
    """One drift check: the drifted share of features and the champion's realized metric (absent: NaN)."""
    nan = float("nan")
    return _write(
        "drift",
        model,
        {
            "mlops_drift_share": (
                "Share of features drifted in the last check",
                nan if drift_share is None else drift_share,
            ),
            "mlops_realized_metric": (
                "Champion's realized metric on labeled logged rows",
                nan if realized is None else realized,
            ),
        },
        {"version": version, "day": day.isoformat()},
    )
