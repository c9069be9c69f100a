"""Evidently's own UI over days: each checked day's drift report and each performance row as a snapshot in a local
Evidently workspace (``monitoring.evidently_workspace``), one project per model, whose dashboard charts them.

The lake and MLflow stay the record; the workspace is a view for people (``make evidently-ui``), written from the
same snapshots: the drift report the check drew (Evidently's own drift share and per-column drift scores, on the
report's sample) and, per performance row, a one-row Evidently report of the realized and estimated metric.

**A day has one snapshot of each kind, whatever the reruns**: its id is derived from the project, the kind and the
day (:func:`snapshot_id`), so a rerun replaces the day's file in place, with no search through the history (whose
snapshots are large and grow with it). The file is written beside its place and renamed over it, so a crash leaves
the old snapshot or the new one, never half a file (a torn snapshot would stop the UI from starting); its first
byte is then written again, unchanged, because a running UI's file watcher reloads a snapshot on a write to it and
ignores the rename (its event names the staged file). Why not ``Workspace.add_run``: it always mints a new id, so a
rerun would duplicate the day unless every earlier snapshot were read to find the day's (and ``Workspace(path)``
reads them all anyway: :func:`open_project`).

The project is found again by its name (``model.name``); its dashboard has a tab of the pipeline's own panels,
rewritten when the config asks for others (a feature added), leaving any other tab alone.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import Config
from pipelines.registry import realized_metric

if TYPE_CHECKING:
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot
    from evidently.ui.storage.local.base import LocalState

    from pipelines.performance import DayPerformance

log = logging.getLogger(__name__)

DRIFT = "drift"  # the snapshot kinds, as their tags: the dashboard's panels select by them
PERFORMANCE = "performance"
TAB = "Monitoring"  # the dashboard tab the pipeline owns
_NAMESPACE = uuid.UUID("8f0e8d8e-6a4f-4b43-9a57-3c8a52a0e7d1")  # of the day snapshots' ids (uuid5)


def workspace_path(config: Config) -> Path | None:
    """The workspace folder, or None when ``monitoring.evidently_workspace`` is off."""
    folder = config.monitoring.evidently_workspace
    return Path(folder) if folder else None


def snapshot_id(project_id: uuid.UUID | str, kind: str, day: date) -> uuid.UUID:
    """The id of a day's snapshot of one kind in one project: the same on every rerun. Pure."""
    return uuid.uuid5(_NAMESPACE, f"{project_id}/{kind}/{day.isoformat()}")


def estimated_metric(metric: str) -> str:
    """The performance snapshot's column of the estimate (``estimated_roc_auc``), beside ``realized_<metric>``."""
    return f"estimated_{metric}"


def dashboard_panels(config: Config) -> list[DashboardPanelPlot]:
    """The pipeline's panels: the share of drifted features, the realized and estimated metric, and each feature's
    drift score, over the days (one point per day's snapshot)."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    metric = config.model.metric
    drift = [DRIFT]
    return [
        line_plot_panel(
            title="Share of drifted features",
            description="Evidently's DataDriftPreset on the report's sample, per checked day (the pipeline's own"
            f" share, on every row, triggers retraining at {config.monitoring.drift_share_threshold})",
            values=[
                PanelMetric(
                    legend="share", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}, tags=drift
                )
            ],
            size="half",
        ),
        line_plot_panel(
            title=f"Realized and estimated {metric}",
            description="per scored day, from the performance table: realized on the labels so far, estimated"
            " (CBPE) from the scores alone on the day of scoring",
            values=[
                PanelMetric(legend=name, metric="MeanValue", metric_labels={"column": name}, tags=[PERFORMANCE])
                for name in (realized_metric(metric), estimated_metric(metric))
            ],
            size="half",
        ),
        line_plot_panel(
            title="Drift score per feature",
            description="Evidently's ValueDrift score of each feature against the training reference (its test"
            " picks the score: a p-value or a distance; the report of a day says which)",
            values=[
                PanelMetric(legend=column, metric="ValueDrift", metric_labels={"column": column}, tags=drift)
                for column in config.dataset.features.all
            ],
            size="full",
        ),
    ]


def with_panels(dashboard: DashboardModel, panels: list[DashboardPanelPlot]) -> DashboardModel | None:
    """``dashboard`` with its :data:`TAB` holding exactly ``panels`` (other tabs and their panels kept), or None
    when it holds them already (same titles, series and plots: panel ids aside). Pure."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel

    ours = next((tab for tab in dashboard.tabs if tab.title == TAB), None)
    held = {panel.id: panel for panel in dashboard.panels}
    if ours is not None and [_look(held[i]) for i in ours.panels if i in held] == [_look(p) for p in panels]:
        return None
    stale = set(ours.panels) if ours is not None else set()
    tabs = [tab for tab in dashboard.tabs if tab.title != TAB]
    return DashboardModel(
        tabs=[DashboardTabModel(title=TAB, panels=[p.id for p in panels]), *tabs],
        panels=[*panels, *(p for p in dashboard.panels if p.id not in stale)],
    )


