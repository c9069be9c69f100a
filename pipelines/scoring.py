"""Batch scoring on Dask: one day's feature partition -> keyed predictions, dead letters and a prediction log.

The champion alias is resolved once per run, so every row of a run is scored by the same version. Each Dask task
reads one Parquet row group, scores it with a model cached in its worker process, and writes its own output files
named after the row group; a retried or recomputed task (a worker lost mid-run) overwrites them, so each published
partition holds every row exactly once. Only file names, counts and key hashes travel back to the client.

A row that cannot be scored never sinks its batch: inputs are checked row by row first (missing key, a value
that is not a number or not finite, a duplicated key), a failing batch is retried with backoff and then split in
halves until the rows that fail alone are found. Those rows go to the dead-letter partition with the error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from distributed import Client, get_worker

from pipelines import registry, storage
from pipelines.cluster import CPU, GPU, resource_workers
from pipelines.config import Config
from pipelines.features import FEATURES
from pipelines.validation import DataError

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
DEAD_LETTER = "dead_letter"
PREDICTION_LOG = "prediction_log"
ERROR = "error"
HASH_BUCKETS = 10_000

_MODELS: dict[tuple[str, str], Any] = {}


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
    staging: dict[str, str]  # table -> staging URL
    use_gpu: bool


@dataclass
class PieceResult:
    index: int
    rows_in: int
    scored: int
    dead: int
    logged: int
    worker: str
    device: str
    key_hashes: np.ndarray = field(repr=False)
    dead_positions: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ScoreResult:
    day: str
    rows_in: int
    rows_scored: int
    rows_dead_lettered: int
    rows_logged: int
    model_name: str
    model_version: str
    device: str
    workers: list[str]
    predictions_url: str
    dead_letter_url: str
    prediction_log_url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _device(job: ScoringJob) -> str:
    """cuda for torch tasks placed on a GPU worker that has one; cpu otherwise (said once per process)."""
    if job.model.flavor != "torch":
        return "cpu"
    import torch

    if job.use_gpu and torch.cuda.is_available():
        return "cuda"
    if job.use_gpu and ("warned", "cuda") not in _MODELS:
        _MODELS[("warned", "cuda")] = None
        log.warning("this worker declares %s but torch sees no CUDA device: scoring on CPU", GPU)
    return "cpu"


def load_model(ref: registry.ModelRef, tracking_uri: str, device: str, torch_batch_rows: int) -> Any:
    """The model behind a versioned URI, loaded once per process, store and device (a version's artifacts never
    change; two stores can each hold a version 1 of the same name, and a long-lived worker may serve both)."""
    key = (tracking_uri, ref.uri, device)
    if key not in _MODELS:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        if ref.flavor == "torch":
            model = mlflow.pytorch.load_model(ref.uri, map_location=device).to(device)
            model.batch_rows = torch_batch_rows
        else:
            model = mlflow.sklearn.load_model(ref.uri)
        _MODELS[key] = model
        log.info("loaded %s on %s", ref.uri, device)
    return _MODELS[key]


def key_hashes(keys: pd.Series) -> np.ndarray:
    """Stable 64-bit key hashes (the same in every process and run): for sampling and duplicate detection."""
    values = keys.to_numpy(dtype=object)
    if keys.isna().any() or keys.dtype != object:
        values = keys.astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(values, categorize=False)  # keys are (nearly) unique: factorizing first only costs


def in_sample(hashes: np.ndarray, rate: float) -> np.ndarray:
    """The same key is always in or out of the prediction log, whichever run or worker scores it."""
    return (hashes % HASH_BUCKETS) < round(rate * HASH_BUCKETS)


def checked_input(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, pd.Series]:
    """Model input for every row, and a reason for each row that must not reach the model.

    Vectorised: one boolean column per (check, column), and reason strings built for the failing rows only.
    """
    features = config.dataset.features
    problems: dict[str, np.ndarray] = {}
    numbers = {}
    for column in features.numerical:
        raw = frame[column]
        values = raw.to_numpy(dtype=np.float64) if pd.api.types.is_float_dtype(raw) else None
        if values is None:
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
            problems[f"{column}: not a number"] = raw.notna().to_numpy() & np.isnan(values)
        problems[f"{column}: not finite"] = np.isinf(values)
        numbers[column] = values
    categories = {}
    for column in features.categorical:
        raw = frame[column]
        text = raw.map(str, na_action="ignore") if raw.dtype != object else raw
        categories[column] = text.astype(object).where(raw.notna(), np.nan)
    key = frame[config.dataset.key]
    problems[f"{config.dataset.key}: missing"] = key.isna().to_numpy()
    problems[f"{config.dataset.key}: duplicate key"] = (key.duplicated() & key.notna()).to_numpy()
    x = pd.DataFrame({**numbers, **categories}, index=frame.index)[features.all]
    names = list(problems)
    matrix = np.column_stack([problems[n] for n in names]) if names else np.zeros((len(frame), 0), bool)
    bad = np.flatnonzero(matrix.any(axis=1))
    reasons = pd.Series(
        {int(row): "; ".join(n for n, hit in zip(names, matrix[row], strict=True) if hit) for row in bad}, dtype=object
    )
    return x, reasons


def _predict(model: Any, x: pd.DataFrame, task: str) -> pd.DataFrame:
    if x.empty:
        columns = ["prediction", "probability"] if task == "classification" else ["prediction"]
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}, index=x.index)
    if task == "classification":
        probability = model.predict_proba(x)[:, 1]
        return pd.DataFrame(
            {"prediction": model.classes_[(probability >= 0.5).astype(int)], "probability": probability}, index=x.index
        )
    return pd.DataFrame({"prediction": np.asarray(model.predict(x), dtype=np.float64)}, index=x.index)


def predict_isolating(model: Any, x: pd.DataFrame, task: str, retries: int) -> tuple[pd.DataFrame, pd.Series]:
    """Predictions for the rows that can be scored and an error for each row that cannot.

    The whole batch is tried (with ``retries`` retries and backoff, for transient failures); if it still fails,
    each half is tried on its own, down to single rows.
    """
    error = ""
    for attempt in range(retries + 1):
        try:
            return _predict(model, x, task), pd.Series(dtype=object)
        except Exception as exc:  # noqa: BLE001 (any model error: isolate the rows that cause it)
            error = f"{type(exc).__name__}: {exc}"
            if attempt < retries:
                time.sleep(0.05 * 2**attempt)
    if len(x) == 1:
        return _predict(model, x.iloc[:0], task), pd.Series({x.index[0]: error}, dtype=object)
    middle = len(x) // 2
    parts = [predict_isolating(model, half, task, 0) for half in (x.iloc[:middle], x.iloc[middle:])]
    return pd.concat([p[0] for p in parts]), pd.concat([p[1] for p in parts])


def _write(frame: pd.DataFrame, url: str, options: dict[str, Any], keep_empty: bool) -> None:
    fs, path = storage.filesystem(url, options)
    if frame.empty and not keep_empty:
        if fs.exists(path):
            fs.rm(path)
        return
    with storage.open_for_arrow(url, "wb", options) as target:
        frame.to_parquet(target, index=False)


def _stamp(job: ScoringJob, rows: int) -> dict[str, Any]:
    """The run's constant columns, dictionary-encoded: one value each, however many rows carry it."""
    values = {
        "model_name": job.model.name,
        "model_version": job.model.version,
        "model_run_id": job.model.run_id or "",
        "run_id": job.run_id,
        "logical_date": job.day.isoformat(),
    }
    columns: dict[str, Any] = {
        name: pd.Categorical.from_codes(np.zeros(rows, np.int8), [v]) for name, v in values.items()
    }
    columns["scored_at"] = pd.Timestamp(job.scored_at)
    return columns


