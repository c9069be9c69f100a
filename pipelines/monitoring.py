"""Drift monitoring: the prediction log of recent days against the champion's training reference, with Evidently.

Per day it produces an Evidently report (data drift per feature and of the model's output), a missing-value check
(Evidently drops NaNs before its tests, so a jump in missing values is checked here), a multivariate signal (how the
features move together: :mod:`pipelines.multivariate_drift`), the drift share and realized metric per value of
``monitoring.segments`` (:mod:`pipelines.segments`), and, when labels for logged keys have arrived, the champion's
realized metric. Reports go to ``<root>/reports/date=D/`` and to an MLflow run
tagged with the model version, whose metrics chart drift over time in the MLflow UI.
"""

from __future__ import annotations

import logging
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import metrics
from pipelines.config import Config
from pipelines.drift_report import ReportInputs, publish_report
from pipelines.drift_tests import assess_drift, columns_to_test, drift_verdicts, import_evidently
from pipelines.errors import DataError
from pipelines.modeling import model_input, score_metric
from pipelines.multivariate_drift import Reconstruction, fit_reconstruction
from pipelines.records import jsonable
from pipelines.registry import ModelRef, Registry, connect, holdout_metric, require_alias
from pipelines.segments import metric_by_segment, segment_drift
from pipelines.storage import Lake, Table
from pipelines.table_format import concat
from pipelines.training import PREDICTION, PROBABILITY, REFERENCE_ARTIFACT, read_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftResult:
    day: str
    status: str  # "checked" or "skipped"
    reason: str
    model_version: str | None = None
    rows_current: int = 0
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    missing_alerts: list[str] = field(default_factory=list)
    missing_share_rise: dict[str, float] = field(default_factory=dict)  # alerted column -> rise (1.0: all missing)
    all_missing: list[str] = field(default_factory=list)  # features entirely missing in the window (untestable)
    output_column: str | None = None  # the model output whose drift was tested
    output_drift: dict[str, Any] | None = None  # its verdict: score, threshold, method, drifted
    multivariate: dict[str, Any] | None = None  # PCA reconstruction error vs its threshold (multivariate_drift)
    segments: dict[str, Any] = field(default_factory=dict)  # column -> value -> rows, drift share, realized metric
    labeled_segments: dict[str, Any] | None = None  # the newest labeled day's metric per segment value (the trigger)
    realized_metric: float | None = None
    realized_rows: int = 0
    realized_day: str | None = None  # the day the realized metric is of (for the retrain trigger: a labeled day)
    estimated_metric: float | None = None  # the checked day's CBPE estimate (performance table), for its trigger
    champion_metric: float | None = None
    report_url: str | None = None
    mlflow_run_id: str | None = None
    experiment_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def output_column(config: Config) -> str:
    """The model output whose drift is checked: the probability for classification, else the prediction."""
    return PROBABILITY if config.task == "classification" else PREDICTION


def load_reference(registry: Registry, model: ModelRef) -> pd.DataFrame:
    """The reference sample stored with the champion's training run; its absence is an error naming the run.

    Kept for as long as ``registry`` (the connection a run of days checks every day with): a training run's
    artifact never changes, and downloading and parsing it was a fixed cost of every checked day."""
    held = _REFERENCES.setdefault(registry, {})
    run_id = str(model.run_id)
    if run_id not in held:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = registry.download_artifact(run_id, REFERENCE_ARTIFACT, Path(tmp))
            except FileNotFoundError as exc:
                raise DataError(
                    f"reference artifact {REFERENCE_ARTIFACT} missing from run {model.run_id} of {model.name}"
                    f" v{model.version}: {exc}"
                ) from exc
            held[run_id] = pd.read_parquet(path)
    return held[run_id].copy(deep=False)


_REFERENCES: weakref.WeakKeyDictionary[Registry, dict[str, pd.DataFrame]] = weakref.WeakKeyDictionary()


