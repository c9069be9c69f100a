"""What every benchmark shares: ``--smoke`` and ``--out``, and its results written as data and a plot.

Each ``bench/<name>.py`` writes ``<name>.json`` (the arguments, the machine's load average at the start and the end,
the figures it printed, its goals and correctness checks), ``<name>.csv`` where its results are a table, and
``<name>.png`` (a matplotlib plot, Agg backend, imported only here and only when plotting) into ``--out``: by default
``bench/.results/`` (gitignored), so a smoke run never overwrites the committed figures in ``docs/benchmarks/``.

A smoke run (``--smoke``) swaps the size arguments left at their defaults for small ones: the same code path and the
same printed figures in seconds. Goals are reported, never enforced (a smoke size or a busy machine misses them on
noise); a failed correctness check (verdicts differ, rows lost) exits non-zero in every mode.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / ".results"
DATA = Path(__file__).resolve().parent / ".data"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The two arguments every benchmark takes."""
    parser.add_argument(
        "--smoke", action="store_true", help="a size that runs in seconds (CI): same code path, same figures"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"folder for <bench>.json/.csv/.png (default: {RESULTS})"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, smoke: dict[str, Any]) -> argparse.Namespace:
    """Parse; with ``--smoke``, each size in ``smoke`` (dest -> value) replaces its default (explicit values stay)."""
    args = parser.parse_args(argv)
    if args.smoke:
        for dest, value in smoke.items():
            if getattr(args, dest) == parser.get_default(dest):
                setattr(args, dest, value)
    return args


class Run:
    """One benchmark run: started when made, written by :meth:`write` with what the run measured."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name, self.args = name, args
        self.started = datetime.now(UTC)
        self.clock = time.perf_counter()
        self.load_start = os.getloadavg()
        self.goals: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, bool] = {}

    def goal(self, name: str, value: float, limit: float, at_most: bool = True) -> bool:
        """Record a goal (``value <= limit``, or ``>=`` when ``at_most`` is false); reported, never enforced."""
        met = value <= limit if at_most else value >= limit
        self.goals[name] = {"value": value, "goal": f"{'<=' if at_most else '>='} {limit:g}", "met": bool(met)}
        return met

    def check(self, name: str, ok: bool) -> bool:
        """Record a correctness check; any failed one makes :meth:`write` exit non-zero (after writing)."""
        self.checks[name] = bool(ok)
        return ok

    def write(
        self,
        figures: dict[str, Any],
        rows: list[dict[str, Any]] | None = None,
        plot: Callable[[Any], None] | None = None,
    ) -> None:
        """``<name>.json`` (always), ``<name>.csv`` (``rows``), ``<name>.png`` (``plot(figure)`` draws on a new figure);
        then exit 1 if a correctness check failed."""
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "bench": self.name,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "commit": _commit(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in sorted(vars(self.args).items())},
            "smoke": bool(self.args.smoke),
            "started_utc": self.started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - self.clock, 1),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "load_average": {"start": _rounded(self.load_start), "end": _rounded(os.getloadavg())},
            "figures": figures,
            "goals": self.goals,
            "checks": self.checks,
        }
        if rows is not None:
            record["rows"] = rows
            with open(out / f"{self.name}.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        (out / f"{self.name}.json").write_text(json.dumps(record, indent=2, default=_plain) + "\n")
        if plot is not None:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            figure = plt.figure(figsize=(8, 4.5), layout="constrained")
            plot(figure)
            load = f"load average {self.load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores"
            figure.suptitle(f"bench/{self.name}.py{' --smoke' if self.args.smoke else ''} ({load})", fontsize=9)
            figure.savefig(out / f"{self.name}.png", dpi=110)
            plt.close(figure)
        print(f"results: {out / self.name}.json" + (", .csv" if rows is not None else "") + (", .png" if plot else ""))
        failed = [name for name, ok in self.checks.items() if not ok]
        if failed:
            raise SystemExit(f"bench/{self.name}.py: correctness check failed: {', '.join(failed)}")


def empty_mlflow_store(path: Path) -> None:
    """An empty, migrated MLflow SQLite store at ``path`` (setup, never timed). MLflow migrates a new store's schema,
    seconds each time (tens on a busy machine), and three benchmarks need one: each copies one migrated once per
    MLflow version into ``bench/.data/`` (gitignored), as the tests copy theirs (``tests/lakes.py``)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    template = DATA / f"mlflow-empty-{mlflow.__version__}.db"
    if not template.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        building = template.with_suffix(f".{os.getpid()}.tmp")
        MlflowClient(f"sqlite:///{building}").search_experiments()
        os.replace(building, template)  # whole or absent, should two runs build it at once
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)


def _commit() -> str | None:
    """The checkout's commit, ``+dirty`` when bench/ or pipelines/ differ from it (None outside a git checkout)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = ["git", "status", "--porcelain", "bench", "pipelines"]
        dirty = subprocess.run(status, cwd=repo, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _rounded(load: Sequence[float]) -> dict[str, float]:
    return {f"{minutes}min": round(x, 2) for minutes, x in zip((1, 5, 15), load, strict=True)}


def _plain(value: Any) -> Any:
    """numpy scalars and other JSON strangers as plain values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