def score_piece(piece: Piece, job: ScoringJob, duplicates: tuple[int, ...] = ()) -> PieceResult:
    """Score one row group into ``part-<index>.parquet`` of each output; ``duplicates`` are positions to dead-letter."""
    config = job.config
    options = config.storage.options
    columns = [config.dataset.key, config.dataset.event_time, *config.dataset.features.all]
    with storage.open_for_arrow(piece.url, "rb", options) as source:
        frame = pq.ParquetFile(source).read_row_group(piece.row_group, columns=columns).to_pandas()
    hashes = key_hashes(frame[config.dataset.key])
    x, reasons = checked_input(frame, config)
    for position in duplicates:
        reasons[position] = f"{config.dataset.key}: duplicate key (first seen in an earlier row group)"
    device = _device(job)
    model = load_model(job.model, config.tracking_uri, device, config.scoring.torch_batch_rows)
    usable = x.drop(index=reasons.index) if len(reasons) else x
    predicted, failures = predict_isolating(model, usable, config.task, config.scoring.batch_retries)
    values = predicted.select_dtypes("number")
    non_finite = (
        predicted.index[~np.isfinite(values.to_numpy(dtype=np.float64)).all(axis=1)] if len(values.columns) else []
    )
    failures = pd.concat(
        [failures, pd.Series("model returned a non-finite prediction", index=non_finite, dtype=object)]
    )
    reasons = pd.concat([reasons, failures]).sort_index()
    predicted = predicted.drop(index=non_finite)

    stamp = _stamp(job, len(predicted))
    keys = frame[config.dataset.key]
    out = pd.concat([keys if len(predicted) == len(frame) else keys.loc[predicted.index], predicted], axis=1).assign(
        **stamp
    )
    dead = frame.loc[reasons.index].astype("string").assign(**{ERROR: reasons.to_numpy()}, **_stamp(job, len(reasons)))
    sample = predicted.index[in_sample(hashes[predicted.index], config.monitoring.sample_rate)]
    logged = pd.concat(
        [
            frame.loc[sample, [config.dataset.key, config.dataset.event_time, *config.dataset.features.all]],
            predicted.loc[sample],
        ],
        axis=1,
    ).assign(**_stamp(job, len(sample)))

    name = f"part-{piece.index:05d}.parquet"
    _write(out, f"{job.staging[PREDICTIONS]}/{name}", options, keep_empty=True)
    _write(dead, f"{job.staging[DEAD_LETTER]}/{name}", options, keep_empty=False)
    _write(logged, f"{job.staging[PREDICTION_LOG]}/{name}", options, keep_empty=False)
    try:
        worker = get_worker().address
    except ValueError:  # called outside a worker (tests, debugging)
        worker = "local"
    return PieceResult(
        index=piece.index,
        rows_in=len(frame),
        scored=len(out),
        dead=len(dead),
        logged=len(logged),
        worker=worker,
        device=device,
        key_hashes=hashes,
        dead_positions=reasons.index.to_numpy(dtype=np.int64),
    )


