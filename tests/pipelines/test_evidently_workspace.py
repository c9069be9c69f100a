"""The Evidently workspace: one snapshot per day and kind whatever the reruns, one project per model, and a dashboard
whose panels select the days' values (read back through Evidently's own UI storage, as `make evidently-ui` does)."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.drift_tests import evidently_drift
from pipelines.evidently_workspace import (
    DRIFT,
    PERFORMANCE,
    TAB,
    add_drift_snapshot,
    add_performance_snapshots,
    dashboard_panels,
    open_project,
)
from pipelines.performance import DayPerformance

NAN = float("nan")


@pytest.fixture
def config(demo, tmp_path):
    monitoring = demo.monitoring.model_copy(update={"evidently_workspace": str(tmp_path / "workspace")})
    return demo.model_copy(update={"monitoring": monitoring})


def _report(config, shift: float):
    """A real drift report over the config's features: the window's first feature shifted by ``shift``."""
    rng = np.random.default_rng(0)
    features = config.dataset.features
    numerical, categorical = features.numbers[:2], features.categorical[:1]
    reference = pd.DataFrame({c: rng.normal(size=300) for c in numerical})
    reference[categorical[0]] = rng.choice(["a", "b"], 300)
    current = reference.assign(**{numerical[0]: reference[numerical[0]] + shift})
    return evidently_drift(reference, current, numerical, categorical, 0.3)


def _row(day: str, value: float, estimated: float) -> DayPerformance:
    return DayPerformance(
        date=day,
        model_name="credit_default",
        model_version="1",
        scored_rows=100,
        labeled_rows=0 if np.isnan(value) else 100,
        label_share=0.0 if np.isnan(value) else 1.0,
        metric="roc_auc",
        value=value,
        ci_low=NAN,
        ci_high=NAN,
        labels_as_of=day,
        computed_at=0.0,
        estimated_value=estimated,
    )


def _series(config, panel_title: str) -> dict[str, list[tuple[str, float | None]]]:
    """A panel's series as Evidently's UI storage computes them from the workspace: legend -> [(day, value)]."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    panel = next(p for p in dashboard_panels(config) if p.title == panel_title)
    filters = [
        SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels)
        for v in panel.values
    ]
    _, project_id = open_project(config, config.monitoring.evidently_workspace)
    found = asyncio.run(
        InMemoryDataStorage(config.monitoring.evidently_workspace).get_data_series(project_id, filters, None, None)
    )
    days = [source.metadata["day"] for source in found.sources]
    return {
        panel.values[s.filter_index].legend: [(d, v) for d, v in zip(days, s.values, strict=False) if v is not None]
        for s in found.series
    }


