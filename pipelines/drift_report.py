"""A checked day's drift report: the Evidently HTML, its JSON and summary published to the lake and logged to the
day's MLflow run, and the retraining decision written on top of it as a banner once it is taken.

The report is files, not a Delta table (``<root>/reports/date=D/``): whole documents for a browser and the MLflow UI,
not rows anyone queries; each is replaced whole (:meth:`pipelines.storage.Lake.put_files`).
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.config import Config
from pipelines.registry import ModelRef, Registry, RunKind, Tag, realized_metric, tracked_run
from pipelines.storage import Lake, Table

REPORT_FOLDER = "drift"  # the drift run's artifact folder
REPORT_HTML = "drift_report.html"  # the Evidently report, with the retraining decision on top once it is taken


def publish_report(
    config: Config,
    registry: Registry,
    day: date,
    champion: ModelRef,
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
        lake.put_files(Table.REPORTS, day, folder)
        tags = {Tag.DAY: day.isoformat(), Tag.MODEL_NAME: champion.name, Tag.MODEL_VERSION: champion.version}
        with tracked_run(registry, RunKind.DRIFT, f"drift-{day.isoformat()}", tags) as run_id:
            metrics = {"drift_share": share, **{f"drift_score.{c}": v["score"] for c, v in verdicts.items()}}
            metrics.update({f"missing_share_rise.{c}": v for c, v in missing.items()})
            if realized is not None:
                metrics[realized_metric(config.model.metric)] = realized
            metrics["realized_rows"] = realized_rows
            registry.log(run_id, metrics=metrics)
            registry.log_artifacts(run_id, folder, REPORT_FOLDER)
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
    """Put ``banner`` at the top of a checked day's HTML report, in the lake and in its drift run's artifacts."""
    lake = Lake.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lake.get_files(Table.REPORTS, day, folder)
        report = folder / REPORT_HTML
        report.write_text(with_banner(report.read_text(encoding="utf-8"), banner), encoding="utf-8")
        lake.put_files(Table.REPORTS, day, folder)
        if run_id:
            registry.log_artifact(run_id, report, REPORT_FOLDER)