def plan_pieces(url: str, columns: list[str], options: dict[str, Any] | None = None) -> list[Piece]:
    """Every row group under a partition folder, in file order; an unreadable file or a missing column is named."""
    fs, path = storage.filesystem(url, options)
    pieces: list[Piece] = []
    for file in sorted(f for f in fs.find(path) if f.endswith(".parquet")):
        file_url = storage.url_for(fs, file)
        try:
            with fs.open(file, "rb") as handle:
                meta = pq.ParquetFile(handle)
                groups, names, rows = meta.metadata.num_row_groups, set(meta.schema_arrow.names), meta.metadata.num_rows
        except Exception as exc:  # a corrupt footer, a truncated file
            raise DataError(f"cannot read Parquet file {file_url}: {type(exc).__name__}: {exc}") from exc
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{file_url}: column(s) {missing} missing ({rows} rows); the model needs {columns}")
        first = len(pieces)
        pieces.extend(Piece(first + i, file_url, i) for i in range(groups))
    return pieces


def placement(client: Client, flavor: str) -> tuple[dict[str, Any], bool]:
    """Dask placement for this model: torch asks for a GPU worker when one exists; sklearn keeps to CPU workers."""
    if flavor == "torch":
        if resource_workers(client, GPU):
            return {"resources": {GPU: 1}}, True
        log.warning("no Dask worker declares the %s resource: scoring the torch model on CPU workers", GPU)
        return {}, False
    return ({"resources": {CPU: 1}} if resource_workers(client, CPU) else {}), False


