"""Training: fit the configured pipeline on the last ``window_days`` of labeled features and register it in MLflow.

The run records what a reviewer needs to trust or reproduce the version: params, holdout metrics, the training
window, a hash of the training data, a signature, an input example and a reference sample of the training
features (with the model's predictions) that drift checks compare live data against. Its lineage too
(:mod:`pipelines.lineage`): the features table's Delta version it read, the hash and rendered list of the feature
definitions, and the history file versions the window's features were computed from.

A window day whose features were computed with other definitions than the config's (a window, a filter, a delay
changed since) is computed again with the current ones, in memory, by extraction's own code
(:func:`pipelines.features.build_day`), so a challenger never trains on stale columns; the lake is left as it is.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import lineage, model_artifacts, sources
from pipelines.config import Config
from pipelines.estimated_performance import log_calibration
from pipelines.loss_estimation import log_loss_holdout
from pipelines.modeling import build_model, evaluate, model_input, model_output
from pipelines.records import defined, jsonable
from pipelines.registry import Registry, RunKind, Tag, connect, crown_if_vacant, holdout_metric, tracked_run
from pipelines.sources import read_source
from pipelines.storage import Lake, Table
from pipelines.validation import DataError, require_columns

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference.parquet"
PREDICTION = "prediction"
PROBABILITY = "probability"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    champion_version: str
    metric: str
    metric_value: float
    window_start: str
    window_end: str
    n_train: int
    n_holdout: int

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _index_label_file(config: Config, url: str) -> sources.FileEntry:
    """Key range of a label file its footer cannot give (CSV, non-string keys): read its key column once."""
    keys = read_source(url, config.dataset, config.storage.options, columns=[config.dataset.key])
    require_columns(keys, [config.dataset.key], url)
    values = keys[config.dataset.key].dropna().astype(str)
    low, high = (values.min(), values.max()) if len(values) else (None, None)
    return sources.FileEntry(url=url, version="", rows=len(keys), low=low, high=high)


def known_by(config: Config, labels: pd.DataFrame, as_of: date | None) -> pd.DataFrame:
    """The labels known by the end of ``as_of`` (UTC), when the source says when each label arrived
    (``dataset.label_time``); a label without an arrival time counts as known from the start. Pure."""
    column = config.dataset.label_time
    if as_of is None or column is None:
        return labels
    arrived = _utc_times(labels[column])
    return labels[arrived.isna() | (arrived < pd.Timestamp(as_of + timedelta(days=1), tz="UTC"))]


def _utc_times(values: pd.Series) -> pd.Series:
    """Arrival times as UTC timestamps (unparseable: missing); a column parsed already is returned as it is (parsing
    it again with ``format="mixed"`` costs as much as parsing text)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) and str(values.dtype.tz) == "UTC":
        return values
    return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")


_LABEL_FILES: dict[tuple[str, str, tuple[str, ...]], pd.DataFrame] = {}
_LABEL_FILES_KEPT = 1024  # label files kept parsed in a process; a day's file is a few thousand rows


def _label_file(config: Config, entry: sources.FileEntry, columns: list[str]) -> pd.DataFrame:
    """One version of one label file, its arrival times parsed, kept for the process: a run of days
    (``make bootstrap``) asks for the same files several times a day (the realized metric, the performance table,
    the labels since the champion), and parsing arrival times was most of that. A changed file is a new version."""
    cached = (entry.url, entry.version, tuple(columns))
    if cached not in _LABEL_FILES:
        frame = read_source(entry.url, config.dataset, config.storage.options)
        require_columns(frame, columns, entry.url)
        frame = frame[columns]
        column = config.dataset.label_time
        if column is not None:
            frame = frame.assign(**{column: _utc_times(frame[column])})
        if len(_LABEL_FILES) >= _LABEL_FILES_KEPT:
            _LABEL_FILES.clear()
        _LABEL_FILES[cached] = frame
    return _LABEL_FILES[cached]


def read_labels(config: Config, keys: Iterable[str] | None = None, as_of: date | None = None) -> pd.DataFrame:
    """The label source as ``key -> target`` (for ``keys`` only, when given); a key labeled twice keeps its last label.

    With ``as_of``, only the labels known by the end of that day (see :func:`known_by`): a run for day D, or a
    rerun of it, sees the labels that had arrived by then and no later ones.

    With ``keys``, only label files whose key range (indexed once per file version, see :mod:`pipelines.sources`)
    can hold one of them are read, so a drift check or a training window does not read the whole label history
    when keys grow with time (sequential or time-prefixed ids); with random keys every file may qualify.
    """
    dataset = config.dataset
    assert dataset.labels is not None
    entries = sources.refresh(
        config,
        sources.LABELS_INDEX,
        dataset.labels,
        partial(_index_label_file, config),
        kind="key",
        column=dataset.key,
    )
    wanted = None if keys is None else {str(k) for k in keys}
    chosen = list(entries.values()) if wanted is None else sources.holding_keys(entries.values(), wanted)
    columns = [dataset.key, dataset.target, *([dataset.label_time] if dataset.label_time else [])]
    frames = [known_by(config, _label_file(config, entry, columns), as_of) for entry in chosen]
    if not frames:
        return pd.DataFrame({dataset.key: pd.Series(dtype=str), dataset.target: pd.Series(dtype=float)})
    labels = pd.concat(frames, ignore_index=True)
    if dataset.label_time:  # the latest known label of a key wins, whichever file holds it
        labels[dataset.label_time] = _utc_times(labels[dataset.label_time])
        labels = labels.sort_values(dataset.label_time, kind="stable", na_position="first")
    labels[dataset.key] = labels[dataset.key].astype(str)
    if wanted is not None:
        labels = labels[labels[dataset.key].isin(wanted)]
    log.debug("labels: read %d of %d label files", len(chosen), len(entries))
    return labels.drop_duplicates(dataset.key, keep="last")[[dataset.key, dataset.target]]