def _snapshots(config) -> list[tuple[list[str], str]]:
    """The project's snapshots as (tags, day), read through the workspace's public API."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(config.monitoring.evidently_workspace)
    (project,) = workspace.search_project(config.model.name)
    project_id = project.id
    runs = [workspace.get_run(project_id, sid) for sid in workspace.list_runs(project_id)]
    return sorted((run.tags, run.metadata["day"]) for run in runs)


@pytest.mark.unit
def test_a_rerun_replaces_its_days_snapshot_and_the_panels_chart_the_days(config):
    add_drift_snapshot(config, date(2026, 10, 17), "1", _report(config, 0.0))
    add_drift_snapshot(config, date(2026, 10, 18), "1", _report(config, 0.0))
    add_drift_snapshot(config, date(2026, 10, 18), "2", _report(config, 3.0))  # the 18th checked again
    assert _snapshots(config) == [([DRIFT], "2026-10-17"), ([DRIFT], "2026-10-18")]
    # the share of drifted features over the days: the rerun's (1 of 3 columns drifted), not the first check's
    assert _series(config, "Share of drifted features") == {
        "share": [("2026-10-17", 0.0), ("2026-10-18", pytest.approx(1 / 3))]
    }
    per_feature = _series(config, "Drift score per feature")
    shifted = config.dataset.features.numbers[0]
    assert set(per_feature) == set(config.dataset.features.numbers[:2] + config.dataset.features.categorical[:1])
    assert [d for d, _ in per_feature[shifted]] == ["2026-10-17", "2026-10-18"]

    # the performance table's rows: the 17th before its labels (an estimate only), then with them, and the 18th
    add_performance_snapshots(config, [_row("2026-10-17", NAN, 0.71)])
    add_performance_snapshots(config, [_row("2026-10-17", 0.69, 0.71), _row("2026-10-18", 0.52, 0.70)])
    add_performance_snapshots(config, [_row("2026-10-19", NAN, NAN)])  # nothing known yet: no snapshot
    assert _snapshots(config) == sorted(
        [([DRIFT], "2026-10-17"), ([DRIFT], "2026-10-18"), ([PERFORMANCE], "2026-10-17"), ([PERFORMANCE], "2026-10-18")]
    )
    assert _series(config, "Realized and estimated roc_auc") == {
        "realized_roc_auc": [("2026-10-17", 0.69), ("2026-10-18", 0.52)],
        "estimated_roc_auc": [("2026-10-17", 0.71), ("2026-10-18", 0.70)],
    }


@pytest.mark.unit
def test_one_project_per_model_found_again_by_name_with_the_pipelines_panels(config):
    from evidently.ui.workspace import Workspace

    folder = config.monitoring.evidently_workspace
    project_id = open_project(config, folder)[1]
    workspace = Workspace(folder)  # Evidently's public API reads what the pipeline wrote
    assert open_project(config, folder)[1] == project_id
    assert [p.id for p in workspace.search_project(config.model.name)] == [project_id]
    other = config.model_copy(update={"model": config.model.model_copy(update={"name": "other_model"})})
    assert open_project(other, folder)[1] != project_id
    assert sorted(p.name for p in Workspace(folder).list_projects()) == ["credit_default", "other_model"]

    dashboard = workspace.get_dashboard(project_id)
    (tab,) = dashboard.tabs
    titles = {p.id: p.title for p in dashboard.panels}
    assert tab.title == TAB and [titles[i] for i in tab.panels] == [
        "Share of drifted features",
        "Realized and estimated roc_auc",
        "Drift score per feature",
    ]
    per_feature = next(p for p in dashboard.panels if p.title == "Drift score per feature")
    assert [v.metric_labels["column"] for v in per_feature.values] == config.dataset.features.all

    # reopening keeps the dashboard as it is; a config with another feature list rewrites the pipeline's tab only
    mine = with_tab(dashboard, "Mine")
    workspace.save_dashboard(project_id, mine)
    open_project(config, folder)
    assert workspace.get_dashboard(project_id) == mine
    fewer = config.dataset.features.model_copy(update={"numerical": config.dataset.features.numerical[:1]})
    narrower = config.model_copy(update={"dataset": config.dataset.model_copy(update={"features": fewer})})
    open_project(narrower, folder)
    rewritten = workspace.get_dashboard(project_id)
    assert [t.title for t in rewritten.tabs] == [TAB, "Mine"]
    per_feature = next(p for p in rewritten.panels if p.title == "Drift score per feature")
    assert [v.metric_labels["column"] for v in per_feature.values] == fewer.all
    assert len(rewritten.panels) == 3  # the old tab's panels are gone, not left behind


def with_tab(dashboard, title: str):
    """``dashboard`` with an empty tab of the user's own after the pipeline's."""
    from evidently.sdk.models import DashboardTabModel

    return dashboard.copy(update={"tabs": [*dashboard.tabs, DashboardTabModel(title=title, panels=[])]})


@pytest.mark.unit
def test_off_when_the_workspace_is_null(config, tmp_path):
    off = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"evidently_workspace": None})})
    assert add_drift_snapshot(off, date(2026, 10, 17), "1", _report(config, 0.0)) is None
    assert add_performance_snapshots(off, [_row("2026-10-17", 0.7, 0.7)]) == []
    assert not (tmp_path / "workspace").exists()


@pytest.mark.integration
def test_a_running_ui_sees_a_rerun_replace_its_day(config):
    """Evidently's UI keeps the snapshots in memory and reloads one when its file watcher sees it written: a rerun
    (written aside and renamed over the day's file) must reach it as a write, replacing the day's values."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage, LocalState
    from evidently.ui.service.storage.local.watcher import WorkspaceDirHandler
    from watchdog.observers import Observer

    folder = config.monitoring.evidently_workspace
    add_performance_snapshots(config, [_row("2026-10-17", 0.60, 0.70)])
    _, project_id = open_project(config, folder)
    state = LocalState.load(folder, None)  # as `evidently ui` holds the workspace, with its watcher
    storage = InMemoryDataStorage(folder, local_state=state)
    metric = "evidently:metric_v2:MeanValue"  # as a panel's PanelMetric names it
    watched = [
        SeriesFilter(tags=[PERFORMANCE], metadata={}, metric=metric, metric_labels={"column": "realized_roc_auc"})
    ]

    def realized() -> list:
        return [s.values for s in asyncio.run(storage.get_data_series(project_id, watched, None, None)).series]

    assert realized() == [[0.60]]
    observer = Observer()
    observer.schedule(WorkspaceDirHandler(state), folder, recursive=True)
    observer.start()
    try:
        add_performance_snapshots(config, [_row("2026-10-17", 0.55, 0.70), _row("2026-10-18", 0.50, 0.70)])
        for _ in range(100):  # the watcher's thread delivers the events: wait up to 5 s for them to arrive
            if realized() == [[0.55, 0.50]]:
                break
            time.sleep(0.05)
    finally:
        observer.stop()
        observer.join()
    assert realized() == [[0.55, 0.50]]