def cross_piece_duplicates(results: list[PieceResult]) -> dict[int, tuple[int, ...]]:
    """Positions, per piece, of rows whose key already appeared in an earlier row (first occurrence wins)."""
    repeated = pd.Series(np.concatenate([r.key_hashes for r in results])).duplicated(keep="first").to_numpy()
    found: dict[int, tuple[int, ...]] = {}
    offset = 0
    for result in results:
        flagged = np.flatnonzero(repeated[offset : offset + result.rows_in])
        flagged = np.setdiff1d(flagged, result.dead_positions)
        if len(flagged):
            found[result.index] = tuple(int(p) for p in flagged)
        offset += result.rows_in
    return found


def score_day(config: Config, day: date, run_id: str, client: Client) -> ScoreResult:
    """Score the day's features with the current champion; publish only when rows in == scored + dead-lettered."""
    options, root = config.storage.options, config.storage.root
    source = storage.partition_url(root, FEATURES, day)
    if not storage.partition_exists(root, FEATURES, day, options):
        raise FileNotFoundError(f"feature partition {source} does not exist; run feature_extraction for {day} first")
    model = registry.require_alias(registry.connect(config), config.model.name)
    pieces = plan_pieces(source, [config.dataset.key, config.dataset.event_time, *config.dataset.features.all], options)
    where, use_gpu = placement(client, model.flavor)
    tables = (PREDICTIONS, DEAD_LETTER, PREDICTION_LOG)
    staging = {table: storage.new_staging(root, table, day, options) for table in tables}
    job = ScoringJob(config, model, run_id, day, datetime.now(UTC), staging, use_gpu)
    try:
        results = client.gather(client.map(score_piece, pieces, job=job, pure=False, retries=2, **where))
        duplicates = cross_piece_duplicates(results)
        if duplicates:
            log.warning(
                "%d rows repeat a key seen in an earlier row group: dead-lettering them",
                sum(map(len, duplicates.values())),
            )
            redo = [pieces[i] for i in duplicates]
            again = client.gather(
                [client.submit(score_piece, p, job, duplicates[p.index], pure=False, retries=2, **where) for p in redo]
            )
            results = [next((a for a in again if a.index == r.index), r) for r in results]
        result = _totals(config, day, model, results, staging)
        if result.rows_in != result.rows_scored + result.rows_dead_lettered:
            raise RuntimeError(
                f"scoring {source}: {result.rows_in} rows in but {result.rows_scored} scored"
                f" + {result.rows_dead_lettered} dead-lettered"
            )
        share = result.rows_dead_lettered / result.rows_in if result.rows_in else 0.0
        if share > config.scoring.max_dead_letter_share:
            url = storage.publish(staging.pop(DEAD_LETTER), root, DEAD_LETTER, day, options)
            raise DataError(
                f"{result.rows_dead_lettered} of {result.rows_in} rows of {source} ({share:.1%}) could not be scored, "
                f"above scoring.max_dead_letter_share={config.scoring.max_dead_letter_share:.1%}; "
                f"predictions not published; errors in {url}"
            )
        for table in tables:
            storage.publish(staging.pop(table), root, table, day, options)
    finally:
        for url in staging.values():
            storage.discard(url, options)
    log.info(
        "scored %s with %s v%s on %s: %d in, %d scored, %d dead-lettered, %d logged",
        day,
        model.name,
        model.version,
        result.device,
        result.rows_in,
        result.rows_scored,
        result.rows_dead_lettered,
        result.rows_logged,
    )
    return result


def _totals(
    config: Config, day: date, model: registry.ModelRef, results: list[PieceResult], staging: dict[str, str]
) -> ScoreResult:
    root = config.storage.root
    devices = sorted({r.device for r in results}) or ["cpu"]
    return ScoreResult(
        day=day.isoformat(),
        rows_in=sum(r.rows_in for r in results),
        rows_scored=sum(r.scored for r in results),
        rows_dead_lettered=sum(r.dead for r in results),
        rows_logged=sum(r.logged for r in results),
        model_name=model.name,
        model_version=model.version,
        device=",".join(devices),
        workers=sorted({r.worker for r in results}),
        predictions_url=storage.partition_url(root, PREDICTIONS, day),
        dead_letter_url=storage.partition_url(root, DEAD_LETTER, day),
        prediction_log_url=storage.partition_url(root, PREDICTION_LOG, day),
    )
