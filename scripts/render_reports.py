"""`make reports`: draw the drift reports whose drawing was deferred (the ``defer_reports`` Param of
``drift_monitoring``, which ``make bootstrap`` sets and then draws them itself in a process of its own).

For the config in ``MLOPS_CONFIG``: every day of the lake's reports whose HTML is still to be drawn gets its
Evidently HTML (with the retraining decision on top) and JSON, in the day's reports folder and in its MLflow drift
run, as a report drawn at once has them, and the day's drift and performance snapshots in the Evidently workspace
(``--day`` limits it to some days). Drawing one report again after its
inputs are gone is not possible; a drawn report is not drawn twice.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from datetime import date

from pipelines.config import load_config
from pipelines.drift_report import render_pending
from pipelines.drift_run import deferred_performance_snapshots
from pipelines.registry import connect


def render(config_path: str | None = None, days: list[date] | None = None) -> list[date]:
    """Draw the pending reports of the config at ``config_path`` (default ``MLOPS_CONFIG``); the days drawn. A
    function of plain arguments: ``make bootstrap`` runs it in a process of its own while it goes on."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    config = load_config(config_path)
    drawn = render_pending(config, connect(config), days)
    deferred_performance_snapshots(config, drawn)  # the performance rows those runs rewrote, to Evidently's UI too
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", dest="days", action="append", type=date.fromisoformat, help="only this day (repeat)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    drawn = render(days=args.days)
    print(f"{len(drawn)} report(s) drawn" + (f": {drawn[0]}..{drawn[-1]}" if drawn else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
