"""A drift_monitoring run's work over its days, in day order: each day's predictions checked, the performance table
brought up to that day, and the day's retraining decided and recorded; a run of days stops after the first day that
retrains.

Why one loop and in this order: a day's decision reads the performance table as of that day (the labels known by its
end, never later ones) and the retrainings started before it, so day D+1 cannot be decided before D's decision is
recorded; and once D retrains, the days after it are to be scored by whichever model its retraining leaves champion,
so they are left for a later run (``make bootstrap`` scores them again and checks them then), exactly as a sequence
of daily runs would have it. A scheduled run holds one day, and does the same three steps for it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pipelines.backlog import check_predictions
from pipelines.config import Config
from pipelines.evidently_workspace import add_performance_snapshots, workspace_path
from pipelines.performance import DayPerformance, Horizon, read_performance, update_recent_performance
from pipelines.records import jsonable
from pipelines.registry import Registry, connect
from pipelines.retrain_gate import decide_retraining

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaysChecked:
    """What a run did: per checked day its drift result and decision, the performance rows it rewrote, and the days
    it left unchecked because a retraining came first."""

    days: list[dict[str, Any]] = field(default_factory=list)  # day, status, drift share, decision: small, for XCom
    decision: dict[str, Any] | None = None  # the last day's decision: the retraining one when the run stopped at it
    performance: list[DayPerformance] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The last decision's fields (the retraining trigger and the UI's links read them) and the run's days."""
        return jsonable({**(self.decision or {"retrain": False}), "days": self.days, "left": self.left})


def check_days(
    config: Config,
    days: list[date],
    as_of: date,
    force: bool = False,
    registry: Registry | None = None,
    render: bool = True,
) -> DaysChecked:
    """Check, update performance and decide for each day in order, stopping after the first day that retrains.

    ``as_of`` is the run's own day: with no day to check (its predictions were checked already) the performance
    table is still brought up to it. ``force`` retrains on the first day checked. ``render`` False leaves the HTML
    reports to be drawn later (:func:`pipelines.drift_report.render_pending`), and the performance rows' Evidently
    snapshots with them (:func:`deferred_performance_snapshots`).
    """
    registry = registry or connect(config)
    if not days:
        return DaysChecked(performance=updated_performance(config, as_of, registry)[0])
    checked: list[dict[str, Any]] = []
    performance: list[DayPerformance] = []
    decision: dict[str, Any] = {}
    horizon: Horizon | None = None  # each day's update starts from the rows the one before it left
    for i, day in enumerate(days):
        result = check_predictions(config, day, registry, render=render)
        written, horizon = updated_performance(config, day, registry, snapshots=render, previous=horizon)
        performance.extend(written)
        decision = decide_retraining(config, result, force=force, registry=registry, performance=horizon.rows)
        checked.append(
            {
                "day": result.day,
                "status": result.status,
                "drift_share": result.drift_share,
                "retrain": decision["retrain"],
            }
        )
        if decision["retrain"]:
            left = [d.isoformat() for d in days[i + 1 :]]
            if left:
                log.info("retraining on %s: days %s are left for a run after it (%s)", day, left, decision["reason"])
            return DaysChecked(checked, decision, performance, left)
    return DaysChecked(checked, decision, performance)


def updated_performance(
    config: Config, as_of: date, registry: Registry, snapshots: bool = True, previous: Horizon | None = None
) -> tuple[list[DayPerformance], Horizon]:
    """The performance table brought up to ``as_of`` (:func:`pipelines.performance.update_recent_performance`): the
    rows it rewrote, each also its day's performance snapshot in the Evidently workspace (realized and estimated
    metric) unless ``snapshots`` is False (deferred with the reports: a one-row Evidently report per row costs
    ~25 ms, a tenth of a history day's budget), and the horizon's rows after it, which the day's decision reads and
    the next day's update starts from (``previous``)."""
    rows, horizon = update_recent_performance(config, as_of, registry, previous)
    if snapshots:
        add_performance_snapshots(config, rows)
    return rows, horizon


def deferred_performance_snapshots(config: Config, days: list[date]) -> int:
    """The Evidently snapshots of the performance rows that runs with deferred reports rewrote as of ``days``
    (their ``labels_as_of``), as those rows stand now: drawn with the days' reports, off the runs' path. A row
    rewritten again since, as of a later day, is left to that day's. Returns the snapshots written."""
    if not days or workspace_path(config) is None:
        return 0
    as_of = {d.isoformat() for d in days}
    horizon = config.monitoring.label_horizon_days
    span = [max(days) - timedelta(days=i) for i in range((max(days) - min(days)).days + horizon)]
    fields = {f.name for f in dataclasses.fields(DayPerformance)}
    rows = [
        DayPerformance(**{k: v for k, v in record.items() if k in fields})
        for record in read_performance(config, span).to_dict("records")
        if str(record["labels_as_of"]) in as_of
    ]
    return len(add_performance_snapshots(config, rows))
