"""Drift monitoring: the prediction log of recent days against the champion's training reference, with Evidently.

Per day it produces an Evidently report (data drift per feature and of the model's output), a missing-value check
(Evidently drops NaNs before its tests, so a jump in missing values is checked here), and, when labels for logged
keys have arrived, the champion's realized metric. Reports go to ``<root>/reports/date=D/`` and to an MLflow run
tagged with the model version, whose metrics chart drift over time in the MLflow UI.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from pipelines import metrics, registry
from pipelines.config import Config, FeatureSpec
from pipelines.errors import DataError
from pipelines.modeling import model_input, score_metric
from pipelines.records import jsonable
from pipelines.storage import Lake, Table, concat
from pipelines.training import PREDICTION, PROBABILITY, REFERENCE_ARTIFACT, read_labels

log = logging.getLogger(__name__)

REPORT_FOLDER = "drift"  # the drift run's artifact folder
REPORT_HTML = "drift_report.html"  # the Evidently report, with the retraining decision on top once it is taken


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
    realized_metric: float | None = None
    realized_rows: int = 0
    realized_day: str | None = None  # the day the realized metric is of (for the retrain trigger: a labeled day)
    champion_metric: float | None = None
    report_url: str | None = None
    mlflow_run_id: str | None = None
    experiment_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def output_column(config: Config) -> str:
    """The model output whose drift is checked: the probability for classification, else the prediction."""
    return PROBABILITY if config.task == "classification" else PREDICTION


def load_reference(config: Config, model: registry.ModelRef) -> pd.DataFrame:
    """The reference sample stored with the champion's training run; its absence is an error naming the run."""
    try:
        path = mlflow.artifacts.download_artifacts(run_id=model.run_id, artifact_path=REFERENCE_ARTIFACT)
    except Exception as exc:  # the store says "not found" in several ways
        raise DataError(
            f"reference artifact {REFERENCE_ARTIFACT} missing from run {model.run_id} of {model.name}"
            f" v{model.version}: {exc}"
        ) from exc
    return pd.read_parquet(path)


def current_window(config: Config, day: date) -> pd.DataFrame:
    """Prediction-log rows of the ``monitoring.window_days`` days ending on ``day`` (missing days are skipped).

    Only the columns a drift check reads (features, model outputs, and the key and day the realized metric joins
    labels on), with categorical features as pandas categoricals: a window of millions of rows is decoded once per
    distinct category, not once per row. A column a day lacks is left out of that day (NaN after concatenation).
    """
    lake = Lake.from_config(config)
    dataset = config.dataset
    wanted = {dataset.key, "logical_date", *dataset.features.all, PREDICTION, PROBABILITY}
    frames = []
    for d in (day - timedelta(days=i) for i in range(config.monitoring.window_days)):
        if lake.exists(Table.PREDICTION_LOG, d):
            columns = [c for c in lake.columns(Table.PREDICTION_LOG, d) if c in wanted]
            categories = [c for c in dataset.features.categorical if c in columns]
            frames.append(lake.read(Table.PREDICTION_LOG, d, columns, categories))
    return concat(frames)


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


def missing_alerts(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], threshold: float
) -> dict[str, float]:
    """Columns whose missing share rose by more than ``threshold`` over the reference: column -> rise."""
    rises = current[columns].isna().mean() - reference[columns].isna().mean()
    return {c: float(v) for c, v in rises.items() if v > threshold}


@dataclass(frozen=True)
class DriftAssessment:
    """The numbers and flags a drift check reports, decided from per-column verdicts and the two frames."""

    drift_share: float  # share of the tested feature columns that drifted (the model output is not counted)
    drifted_columns: list[str]
    missing: dict[str, float]  # column -> rise of its missing share over the reference (1.0: all missing now)
    reason: str


def columns_to_test(
    current: pd.DataFrame, features: FeatureSpec, output: str
) -> tuple[list[str], list[str], list[str]]:
    """Numerical (with the model output) and categorical columns to test, and the feature columns entirely missing
    in ``current`` (no drift test can run on them; they are flagged as missing instead)."""
    empty = [c for c in features.all if current[c].isna().all()]
    numerical = [c for c in features.numerical if c not in empty] + [output]
    categorical = [c for c in features.categorical if c not in empty]
    return numerical, categorical, empty