def window_days(config: Config, end_day: date, version: int | None = None) -> list[date]:
    """The extracted days of the ``window_days`` ending on ``end_day`` (inclusive), in the features table's
    ``version`` (default its newest); none is an error saying what to run."""
    lake = Lake.from_config(config)
    wanted = {end_day - timedelta(days=i) for i in range(config.training.window_days)}
    days = [d for d in lake.days(Table.FEATURES, version) if d in wanted]
    if not days:
        raise DataError(
            f"no feature partitions between {min(wanted)} and {end_day} under {lake.table_url(Table.FEATURES)}; "
            "run feature_extraction for those dates first"
        )
    return days


@dataclass(frozen=True)
class WindowLineage:
    """What a window's features were computed with: the days computed again, and per history table the file
    versions (url -> version) the days' windows could see."""

    recomputed: list[date]
    history: dict[str, dict[str, str]]


def window_features(config: Config, days: list[date], version: int | None = None) -> tuple[pd.DataFrame, WindowLineage]:
    """The feature rows of ``days`` with the config's definitions: read from the features table at ``version``,
    except the days its records say were computed with other definitions (or before they were recorded), which
    are computed again from the source and the history."""
    from pipelines.features import build_day

    records = sources.day_records(config)
    stale = lineage.stale_days(records, days, lineage.definitions_hash(config))
    stored = [d for d in days if d not in stale]
    frames = [Lake.from_config(config).read_days(Table.FEATURES, stored, version=version)] if stored else []
    seen = [records[d].get(lineage.HISTORY, {}) for d in stored]
    if stale:
        log.warning("features of %s were computed with other definitions: computing them again", stale)
    for day in stale:
        built = build_day(config, day)
        frames.append(built.features)
        seen.append(built.history)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame, WindowLineage(stale, lineage.merged_history(seen))


def labeled(config: Config, frame: pd.DataFrame, days: list[date], as_of: date) -> pd.DataFrame:
    """The window's feature rows joined with the labels known by the end of ``as_of``, sorted by event time; too
    few labeled rows, or a classification target without two classes, is an error."""
    dataset = config.dataset
    if dataset.labels:
        frame = frame.drop(columns=[dataset.target], errors="ignore")
        labels = read_labels(config, frame[dataset.key], as_of=as_of)
        frame = frame.merge(labels, on=dataset.key, how="inner", validate="one_to_one")
    require_columns(frame, [dataset.target], f"features {days[0]}..{days[-1]}")
    frame = frame[frame[dataset.target].notna()]
    if len(frame) < config.training.min_rows:
        raise DataError(
            f"only {len(frame)} labeled rows in {days[0]}..{days[-1]} (labels known by {as_of});"
            f" training.min_rows is {config.training.min_rows}"
        )
    if config.task == "classification" and frame[dataset.target].nunique() != 2:
        values = sorted(frame[dataset.target].unique().tolist())[:10]
        raise DataError(f"column {dataset.target}: binary classification needs exactly two classes, found {values}")
    return frame.sort_values(dataset.event_time, kind="stable").reset_index(drop=True)


def labeled_window(
    config: Config, end_day: date, as_of: date | None = None, version: int | None = None
) -> tuple[pd.DataFrame, list[date]]:
    """Feature rows of the ``window_days`` ending on ``end_day`` (inclusive), with the config's definitions (see
    :func:`window_features`), joined with the labels known by the end of ``as_of`` (default: ``end_day``); read
    from the features table's ``version`` (default its newest)."""
    days = window_days(config, end_day, version)
    frame, _ = window_features(config, days, version)
    return labeled(config, frame, days, as_of or end_day), days