def current_window(config: Config, day: date) -> pd.DataFrame:
    """Prediction-log rows of the ``monitoring.window_days`` days ending on ``day`` (missing days are skipped).

    Only the columns a drift check reads (features, model outputs, and the key and day the realized metric joins
    labels on), with categorical features as pandas categoricals: a window of millions of rows is decoded once per
    distinct category, not once per row. The days are read from one version of the table; a column the table lacks is
    left out (a day written without a column the table has reads it as missing values).
    """
    lake = Lake.from_config(config)
    dataset = config.dataset
    wanted = {dataset.key, "logical_date", *dataset.features.all, PREDICTION, PROBABILITY}
    version = lake.version(Table.PREDICTION_LOG)
    logged = set(lake.days(Table.PREDICTION_LOG, version)) if version is not None else set()
    days = [d for d in (day - timedelta(days=i) for i in range(config.monitoring.window_days)) if d in logged]
    columns = [c for c in lake.columns(Table.PREDICTION_LOG, version) if c in wanted]
    categories = [c for c in dataset.features.categorical if c in columns]
    return lake.read_days(Table.PREDICTION_LOG, days, columns, categories, version) if days else concat([])


def drift_input(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The features with the dtypes the model was fitted on (float numbers, object categories) and the model output."""
    output = output_column(config)
    return model_input(frame, config).assign(**{output: frame[output].to_numpy()})


def report_sample(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """At most ``monitoring.report_rows`` rows of ``frame`` for the rendered report, as :func:`drift_input`.

    Rendering costs seconds per 100k rows while the picture (distributions, shares) is settled long before that;
    the verdicts are computed on every row apart from it.
    """
    rows = min(len(frame), config.monitoring.report_rows)
    return drift_input(frame.sample(n=rows, random_state=config.training.seed), config)


def realized_metric(config: Config, current: pd.DataFrame, day: date) -> tuple[float | None, int]:
    """The champion's metric on the day's logged predictions whose labels had arrived by the end of the day (None
    without enough labels; with delayed labels, usually None: the performance table fills it in later)."""
    if not config.dataset.labels or current.empty:
        return None, 0
    known = day_labeled(config, current, day)
    if len(known) < config.monitoring.min_rows or known[config.dataset.target].nunique() < 2:
        return None, len(known)
    output = known[PROBABILITY] if config.task == "classification" else known[PREDICTION]
    return score_metric(config, known[config.dataset.target], output), len(known)


def day_labeled(config: Config, current: pd.DataFrame, day: date) -> pd.DataFrame:
    """The window's rows logged on ``day`` whose labels had arrived by its end, with their label."""
    logged = current[current["logical_date"].astype(str) == day.isoformat()]
    labels = read_labels(config, logged[config.dataset.key].astype(str), as_of=day)
    return logged.assign(**{config.dataset.key: logged[config.dataset.key].astype(str)}).merge(
        labels, on=config.dataset.key
    )


def segment_table(
    config: Config,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    output: str,
    day: date,
) -> dict[str, Any]:
    """Per ``monitoring.segments`` column and value: the window's drift share against the reference's rows of the
    value, and the realized metric on the day's rows labeled by its end (:mod:`pipelines.segments`)."""
    segments = config.monitoring.segments
    if not segments:
        return {}
    features = [c for c in numerical if c != output]
    table = segment_drift(reference, current, features, categorical, segments, config.monitoring.min_rows)
    if config.dataset.labels:
        labeled = day_labeled(config, current[[config.dataset.key, "logical_date", output, *segments]], day)
        for column, values in metric_by_segment(config, labeled, output, segments).items():
            for value, metric in values.items():
                entry = table[column].setdefault(value, {"rows": 0, "drift_share": None})
                entry.update(realized_metric=metric["value"], realized_rows=metric["rows"])
    return table


def check_drift(config: Config, day: date, registry: Registry | None = None, render: bool = True) -> DriftResult:
    """Compare the recent prediction log with the champion's reference; report to the lake and to MLflow (the HTML
    report drawn now, or later when ``render`` is False: :mod:`pipelines.drift_report`)."""
    registry = registry or connect(config)
    champion = require_alias(registry, config.model.name)
    current = current_window(config, day)
    if len(current) < config.monitoring.min_rows:
        reason = (
            f"{len(current)} logged rows in the {config.monitoring.window_days} days to {day};"
            f" monitoring.min_rows is {config.monitoring.min_rows}"
        )
        log.warning("drift check skipped: %s", reason)
        return DriftResult(
            day=day.isoformat(),
            status="skipped",
            reason=reason,
            model_version=champion.version,
            rows_current=len(current),
        )
    reference = load_reference(registry, champion)
    features = config.dataset.features
    absent = [c for c in features.all if c not in current.columns]
    if absent:
        raise DataError(f"prediction log for {day} lacks feature column(s) {absent}; was it written by this config?")
    output = output_column(config)
    reference_x = drift_input(reference, config)
    numerical, categorical, empty = columns_to_test(current, features, output)
    inputs = ReportInputs(
        report_sample(reference, config),
        report_sample(current, config),
        numerical,
        categorical,
        config.monitoring.drift_share_threshold,
        output,
    )
    if render:
        import_evidently()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-report") as renderer:
            # The report's Python work overlaps the verdicts' NumPy work, which leaves the GIL to it.
            rendering = renderer.submit(inputs.render)
            verdicts = drift_verdicts(reference_x, current, numerical, categorical)  # every row of the window
            snapshot = rendering.result()
    else:
        verdicts, snapshot = drift_verdicts(reference_x, current, numerical, categorical), None
    drift = assess_drift(
        verdicts, output, reference_x, current, features, empty, config.monitoring.missing_share_threshold
    )
    multivariate = multivariate_drift(config, registry, champion, reference_x, current, numerical, categorical, output)
    segments = segment_table(config, reference_x, current, numerical, categorical, output, day)
    realized, realized_rows = realized_metric(config, current[[config.dataset.key, "logical_date", output]], day)
    champion_metric = _champion_metric(registry, config, champion)
    report_url, run_id = publish_report(
        config,
        registry,
        day,
        champion,
        inputs,
        snapshot,
        verdicts,
        drift.missing,
        drift.drift_share,
        realized,
        realized_rows,
        multivariate,
        segments,
    )
    result = DriftResult(
        day=day.isoformat(),
        status="checked",
        reason=drift.reason,
        model_version=champion.version,
        rows_current=len(current),
        drift_share=drift.drift_share,
        drifted_columns=drift.drifted_columns,
        missing_alerts=sorted(drift.missing),
        missing_share_rise=drift.missing,
        all_missing=empty,
        output_column=output,
        output_drift=verdicts[output],
        multivariate=multivariate,
        segments=segments,
        realized_metric=realized,
        realized_rows=realized_rows,
        champion_metric=champion_metric,
        report_url=report_url,
        mlflow_run_id=run_id,
        experiment_id=registry.experiment_id,
    )
    log.info(
        "drift %s: share %.2f (%s), output drifted: %s, multivariate: %s, realized %s=%s",
        day,
        drift.drift_share,
        drift.drifted_columns,
        verdicts[output]["drifted"],
        multivariate,
        config.model.metric,
        realized,
    )
    metrics.write_drift(config.model.name, champion.version, day, drift.drift_share, realized)
    return result


def multivariate_drift(
    config: Config,
    registry: Registry,
    champion: ModelRef,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    output: str,
) -> dict[str, Any] | None:
    """The window's multivariate signal (:mod:`pipelines.multivariate_drift`) over the tested features (the model
    output left out: it is a function of them, not a feature), on every row of the window.

    The PCA fitted on the champion's reference is kept for as long as ``registry``, as the reference itself is
    (:func:`load_reference`): it depends only on the reference and the columns, and fitting it was most of the cost."""
    features = [c for c in numerical if c != output]
    monitoring = config.monitoring
    seed, variance = config.training.seed, monitoring.multivariate_variance
    key = (str(champion.run_id), tuple(features), tuple(categorical), variance, seed)
    held = _RECONSTRUCTIONS.setdefault(registry, {})
    if key not in held:
        held[key] = fit_reconstruction(reference, features, categorical, variance=variance, seed=seed)
    fitted, window = held[key], model_input(current, config)
    found = None if fitted is None else fitted.drift(window, sigmas=monitoring.multivariate_sigmas)
    return found.as_dict() if found is not None else None


_RECONSTRUCTIONS: weakref.WeakKeyDictionary[Registry, dict[tuple[Any, ...], Reconstruction | None]] = (
    weakref.WeakKeyDictionary()
)


def _champion_metric(registry: Registry, config: Config, champion: ModelRef) -> float | None:
    tag = registry.version(champion.name, champion.version).tags.get(holdout_metric(config.model.metric))
    return float(tag) if tag is not None else None