def assess_drift(
    verdicts: dict[str, dict[str, Any]],
    output: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: FeatureSpec,
    empty: list[str],
    missing_threshold: float,
) -> DriftAssessment:
    """Drift share over the tested features, the drifted ones, and missing-value alerts (pure: no I/O)."""
    tested = [c for c in verdicts if c != output]
    drifted = sorted(c for c in tested if verdicts[c]["drifted"])
    missing = missing_alerts(reference, current, features.all, missing_threshold)
    for column in empty:
        missing.setdefault(column, 1.0)
    reason = f"{len(drifted)} of {len(tested)} columns drifted" + (f"; all missing: {empty}" if empty else "")
    return DriftAssessment(len(drifted) / max(1, len(tested)), drifted, missing, reason)


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    output: str | None = None,
) -> Any:
    """One Evidently DataDriftPreset report over the given columns (Evidently picks each column's test).

    Built as the pipeline decides: the preset's dataset-drift verdict uses ``drift_share`` (pass the configured
    ``monitoring.drift_share_threshold``; 0.5 is Evidently's default), and the model ``output``, when named, gets its
    own ``ValueDrift`` outside the preset, so the report's drifted-columns share counts the features only, as the
    pipeline's drift share does.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = [*numerical, *categorical]
    features = [c for c in columns if c != output]
    metrics: list[Any] = [DataDriftPreset(columns=features, drift_share=drift_share)]
    if output is not None:
        metrics.append(ValueDrift(column=output))
    return Report(metrics).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def import_evidently() -> None:
    """Import Evidently's report and tests in this thread, before threads use them: Evidently's modules import each
    other in a cycle, and a first import from two threads at once fails on it (``cannot import name``)."""
    import evidently.legacy.calculations.stattests.registry
    import evidently.presets  # noqa: F401


def select_test(reference: pd.Series, current: pd.Series, feature_type: Any) -> Any:
    """The test Evidently picks for a column, asked without hashing every current value twice.

    Evidently's pick (``_get_default_stattest``) depends on the reference (its size, its values) and, of the current
    values, only on how many distinct values both samples hold together, compared with 2 and 5. So it is asked with
    the current column's distinct values in place of its rows, or with none once the reference alone holds more than
    5 (more current values cannot change the pick): the same answer, for a fraction of the work on a large window.
    """
    from evidently.legacy.calculations.stattests.registry import get_stattest

    many = reference.head(1000).nunique() > 5 or reference.nunique() > 5  # the head settles it for most columns
    distinct = current.iloc[:0] if many else pd.Series(current.unique())
    return get_stattest(reference, distinct, feature_type, None)


def column_drift(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, Any]:
    """One column's drift with the test Evidently would pick for it (its own selection and implementation).

    Missing values (and infinities, for numbers) are dropped first, as Evidently does; that is why missing shares
    are checked separately.
    """
    from evidently.legacy.core import ColumnType

    feature_type = ColumnType.Numerical if kind == "num" else ColumnType.Categorical
    reference, current = _valid(reference, kind), _valid(current, kind)
    test = select_test(reference, current, feature_type)
    result = test(reference, current, feature_type, None)
    return {
        "score": float(result.drift_score),
        "threshold": float(result.actual_threshold),
        "method": test.display_name,
        "drifted": bool(result.drifted),
        "rows": len(current),  # tested: all of the window's non-missing values, not the report's sample
    }


def _valid(values: pd.Series, kind: str) -> pd.Series:
    if kind == "num":
        values = values.astype("float64", copy=False)
        finite = np.isfinite(values.to_numpy())
        return values if finite.all() else values[finite]
    return values.dropna()


def drift_verdicts(
    reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-column verdicts, the columns tested in parallel threads (one per core).

    Columns are independent, and the tests' heavy parts (sorting, hashing, histograms in NumPy and pandas) release
    the GIL, so threads use every core without copying the window into worker processes.
    """
    import_evidently()
    kinds = {**{c: "num" for c in numerical}, **{c: "cat" for c in categorical}}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="drift") as pool:
        futures = {c: pool.submit(column_drift, reference[c], current[c], k) for c, k in kinds.items()}
        return {c: future.result() for c, future in futures.items()}