def data_hash(frame: pd.DataFrame) -> str:
    """A content hash of the training rows, so two versions trained on the same data can be recognised."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


def _reference_sample(config: Config, window: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Every feature row of the training window, labeled or not, with the model's outputs: what drift checks compare
    live data with.

    Not the labeled rows alone: labels arrive late (and, in real feeds, at a pace that depends on the outcome), so
    the rows labeled by training time are a smaller, possibly biased subset of the population the model serves; a
    reference drawn from them would make a stable day look drifted. Rows are sampled first, so the model predicts
    only the rows kept.
    """
    window = model_input(window, config)
    sample = window.sample(n=min(config.training.reference_rows, len(window)), random_state=config.training.seed)
    features = sample.copy()
    sample[PREDICTION] = model.predict(features)
    if config.task == "classification":
        sample[PROBABILITY] = model.predict_proba(features)[:, 1]
    return sample.reset_index(drop=True)


def train_and_register(
    config: Config,
    end_day: date,
    reason: str = "scheduled",
    as_of: date | None = None,
    registry: Registry | None = None,
) -> TrainResult:
    """Fit on the older part of the window ending on ``end_day`` (with the labels known by the end of ``as_of``,
    default ``end_day``), score the newest ``holdout_fraction``, log everything, register a version."""
    dataset = config.dataset
    features_version = Lake.from_config(config).version(Table.FEATURES)  # read at it: "what data trained vN"
    days = window_days(config, end_day, features_version)
    window_frame, used = window_features(config, days, features_version)
    frame = labeled(config, window_frame, days, as_of or end_day)
    split = int(len(frame) * (1 - config.training.holdout_fraction))
    train, holdout = frame.iloc[:split], frame.iloc[split:]
    x_train, y_train = model_input(train, config), train[dataset.target]
    x_holdout, y_holdout = model_input(holdout, config), holdout[dataset.target]

    model = build_model(config)
    model.fit(x_train, y_train)
    scores = evaluate(model, x_holdout, y_holdout, config.task)
    if defined(scores.get(config.model.metric)) is None:
        classes = y_holdout.value_counts().to_dict() if config.task == "classification" else {}
        raise DataError(
            f"metric {config.model.metric} is undefined on the holdout of the window {days[0]}..{days[-1]}"
            f" ({len(holdout)} rows{f', classes {classes}' if classes else ''}); a longer training.window_days or a"
            " larger training.holdout_fraction gives it more rows"
        )

    registry = registry or connect(config)
    name = config.model.name
    window = {Tag.WINDOW_START: days[0].isoformat(), Tag.WINDOW_END: days[-1].isoformat()}
    tags = {Tag.MODEL_NAME: name, **window, Tag.DATA_HASH: data_hash(frame), Tag.REASON: reason, Tag.TASK: config.task}
    tags[Tag.FEATURES_DELTA_VERSION] = str(features_version)
    definitions = lineage.definitions_hash(config)
    tags[Tag.FEATURE_DEFINITIONS] = definitions
    tags[Tag.RECOMPUTED_DAYS] = str(len(used.recomputed))
    tags.update({Tag.history_files(table): lineage.files_hash(files) for table, files in used.history.items()})
    with tracked_run(registry, RunKind.TRAINING, f"train-{end_day.isoformat()}", tags) as run_id:
        registry.log(
            run_id,
            metrics={holdout_metric(metric): value for metric, value in scores.items()},
            params={
                "estimator": config.model.estimator,
                **config.model.params,
                "window_days": config.training.window_days,
                "n_train": len(train),
                "n_holdout": len(holdout),
            },
        )
        registry.log_record(
            run_id,
            lineage.RECORD_ARTIFACT,
            {
                "definitions_hash": definitions,
                "definitions": lineage.definitions(config),
                "recomputed_days": [d.isoformat() for d in used.recomputed],
                "history_files": used.history,
            },
        )
        example = x_train.dropna().head(5)
        source = model_artifacts.log_model(config.tracking_uri, run_id, model, config.model.flavor, example)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            _reference_sample(config, window_frame, model).to_parquet(path, index=False)
            registry.log_artifact(run_id, path, str(Path(REFERENCE_ARTIFACT).parent))
        output = model_output(model, x_holdout, config.task)
        if config.task == "classification":  # what estimated performance calibrates the scores with
            log_calibration(registry, run_id, y_holdout.to_numpy(), output)
        else:  # what direct loss estimation fits the model of the loss on
            log_loss_holdout(registry, run_id, x_holdout, output, y_holdout.to_numpy())
        version = registry.register_version(name, source, run_id)
    metric_value = scores[config.model.metric]
    registry.set_version_tag(name, version, holdout_metric(config.model.metric), f"{metric_value:.6f}")
    for key, value in {**window, Tag.FEATURE_DEFINITIONS: definitions}.items():
        registry.set_version_tag(name, version, key, value)
    champion = crown_if_vacant(registry, name, version)
    log.info(
        "registered %s v%s (%s=%.4f on %d holdout rows); champion is v%s",
        name,
        version,
        config.model.metric,
        metric_value,
        len(holdout),
        champion,
    )
    return TrainResult(
        run_id=run_id,
        model_name=name,
        version=version,
        champion_version=champion,
        metric=config.model.metric,
        metric_value=metric_value,
        n_train=len(train),
        n_holdout=len(holdout),
        window_start=window[Tag.WINDOW_START],
        window_end=window[Tag.WINDOW_END],
    )
