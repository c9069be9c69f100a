"""Batch scoring on Dask: one day's feature partition -> keyed predictions, dead letters and a prediction log.

The champion alias is resolved once per run, so every row of a run is scored by the same version, and only with the
feature definitions it was trained with: a champion whose recorded definitions are not the config's, or a day
computed with others, fails the run before anything is scored, naming both hashes (:mod:`pipelines.lineage`). The
run plans its pieces from the features table's files of the day only (the Delta log's list, no other day looked at).
Each Dask task reads one Parquet row group, scores it with a model cached in its worker process, and writes its own
output files straight into each output table's folder of the day, named after the run's attempt and the row group; a
retried or recomputed task (a worker lost mid-run) overwrites its own files. Only file paths, sizes, counts and key
hashes travel back to the client, which commits each output table once, adding the files the gathered results name
and removing the day's previous ones, and only when rows in == scored + dead-lettered: each day holds every row
exactly once. Files of a failed run, or left over by a task whose result was not the one gathered, are in no commit:
no reader sees them, and ``vacuum`` deletes them (:mod:`pipelines.storage`).

A torch model too large for one worker is cut into stages held by several (``scoring.shards``,
:mod:`pipelines.sharding`): the same pieces, files and accounting, with the layers' work done by the stages.

A row that cannot be scored never sinks its batch: inputs are checked row by row first (missing key, a value
that is not a number or not finite, a duplicated key), and a batch the model rejects is split in halves until the
rows that fail alone are found. Those rows go to the dead-letter partition with the error. What is decided about
a frame (:func:`score_frame`) is apart from reading and writing it (:func:`score_piece`).

Retries, one layer per kind of fault: a model error on a batch is not retried (the same rows fail the same way;
bisection isolates them); a Dask task that raises (a transient read or write of its row group) is retried
``scoring.batch_retries`` times, and a task on a worker that dies is rerun by Dask, both without redoing the day;
Airflow's task retries cover what fails the whole run (the scheduler, the registry), except the errors that a
retry cannot fix (``pipelines.errors``), which fail at once.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, get_worker

from pipelines import lineage, metrics, model_artifacts, registry, sharding, sources
from pipelines.cluster import CPU, GPU, resource_workers
from pipelines.config import Config
from pipelines.errors import DataError, InvariantError
from pipelines.predict import in_sample, key_hashes, predict_frame
from pipelines.records import jsonable
from pipelines.storage import Lake, Table
from pipelines.table_format import DataFile

log = logging.getLogger(__name__)

ERROR = "error"
OUTPUTS = (Table.DEAD_LETTER, Table.PREDICTION_LOG, Table.PREDICTIONS)  # committed in this order: predictions last


@dataclass(frozen=True)
class Piece:
    """One row group of one Parquet file: the unit of work and of output."""

    index: int
    url: str
    row_group: int


@dataclass(frozen=True)
class ScoringJob:
    config: Config
    lake: Lake
    model: registry.ModelRef
    run_id: str
    day: date
    scored_at: datetime
    attempt: str  # names this call's files: a retried task rewrites its own, another run never touches them
    schemas: dict[Table, Any]  # each output table's columns and types (pyarrow schema; None before its first day)
    use_gpu: bool


@dataclass(frozen=True)
class FrameScores:
    """What scoring decided about one frame: each row is either predicted or dead-lettered with a reason."""

    predictions: pd.DataFrame  # key, prediction (+ probability); indexed by row position in the frame
    dead: pd.DataFrame  # the rows' original values as text, with ERROR
    logged: pd.DataFrame  # the sampled predicted rows: key, event time, features, prediction (+ probability)
    key_hashes: np.ndarray = field(repr=False)
    dead_positions: np.ndarray = field(repr=False)


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
    files: dict[Table, DataFile] = field(default_factory=dict, repr=False)  # the written, uncommitted output files


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
    stages: list[dict[str, Any]] = field(default_factory=list)  # a sharded model's stages: layers, worker, bytes

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _device(job: ScoringJob) -> str:
    """cuda for torch tasks placed on a GPU worker that has one; cpu otherwise."""
    if job.model.flavor != "torch":
        return "cpu"
    import torch

    if job.use_gpu and torch.cuda.is_available():
        return "cuda"
    if job.use_gpu:
        _warn_no_cuda()
    return "cpu"


@functools.cache
def _warn_no_cuda() -> None:
    """Said once per worker process, not once per row group."""
    log.warning("this worker declares %s but torch sees no CUDA device: scoring on CPU", GPU)


def score_frame(frame: pd.DataFrame, model: Any, config: Config, duplicates: tuple[int, ...] = ()) -> FrameScores:
    """Score an in-memory frame (row positions as index): checked input, isolated model failures, a key sample.

    ``duplicates`` are positions whose key appeared in an earlier frame: they are dead-lettered too. Pure apart
    from calling the model, so it is tested without Dask, files or MLflow.
    """
    dataset = config.dataset
    hashes = key_hashes(frame[dataset.key])
    predicted, reasons = predict_frame(frame, model, config, duplicates)
    keys = frame[dataset.key]
    predictions = pd.concat([keys if len(predicted) == len(frame) else keys.loc[predicted.index], predicted], axis=1)
    dead = frame.loc[reasons.index].astype("string").assign(**{ERROR: reasons.to_numpy()})
    sample = predicted.index[in_sample(hashes[predicted.index], config.monitoring.sample_rate)]
    logged = pd.concat(
        [frame.loc[sample, [dataset.key, dataset.event_time, *dataset.features.all]], predicted.loc[sample]], axis=1
    )
    return FrameScores(predictions, dead, logged, hashes, reasons.index.to_numpy(dtype=np.int64))


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


def score_piece(
    piece: Piece, job: ScoringJob, duplicates: tuple[int, ...] = (), stages: list[Any] | None = None
) -> PieceResult:
    """Score one row group into ``<attempt>-<index>.parquet`` of each output's day (not committed); ``duplicates``
    are positions to dead-letter; ``stages``, a sharded model's stages as [actor, worker address]
    (:mod:`pipelines.sharding`)."""
    config = job.config
    columns = [config.dataset.key, config.dataset.event_time, *config.dataset.features.all]
    frame = job.lake.read_row_group(piece.url, piece.row_group, columns)
    if stages:
        device = "cpu"  # of this task: the stages' own devices are recorded by the sharded run
        model = sharding.sharded_model(job.model, config.tracking_uri, stages, config.scoring.shard_batch_rows)
    else:
        device = _device(job)
        model = model_artifacts.load_model(job.model, config.tracking_uri, device, config.scoring.torch_batch_rows)
    scores = score_frame(frame, model, config, duplicates)

    name = f"{job.attempt}-{piece.index:05d}.parquet"
    outputs = {
        Table.PREDICTIONS: scores.predictions,
        Table.DEAD_LETTER: scores.dead,
        Table.PREDICTION_LOG: scores.logged,
    }
    files = {}
    for table, rows in outputs.items():  # no file for no rows: the commit keeps a day with none (pipelines.storage)
        stamped = rows.assign(**_stamp(job, len(rows)))
        written = job.lake.write_file(table, job.day, name, stamped, keep_empty=False, schema=job.schemas[table])
        if written is not None:
            files[table] = written
    try:
        worker = get_worker().address
    except ValueError:  # called outside a worker (tests, debugging)
        worker = "local"
    return PieceResult(
        index=piece.index,
        rows_in=len(frame),
        scored=len(scores.predictions),
        dead=len(scores.dead),
        logged=len(scores.logged),
        worker=worker,
        device=device,
        key_hashes=scores.key_hashes,
        dead_positions=scores.dead_positions,
        files=files,
    )


def plan_pieces(lake: Lake, day: date, columns: list[str]) -> list[Piece]:
    """Every row group of the day's feature files (from the table's log: no other day is listed), in file order;
    an unreadable file or a missing column is named."""
    pieces: list[Piece] = []
    for file_url in lake.files(Table.FEATURES, day):
        try:
            meta = lake.footer(file_url)
            groups, names, rows = meta.num_row_groups, set(meta.schema.to_arrow_schema().names), meta.num_rows
        except Exception as exc:  # a corrupt footer, a truncated file
            raise DataError(f"cannot read Parquet file {file_url}: {type(exc).__name__}: {exc}") from exc
        if rows == 0:
            continue  # no work (a day of no rows: its outputs are empty days, pipelines.storage)
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
    if not results:
        return {}
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
    return score_days(config, [day], run_id, client)[0]


@dataclass(frozen=True)
class _Submitted:
    """A day whose row groups are on the cluster: what publishing it needs."""

    job: ScoringJob
    pieces: list[Piece]
    futures: list[Any]


def score_days(config: Config, days: list[date], run_id: str, client: Client) -> list[ScoreResult]:
    """Score each of ``days`` with the current champion (resolved once: one version for the whole run) and publish
    each day on its own, in order, only when its rows in == scored + dead-lettered.

    Every day's row groups go to the cluster at once, so the workers score the next days while the client gathers
    and commits one: a run of days (``make bootstrap``) paid each day's round trips and commits in series before.
    Only while an output table has no schema yet (its first day) is the first day scored alone, so every file of
    the run is written with the types the table then holds. A day missing its features, or one of its files
    unreadable, fails the run before any day is scored; a day failing its row accounting fails it after the days
    before it are published, and none after it is."""
    lake = Lake.from_config(config)
    held = set(lake.days(Table.FEATURES))
    for day in days:
        if day not in held:
            source = lake.partition(Table.FEATURES, day)
            raise DataError(f"feature partition {source} does not exist; run feature_extraction for {day} first")
    store = registry.connect(config)
    champion = registry.require_alias(store, config.model.name)
    own = lineage.require_own_definitions(store, champion, config)  # never scored with definitions not its own
    lineage.require_days_computed_with(sources.day_records(config), days, own)
    model = model_artifacts.with_flavor(champion, config.tracking_uri)  # where it runs depends on it
    where, use_gpu = placement(client, model.flavor)
    # Dask reruns a task whose worker died on its own; `retries` is for a task that raised (a transient read or
    # write of its row group): one row group is redone, not the day. Model errors never reach it (bisection).
    where["retries"] = config.scoring.batch_retries
    columns = [config.dataset.key, config.dataset.event_time, *config.dataset.features.all]

    def new_job(day: date) -> ScoringJob:
        schemas = {table: lake.schema(table) for table in OUTPUTS}
        return ScoringJob(config, lake, model, run_id, day, datetime.now(UTC), uuid.uuid4().hex[:12], schemas, use_gpu)

    if model.flavor == "torch" and config.scoring.shards > 1:  # a day at a time through the run's stages
        return [_score_sharded(lake, client, new_job(day), plan_pieces(lake, day, columns)) for day in days]
    if model.flavor == "torch":
        sharding.check_unsharded(client, new_job(days[0]), resource_workers(client, GPU) if use_gpu else None)
    results: list[ScoreResult] = []
    pending = list(days)
    while pending:
        alone = any(lake.schema(table) is None for table in OUTPUTS)
        batch, pending = (pending[:1], pending[1:]) if alone else (pending, [])
        started = time.monotonic()
        planned = [(day, plan_pieces(lake, day, columns)) for day in batch]  # an unreadable file: no day scored
        submitted = []
        for day, pieces in planned:
            job = new_job(day)
            futures = client.map(score_piece, pieces, job=job, pure=False, **where)
            submitted.append(_Submitted(job, pieces, futures))
        try:
            for day_job in submitted:
                redo = functools.partial(_score_pieces, client, day_job.job, where)
                scored = _redone(client.gather(day_job.futures), day_job.pieces, redo)
                results.append(_publish(lake, day_job.job, scored, [], started))
                started = time.monotonic()
        except BaseException:
            client.cancel([future for day_job in submitted for future in day_job.futures])  # unpublished days
            raise
    return results


def _score_sharded(lake: Lake, client: Client, job: ScoringJob, pieces: list[Piece]) -> ScoreResult:
    """One day through a sharded model's stages (:mod:`pipelines.sharding`), built for the day and released."""
    started = time.monotonic()
    with sharding.stages(client, job) as pipeline:
        # The tasks only pre- and post-process (the stages hold the layers): any worker, not only GPU ones.
        score = functools.partial(pipeline.score, score_piece, retries=job.config.scoring.batch_retries)
        results = _redone(score(pieces, {}), pieces, score)
        stage_info = pipeline.info()
    return _publish(lake, job, results, stage_info, started)