def column_verdicts(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's drift score, the method's threshold and whether it calls the column drifted."""
    verdicts: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        score, threshold, method = float(metric["value"]), float(config["threshold"]), config.get("method", "")
        p_value = "p_value" in method.replace("-", "_").lower()
        drifted = score < threshold if p_value else score >= threshold
        verdicts[config["column"]] = {"score": score, "threshold": threshold, "method": method, "drifted": drifted}
    return verdicts


def realized_metric(config: Config, current: pd.DataFrame, day: date) -> tuple[float | None, int]:
    """The champion's metric on the day's logged predictions whose labels had arrived by the end of the day (None
    without enough labels; with delayed labels, usually None: the performance table fills it in later)."""
    if not config.dataset.labels or current.empty:
        return None, 0
    logged = current[current["logical_date"].astype(str) == day.isoformat()]
    labels = read_labels(config, logged[config.dataset.key].astype(str), as_of=day)
    known = logged.assign(**{config.dataset.key: logged[config.dataset.key].astype(str)}).merge(
        labels, on=config.dataset.key
    )
    if len(known) < config.monitoring.min_rows or known[config.dataset.target].nunique() < 2:
        return None, len(known)
    output = known[PROBABILITY] if config.task == "classification" else known[PREDICTION]
    return score_metric(config, known[config.dataset.target], output), len(known)


def check_drift(config: Config, day: date) -> DriftResult:
    """Compare the recent prediction log with the champion's reference; report to the lake and to MLflow."""
    client = registry.connect(config)
    champion = registry.require_alias(client, config.model.name)
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
    reference = load_reference(config, champion)
    features = config.dataset.features
    absent = [c for c in features.all if c not in current.columns]
    if absent:
        raise DataError(f"prediction log for {day} lacks feature column(s) {absent}; was it written by this config?")
    output = output_column(config)
    reference_x = drift_input(reference, config)
    numerical, categorical, empty = columns_to_test(current, features, output)
    shown_reference, shown = (report_sample(frame, config) for frame in (reference, current))
    import_evidently()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-report") as renderer:
        # The report's Python work overlaps the verdicts' NumPy work, which leaves the GIL to it.
        rendering = renderer.submit(
            evidently_drift,
            shown_reference,
            shown,
            numerical,
            categorical,
            config.monitoring.drift_share_threshold,
            output,
        )
        verdicts = drift_verdicts(reference_x, current, numerical, categorical)  # every row of the window
        snapshot = rendering.result()
    drift = assess_drift(
        verdicts, output, reference_x, current, features, empty, config.monitoring.missing_share_threshold
    )
    realized, realized_rows = realized_metric(config, current[[config.dataset.key, "logical_date", output]], day)
    champion_metric = _champion_metric(client, config, champion)
    report_url, run_id = _publish_report(
        config, day, champion, snapshot, verdicts, drift.missing, drift.drift_share, realized, realized_rows
    )
    experiment_id = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
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
        realized_metric=realized,
        realized_rows=realized_rows,
        champion_metric=champion_metric,
        report_url=report_url,
        mlflow_run_id=run_id,
        experiment_id=experiment_id,
    )
    log.info(
        "drift %s: share %.2f (%s), output drifted: %s, realized %s=%s",
        day,
        drift.drift_share,
        drift.drifted_columns,
        verdicts[output]["drifted"],
        config.model.metric,
        realized,
    )
    metrics.write_drift(config.model.name, champion.version, day, drift.drift_share, realized)
    return result


def _champion_metric(client: MlflowClient, config: Config, champion: registry.ModelRef) -> float | None:
    tag = client.get_model_version(champion.name, champion.version).tags.get(f"holdout_{config.model.metric}")
    return float(tag) if tag is not None else None


