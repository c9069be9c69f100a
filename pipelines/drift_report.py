"""A checked day's drift report: the Evidently HTML, its JSON and summary published to the lake, logged to the
day's MLflow run and added to the Evidently workspace (:mod:`pipelines.evidently_workspace`), and the retraining
decision written on top of it as a banner once it is taken.

The report is files, not a Delta table (``<root>/reports/date=D/``): whole documents for a browser and the MLflow UI,
not rows anyone queries; each is replaced whole (:meth:`pipelines.storage.Lake.put_files`).

Rendering can wait (``render=False``, what ``make bootstrap`` asks for): Evidently's report is pure Python, ~0.5 s
a day whatever the rows, most of a checked day's cost over history, while nothing the pipeline decides reads it (the
verdicts are computed apart, on every row). A deferred report stores what it is drawn from instead (the two samples
and the columns' roles, :class:`ReportInputs`) beside the day's summary, and the decision banner beside them;
:func:`render_pending` draws the HTML and JSON later (another process, or ``make reports``), puts them in the same
folder and logs them to the same MLflow run, so the day ends with the same files as one rendered at once.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Config
from pipelines.drift_tests import evidently_drift
from pipelines.evidently_workspace import add_drift_snapshot
from pipelines.registry import ModelRef, Registry, RunKind, Tag, finite_metrics, realized_metric, tracked_run
from pipelines.segments import segment_metrics_for_mlflow
from pipelines.storage import Lake, Table

REPORT_FOLDER = "drift"  # the drift run's artifact folder
REPORT_HTML = "drift_report.html"  # the Evidently report, with the retraining decision on top once it is taken
REPORT_JSON = "drift_report.json"
SUMMARY = "drift_summary.json"
PENDING = "report_pending.json"  # a deferred report: what to draw it from, and the MLflow run it belongs to
BANNER = "decision_banner.html"  # a deferred report's decision, put on top when it is drawn
SAMPLES = ("report_reference.parquet", "report_current.parquet")


@dataclass(frozen=True)
class ReportInputs:
    """What a day's HTML report is drawn from: samples of the reference and of the window, and the columns' roles."""

    reference: pd.DataFrame
    current: pd.DataFrame
    numerical: list[str]
    categorical: list[str]
    drift_share: float
    output: str | None

    def render(self) -> Any:
        """Evidently's report (a snapshot: ``save_html``, ``save_json``)."""
        return evidently_drift(
            self.reference, self.current, self.numerical, self.categorical, self.drift_share, self.output
        )

    def save(self, folder: Path, run_id: str) -> None:
        for frame, name in zip((self.reference, self.current), SAMPLES, strict=True):
            frame.to_parquet(folder / name, index=False)
        roles = {"numerical": self.numerical, "categorical": self.categorical, "output": self.output}
        (folder / PENDING).write_text(json.dumps({**roles, "drift_share": self.drift_share, "run_id": run_id}))

    @classmethod
    def load(cls, folder: Path) -> tuple[ReportInputs, str]:
        """The inputs saved in ``folder`` and the MLflow run the report belongs to."""
        pending = json.loads((folder / PENDING).read_text())
        reference, current = (pd.read_parquet(folder / name) for name in SAMPLES)
        roles = {k: pending[k] for k in ("numerical", "categorical", "output", "drift_share")}
        return cls(reference, current, **roles), pending["run_id"]