def _redone(
    results: list[PieceResult],
    pieces: list[Piece],
    score: Callable[[list[Piece], dict[int, tuple[int, ...]]], list[PieceResult]],
) -> list[PieceResult]:
    """The day's pieces with those holding keys seen earlier in the day scored again, those rows dead-lettered."""
    duplicates = cross_piece_duplicates(results)
    if not duplicates:
        return results
    log.warning(
        "%d rows repeat a key seen in an earlier row group: dead-lettering them", sum(map(len, duplicates.values()))
    )
    again = score([pieces[i] for i in duplicates], duplicates)
    return [next((a for a in again if a.index == r.index), r) for r in results]


def _publish(
    lake: Lake, job: ScoringJob, results: list[PieceResult], stage_info: list[dict[str, Any]], started: float
) -> ScoreResult:
    """Check one scored day's row accounting and commit its three outputs (predictions last)."""
    config, day, model = job.config, job.day, job.model
    source = lake.partition(Table.FEATURES, day)
    result = replace(_totals(lake, day, model, results), stages=stage_info)
    if result.rows_in != result.rows_scored + result.rows_dead_lettered:
        raise InvariantError(
            f"scoring {source}: {result.rows_in} rows in but {result.rows_scored} scored"
            f" + {result.rows_dead_lettered} dead-lettered; nothing published"
        )
    files = {table: [r.files[table] for r in results if table in r.files] for table in OUTPUTS}
    share = result.rows_dead_lettered / result.rows_in if result.rows_in else 0.0
    if share > config.scoring.max_dead_letter_share:
        lake.commit(Table.DEAD_LETTER, day, files[Table.DEAD_LETTER])
        raise DataError(
            f"{result.rows_dead_lettered} of {result.rows_in} rows of {source} ({share:.1%}) could not be scored, "
            f"above scoring.max_dead_letter_share={config.scoring.max_dead_letter_share:.1%}; "
            f"predictions not published; errors in {lake.partition(Table.DEAD_LETTER, day)}"
        )
    for table in OUTPUTS:  # one transaction per table, replacing the batch's rows of the day
        lake.commit(table, day, files[table])
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
    metrics.write_scoring(
        model.name,
        model.version,
        day,
        result.rows_scored,
        result.rows_dead_lettered,
        result.rows_logged,
        time.monotonic() - started,
    )
    return result


def _score_pieces(
    client: Client, job: ScoringJob, where: dict[str, Any], pieces: list[Piece], duplicates: dict[int, tuple[int, ...]]
) -> list[PieceResult]:
    """One task per piece, anywhere ``where`` allows: each worker loads the whole model (once, cached)."""
    futures = [client.submit(score_piece, p, job, duplicates.get(p.index, ()), pure=False, **where) for p in pieces]
    return client.gather(futures)


def _totals(lake: Lake, day: date, model: registry.ModelRef, results: list[PieceResult]) -> ScoreResult:
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
        predictions_url=lake.partition(Table.PREDICTIONS, day),
        dead_letter_url=lake.partition(Table.DEAD_LETTER, day),
        prediction_log_url=lake.partition(Table.PREDICTION_LOG, day),
    )