def _publish_report(
    config: Config,
    day: date,
    champion: registry.ModelRef,
    snapshot: Any,
    verdicts: dict[str, dict[str, Any]],
    missing: dict[str, float],
    share: float,
    realized: float | None,
    realized_rows: int,
) -> tuple[str, str]:
    """HTML + JSON report into the day's reports partition and into an MLflow run with drift metrics."""
    summary = {
        "day": day.isoformat(),
        "model_version": champion.version,
        "drift_share": share,
        "columns": verdicts,
        "missing_share_rise": missing,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        snapshot.save_html(str(folder / REPORT_HTML))
        snapshot.save_json(str(folder / "drift_report.json"))
        (folder / "drift_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        lake = Lake.from_config(config)
        _publish_folder(lake, day, folder)
        with mlflow.start_run(run_name=f"drift-{day.isoformat()}") as run:
            mlflow.set_tags(
                {
                    "kind": "drift",
                    "day": day.isoformat(),
                    "model_name": champion.name,
                    "model_version": champion.version,
                }
            )
            metrics = {"drift_share": share, **{f"drift_score.{c}": v["score"] for c, v in verdicts.items()}}
            metrics.update({f"missing_share_rise.{c}": v for c, v in missing.items()})
            if realized is not None:
                metrics[f"realized_{config.model.metric}"] = realized
            metrics["realized_rows"] = realized_rows
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(tmp, artifact_path=REPORT_FOLDER)
    return lake.partition(Table.REPORTS, day), run.info.run_id


def _publish_folder(lake: Lake, day: date, folder: Path) -> None:
    """The files of ``folder`` as the day's reports partition, replacing it whole (staged, then moved into place)."""
    with lake.staged(Table.REPORTS, day) as staging:
        fs, path = lake.fs(staging)
        for file in folder.iterdir():
            fs.put_file(str(file), f"{path}/{file.name}")


_BANNER = re.compile(r"<!-- mlops-decision -->.*?<!-- /mlops-decision -->", re.DOTALL)


def decision_banner(title: str, retrain: bool | None, reason: str, lines: list[str]) -> str:
    """A static block of HTML stating a decision, its reason and one line per signal, for the top of a report."""
    colour = "#b71c1c" if retrain else "#1b5e20" if retrain is False else "#455a64"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return (
        '<!-- mlops-decision --><div id="mlops-decision" style="font-family:sans-serif;font-size:15px;'
        f'padding:12px 18px;margin:0 0 12px;border-left:8px solid {colour};background:#f5f5f5">'
        f'<div style="font-size:20px;font-weight:bold;color:{colour}">{html.escape(title)}</div>'
        f'<p style="margin:6px 0">{html.escape(reason)}</p>'
        f'<ul style="margin:4px 0">{items}</ul></div><!-- /mlops-decision -->'
    )


def with_banner(page: str, banner: str) -> str:
    """``page`` with ``banner`` first in its body, replacing any banner an earlier decision put there."""
    page = _BANNER.sub("", page)
    body = re.search(r"<body[^>]*>", page, re.IGNORECASE)
    cut = body.end() if body else 0
    return page[:cut] + banner + page[cut:]


def annotate_report(config: Config, result: DriftResult, banner: str) -> None:
    """Put ``banner`` at the top of a checked day's HTML report, in the lake and in its drift run's artifacts."""
    lake = Lake.from_config(config)
    day = date.fromisoformat(result.day)
    fs, path = lake.fs(lake.partition(Table.REPORTS, day))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in fs.ls(path, detail=False):
            fs.get_file(name, str(folder / Path(name).name))
        report = folder / REPORT_HTML
        report.write_text(with_banner(report.read_text(encoding="utf-8"), banner), encoding="utf-8")
        _publish_folder(lake, day, folder)
        if result.mlflow_run_id:
            MlflowClient(config.tracking_uri).log_artifact(result.mlflow_run_id, str(report), REPORT_FOLDER)
