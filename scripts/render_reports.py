"""`make reports`: draw the drift reports whose drawing was deferred (the ``defer_reports`` Param of
``drift_monitoring``, which ``make bootstrap`` sets and leaves its reports to this command).

For the config in ``MLOPS_CONFIG``: every day of the lake's reports whose HTML is still to be drawn gets its
Evidently HTML (with the retraining decision on top) and JSON, in the day's reports folder and in its MLflow drift
run, as a report drawn at once has them, and the day's drift and performance snapshots in the Evidently workspace
(``--day`` limits it to some days). Drawing one report again after its inputs are gone is not possible; a drawn
report is not drawn twice.

The days are drawn a week at a time by one process per core (``--jobs``): a report is ~0.6 s of Evidently and
plotly in pure Python, so a year of history is ~4 minutes on one core, and each day's files and MLflow run are its
own, so the days need no order between them.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import date

from pipelines.config import config_path, load_config
from pipelines.drift_report import pending_reports, render_pending
from pipelines.drift_run import deferred_performance_snapshots
from pipelines.registry import connect

PIECE = 7  # days a process draws at a time


def render(config_file: str | None = None, days: list[date] | None = None) -> list[date]:
    """Draw the pending reports of the config at ``config_file`` (default ``MLOPS_CONFIG``); the days drawn. A
    function of plain arguments: :func:`draw` runs it in processes of their own."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    config = load_config(config_file)
    drawn = render_pending(config, connect(config), days)
    deferred_performance_snapshots(config, drawn)  # the performance rows those runs rewrote, to Evidently's UI too
    return drawn


def draw(days: list[date] | None = None, jobs: int | None = None) -> list[date]:
    """The pending reports of ``days`` (default: all) drawn by ``jobs`` processes (default: one per core), a week
    at a time; the days drawn, in order. One job, or one week, draws in this process."""
    pending = [d for d in pending_reports(load_config()) if days is None or d in days]
    pieces = [pending[i : i + PIECE] for i in range(0, len(pending), PIECE)]
    jobs = min(jobs or os.cpu_count() or 1, len(pieces))
    if jobs <= 1:
        return render(days=pending) if pending else []
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no copy of this one's threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
        drawn = pool.map(render, [str(config_path())] * len(pieces), pieces)
        return sorted(d for piece in drawn for d in piece)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", dest="days", action="append", type=date.fromisoformat, help="only this day (repeat)")
    parser.add_argument("--jobs", type=int, help="processes drawing (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    drawn = draw(args.days, args.jobs)
    print(f"{len(drawn)} report(s) drawn" + (f": {drawn[0]}..{drawn[-1]}" if drawn else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