def _look(panel: DashboardPanelPlot) -> tuple[Any, ...]:
    return panel.title, panel.subtitle, panel.size, [v.dict() for v in panel.values], panel.plot_params


def open_project(config: Config, folder: Path) -> tuple[LocalState, uuid.UUID]:
    """The workspace at ``folder`` and the id of the model's project, created on first use and found again by its
    name (the oldest, should two processes have created it at once), its dashboard as :func:`dashboard_panels`.

    Through the workspace's file state (``Workspace.state``: what ``Workspace`` reads and writes projects,
    dashboards and snapshots with), not ``Workspace(path)``, which parses every snapshot of the folder when it is
    built (its datasets manager loads the UI's state): a cost that would grow with the history on each day's write.
    """
    from evidently.sdk.models import ProjectModel
    from evidently.ui.storage.local.base import LocalState

    state = LocalState(str(folder))
    name = config.model.name
    found = sorted(pid for pid in state.list_projects() if state.read_project(pid).name == name)
    if found:
        project_id = found[0]
    else:
        description = f"Drift checks and performance of {name}, one snapshot per day and kind (mlops pipeline)"
        project_id = state.write_project(ProjectModel(name=name, description=description)).id
        log.info("Evidently workspace %s: project %s created for %s", folder, project_id, name)
    updated = with_panels(state.read_dashboard(project_id), dashboard_panels(config))
    if updated is not None:
        state.write_dashboard(project_id, updated)
    return state, project_id


def put_snapshot(
    state: LocalState, project_id: uuid.UUID, kind: str, day: date, snapshot: Any, metadata: dict[str, str]
) -> uuid.UUID:
    """Write an Evidently snapshot as the project's ``kind`` snapshot of ``day`` (its time the day's midnight, its
    tags the kind, ``metadata`` and the day added to its own), replacing the day's earlier one. Returns its id."""
    from evidently.legacy.utils import NumpyEncoder
    from evidently.ui.storage.local.base import SNAPSHOTS_DIR_NAME

    model = snapshot.to_snapshot_model()
    # naive, as Evidently's own timestamps are (datetime.now()): the UI sorts snapshots by it
    model = model.copy(
        update={
            "timestamp": datetime(day.year, day.month, day.day),
            "tags": [kind],
            "metadata": {**model.metadata, **metadata, "day": day.isoformat()},
        }
    )
    sid = snapshot_id(project_id, kind, day)
    folder = Path(state.path) / str(project_id) / SNAPSHOTS_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sid}.json"
    staged = folder / f".{sid}.json.partial"
    staged.write_text(json.dumps(model.dict(), cls=NumpyEncoder))
    os.replace(staged, target)
    with target.open("r+b") as written:  # its first byte written again, unchanged: see the module's docstring
        first = written.read(1)
        written.seek(0)
        written.write(first)
    return sid


def add_drift_snapshot(config: Config, day: date, model_version: str, snapshot: Any) -> uuid.UUID | None:
    """The day's drift report (the Evidently snapshot the check drew) as the day's drift snapshot."""
    folder = workspace_path(config)
    if folder is None:
        return None
    state, project_id = open_project(config, folder)
    return put_snapshot(state, project_id, DRIFT, day, snapshot, {"model_version": model_version})


def performance_values(row: DayPerformance) -> dict[str, float]:
    """The row's realized and estimated metric as the performance snapshot's columns, the unknown (NaN) left out.
    Pure."""
    values = {realized_metric(row.metric): row.value, estimated_metric(row.metric): row.estimated_value}
    return {name: float(v) for name, v in values.items() if v is not None and math.isfinite(v)}


def add_performance_snapshots(config: Config, rows: list[DayPerformance]) -> list[uuid.UUID]:
    """Each rewritten performance row as its day's performance snapshot: a one-row Evidently report (``MeanValue``
    of the realized and of the estimated metric), so Evidently's panels chart them as they chart its own metrics.
    A row with neither known yet adds nothing."""
    folder = workspace_path(config)
    known = [(row, values) for row in rows if (values := performance_values(row))]
    if folder is None or not known:
        return []
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    state, project_id = open_project(config, folder)
    written = []
    for row, values in known:
        data = Dataset.from_pandas(
            pd.DataFrame([values]), data_definition=DataDefinition(numerical_columns=list(values))
        )
        snapshot = Report([MeanValue(column=name) for name in values]).run(current_data=data)
        metadata = {"model_version": row.model_version, "labels_as_of": row.labels_as_of}
        day = date.fromisoformat(row.date)
        written.append(put_snapshot(state, project_id, PERFORMANCE, day, snapshot, metadata))
    return written