def publish_report(
    config: Config,
    registry: Registry,
    day: date,
    champion: ModelRef,
    inputs: ReportInputs,
    snapshot: Any | None,
    verdicts: dict[str, dict[str, Any]],
    missing: dict[str, float],
    share: float,
    realized: float | None,
    realized_rows: int,
    multivariate: dict[str, Any] | None = None,
    segments: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """The day's summary and report (rendered, or its inputs when ``snapshot`` is None: drawn later by
    :func:`render_pending`) into the day's reports partition, an MLflow run with the drift metrics and the
    summary and report as artifacts, and the report as the day's drift snapshot in the Evidently workspace."""
    summary = {
        "day": day.isoformat(),
        "model_version": champion.version,
        "drift_share": share,
        "columns": verdicts,
        "missing_share_rise": missing,
        "multivariate": multivariate,
        "segments": segments or {},
    }
    lake = Lake.from_config(config)
    tags = {Tag.DAY: day.isoformat(), Tag.MODEL_NAME: champion.name, Tag.MODEL_VERSION: champion.version}
    with tracked_run(registry, RunKind.DRIFT, f"drift-{day.isoformat()}", tags) as run_id:
        metrics = {"drift_share": share, **{f"drift_score.{c}": v["score"] for c, v in verdicts.items()}}
        metrics.update({f"missing_share_rise.{c}": v for c, v in missing.items()})
        if realized is not None:
            metrics[realized_metric(config.model.metric)] = realized
        metrics["realized_rows"] = realized_rows
        if multivariate is not None:
            metrics.update(finite_metrics({f"multivariate_{k}": multivariate[k] for k in ("error", "threshold")}))
            metrics["multivariate_drifted"] = float(multivariate["drifted"])
        metrics.update(segment_metrics_for_mlflow("segment", segments or {}))
        registry.log(run_id, metrics=metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
            if snapshot is not None:
                snapshot.save_html(str(folder / REPORT_HTML))
                snapshot.save_json(str(folder / REPORT_JSON))
                registry.log_artifacts(run_id, folder, REPORT_FOLDER)
            else:
                registry.log_artifact(run_id, folder / SUMMARY, REPORT_FOLDER)
                inputs.save(folder, run_id)
            lake.put_files(Table.REPORTS, day, folder)
    if snapshot is not None:
        add_drift_snapshot(config, day, champion.version, snapshot)
    return lake.partition(Table.REPORTS, day), run_id


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


def annotate_report(config: Config, registry: Registry, day: date, run_id: str | None, banner: str) -> None:
    """Put ``banner`` at the top of a checked day's HTML report, in the lake and in its drift run's artifacts; a
    report still to be drawn keeps the banner beside its inputs, and gets it when drawn."""
    lake = Lake.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lake.get_files(Table.REPORTS, day, folder)
        report = folder / REPORT_HTML
        if not report.exists():
            (folder / BANNER).write_text(banner, encoding="utf-8")
            lake.put_files(Table.REPORTS, day, folder)
            return
        report.write_text(with_banner(report.read_text(encoding="utf-8"), banner), encoding="utf-8")
        lake.put_files(Table.REPORTS, day, folder)
        if run_id:
            registry.log_artifact(run_id, report, REPORT_FOLDER)


def pending_reports(config: Config) -> list[date]:
    """The days whose report is still to be drawn (:func:`render_pending`), oldest first: one listing of the lake."""
    return Lake.from_config(config).days_holding(Table.REPORTS, PENDING)


def render_pending(config: Config, registry: Registry, days: list[date] | None = None) -> list[date]:
    """Draw the deferred reports of ``days`` (default: every pending one), oldest first: the HTML (with its
    decision banner) and JSON replace the inputs in the day's folder and join the summary in its MLflow run, and
    the report is the day's drift snapshot in the Evidently workspace. Returns the days drawn."""
    lake = Lake.from_config(config)
    drawn = []
    for day in [d for d in pending_reports(config) if days is None or d in days]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            lake.get_files(Table.REPORTS, day, folder)
            inputs, run_id = ReportInputs.load(folder)
            snapshot = inputs.render()
            snapshot.save_html(str(folder / REPORT_HTML))
            snapshot.save_json(str(folder / REPORT_JSON))
            banner = folder / BANNER
            if banner.exists():
                page = folder / REPORT_HTML
                page.write_text(with_banner(page.read_text(encoding="utf-8"), banner.read_text()), encoding="utf-8")
            for name in (*SAMPLES, PENDING, BANNER):
                (folder / name).unlink(missing_ok=True)
            registry.log_artifacts(run_id, folder, REPORT_FOLDER)
            lake.put_files(Table.REPORTS, day, folder)
            version = json.loads((folder / SUMMARY).read_text())["model_version"]
        add_drift_snapshot(config, day, str(version), snapshot)
        drawn.append(day)
    return drawn
