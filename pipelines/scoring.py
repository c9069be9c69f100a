"""Batch scoring on Dask: one day's feature partition -> a keyed prediction partition.

The champion alias is resolved once per run, so every row of a run is scored by the same version. Each Dask task
reads one Parquet row group, scores it with a model cached in its worker process, and writes its own output file
named after the row group; a retried or recomputed task overwrites that file, so the published partition holds
every row exactly once. Nothing but file names and counts travels between the workers and the client.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from distributed import Client
from sklearn.pipeline import Pipeline

from pipelines import registry, storage
from pipelines.config import Config
from pipelines.features import FEATURES
from pipelines.modeling import model_input

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"

_MODELS: dict[str, Pipeline] = {}


@dataclass(frozen=True)
class Piece:
    """One row group of one Parquet file: the unit of work and of output."""

    index: int
    url: str
    row_group: int


@dataclass(frozen=True)
class ScoringJob:
    config: Config
    model: registry.ModelRef
    run_id: str
    day: date
    scored_at: datetime
    staging: str


@dataclass(frozen=True)
class ScoreResult:
    day: str
    rows_in: int
    rows_scored: int
    model_name: str
    model_version: str
    predictions_url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_model(uri: str, tracking_uri: str) -> Pipeline:
    """The model behind a versioned URI, loaded once per process (a version's artifacts never change)."""
    if uri not in _MODELS:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        _MODELS[uri] = mlflow.sklearn.load_model(uri)
        log.info("loaded %s", uri)
    return _MODELS[uri]


def predict(frame: pd.DataFrame, job: ScoringJob) -> pd.DataFrame:
    """Keyed predictions for ``frame``: key, prediction (+ probability), model name/version/run, run id, date, time."""
    config = job.config
    model = load_model(job.model.uri, config.tracking_uri)
    out = pd.DataFrame({config.dataset.key: frame[config.dataset.key].astype(str).to_numpy()})
    if config.task == "classification":
        probability = model.predict_proba(model_input(frame, config))[:, 1] if len(frame) else np.empty(0)
        out["prediction"] = model.classes_[(probability >= 0.5).astype(int)]
        out["probability"] = probability
    else:
        out["prediction"] = model.predict(model_input(frame, config)) if len(frame) else np.empty(0)
    return out.assign(
        model_name=job.model.name,
        model_version=job.model.version,
        model_run_id=job.model.run_id or "",
        run_id=job.run_id,
        logical_date=job.day.isoformat(),
        scored_at=pd.Timestamp(job.scored_at),
    )


def score_piece(piece: Piece, job: ScoringJob) -> int:
    """Score one row group and write ``part-<index>.parquet`` into the staging folder; return the row count."""
    options = job.config.storage.options
    fs, path = storage.filesystem(piece.url, options)
    with fs.open(path, "rb") as handle:
        frame = pq.ParquetFile(handle).read_row_group(piece.row_group).to_pandas()
    out = predict(frame, job)
    out_fs, out_path = storage.filesystem(f"{job.staging}/part-{piece.index:05d}.parquet", options)
    with out_fs.open(out_path, "wb") as handle:
        out.to_parquet(handle, index=False)
    return len(out)


def plan_pieces(url: str, options: dict[str, Any] | None = None) -> list[Piece]:
    """Every row group under a partition folder, in file order."""
    fs, path = storage.filesystem(url, options)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    pieces: list[Piece] = []
    for file in sorted(f for f in fs.find(path) if f.endswith(".parquet")):
        file_url = file if protocol == "file" else f"{protocol}://{file}"
        with fs.open(file, "rb") as handle:
            groups = pq.ParquetFile(handle).metadata.num_row_groups
        pieces.extend(Piece(len(pieces) + i, file_url, i) for i in range(groups))
    return pieces


def score_day(config: Config, day: date, run_id: str, client: Client) -> ScoreResult:
    """Score the day's features with the current champion; publish only if rows in == rows scored."""
    options = config.storage.options
    source = storage.partition_url(config.storage.root, FEATURES, day)
    if not storage.partition_exists(config.storage.root, FEATURES, day, options):
        raise FileNotFoundError(f"feature partition {source} does not exist; run feature_extraction for {day} first")
    mlflow_client = registry.connect(config)
    model = registry.require_alias(mlflow_client, config.model.name)
    rows_in = storage.count_rows(source, options)
    pieces = plan_pieces(source, options)
    with storage.staged_partition(config.storage.root, PREDICTIONS, day, options) as staging:
        job = ScoringJob(config, model, run_id, day, datetime.now(UTC), staging)
        futures = client.map(score_piece, pieces, job=job, pure=False, retries=2)
        rows_scored = sum(client.gather(futures))
        if rows_scored != rows_in:
            raise RuntimeError(f"scoring {source}: {rows_in} rows in but {rows_scored} scored; nothing published")
    url = storage.partition_url(config.storage.root, PREDICTIONS, day)
    log.info("scored %d rows of %s with %s v%s -> %s", rows_scored, day, model.name, model.version, url)
    return ScoreResult(day.isoformat(), rows_in, rows_scored, model.name, model.version, url)
