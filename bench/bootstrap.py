"""History bootstrap benchmark: ``make bootstrap``'s seconds per day over a short and a long history, and where they go.

    .venv/bin/python bench/bootstrap.py                     # 30 and 365 days at the demo's 5,000 rows a day
    .venv/bin/python bench/bootstrap.py --short 14 --long 60 --rows-per-day 1000
    .venv/bin/python bench/bootstrap.py --smoke             # 3 and 6 days at 200 rows a day (CI); --out DIR

For each length (``--short`` and ``--long`` days after the first training window), setup (printed, not timed) makes
a fresh directory holding the demo's raw events and labels for that many days plus the window
(``pipelines.demo_data``, drifting from the middle of the history on, so drift checks fire and retrainings run), a
config copied from ``include/config/demo.yaml`` pointing at it, an empty MLflow store and a migrated Airflow home.
Then ``scripts/bootstrap.py`` runs in its own process, exactly as ``make bootstrap`` runs it (the real DAGs with
``dag.test()``, one LocalCluster), and is timed whole. Its per-run lines say where the time goes: seconds per DAG
per day (extraction, scoring, drift monitoring; retraining per run). The bootstrap leaves the drift reports' HTML
to be drawn later; ``scripts/render_reports.py`` then draws them as ``make reports`` does, timed apart.

A scored day's cost is the sum of its runs' seconds; the rest of the wall time is the fixed cost of a bootstrap
(process start, parsing the DAGs, the cluster, the first window's extraction and training). Goals: seconds per day
flat in the length of history (long / short <= 1.5) and a year of daily history (365 days at 5,000 rows, fixed
cost included) in under 5 minutes on 2 cores. Checks: the bootstrap and the drawing exit 0 with no failed run, and
every scored day has its features, predictions, performance row, recorded retraining decision and drawn drift report
afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import _results
import yaml

REPO = Path(__file__).resolve().parents[1]
START = date(2025, 1, 1)
WINDOW = 7  # the demo's training.window_days: days extracted before the first training, never scored
RUN_LINE = re.compile(
    r"^\s+(?P<dag>\w+?)__\w+\s+(?P<day>\d{4}-\d{2}-\d{2})(\.\.\d{4}-\d{2}-\d{2})?\s+(?P<state>\w+)\s+(?P<seconds>[\d.]+)s$"
)
YEAR_GOAL_S = 300.0


@dataclass(frozen=True)
class Outcome:
    """One bootstrap: its length, wall time, exit status and each DAG's runs (a run may hold a run of days),
    seconds and failed runs over the scored days (the first window's extraction and the first training are the fixed
    part, ``setup_runs_s``), and per output the scored days the lake holds it for afterwards."""

    scored_days: int
    wall_s: float
    returncode: int
    runs: dict[str, int]
    seconds: dict[str, float]
    failed: dict[str, int]
    setup_runs_s: float
    published: dict[str, int]
    reports_s: float  # `make reports` after it: drawing the reports the bootstrap left, on every core (not in wall_s)

    @property
    def per_day_s(self) -> float:
        """What a scored day costs: its runs (extraction, scoring, drift check and any retraining)."""
        return sum(self.seconds.values()) / self.scored_days

    @property
    def fixed_s(self) -> float:
        """What a bootstrap costs whatever its length: process start, parsing the DAGs, the cluster, the first
        window and training."""
        return self.wall_s - sum(self.seconds.values())

    def year_s(self) -> float:
        return self.fixed_s + 365 * self.per_day_s


def prepare(directory: Path, scored_days: int, rows_per_day: int) -> dict[str, str]:
    """Data, config, MLflow store and Airflow home for one bootstrap; returns the environment it runs with."""
    from pipelines import demo_data

    days = WINDOW + scored_days
    spec = replace(
        demo_data.DemoSpec(), start=START, days=days, rows_per_day=rows_per_day, drift_day=days // 2, history_risk=False
    )
    demo_data.generate(directory / "data", spec)
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    features = {k: config["dataset"]["features"][k] for k in ("numerical", "categorical")}  # raw: comparable runs
    config["dataset"].update(
        source=str(directory / "data" / "raw" / "*.parquet"),
        labels=str(directory / "data" / "labels" / "*.parquet"),
        features=features,
        history={},
    )
    config["storage"]["root"] = str(directory / "lake")
    config["mlflow"]["tracking_uri"] = f"sqlite:///{directory / 'mlruns.db'}"
    config["schedule"]["start_date"] = START.isoformat()
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    _results.empty_mlflow_store(directory / "mlruns.db")

    env = {
        **os.environ,
        "MLOPS_CONFIG": str(directory / "config.yaml"),
        "MLOPS_HOME": str(directory),
        "AIRFLOW_HOME": str(directory / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "DASK_SCHEDULER_ADDRESS": "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    pool = ["mlops_registry", "1", "promotions and rollbacks, one at a time"]
    for args in (["db", "migrate"], ["pools", "set", *pool]):
        subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True, capture_output=True)
    return env


def published(env: dict[str, str], scored_days: int) -> dict[str, int]:
    """How many of the scored days have features, predictions, a performance row, a recorded retraining decision
    (on the day's MLflow drift run, or on a decision run of its own when too few rows were logged to check) and,
    when checked, a drawn drift report once the bootstrap and ``make reports`` are done."""
    from pipelines.config import load_config
    from pipelines.drift_report import REPORT_HTML
    from pipelines.registry import RunKind, Tag, connect
    from pipelines.storage import Lake, Table

    config = load_config(env["MLOPS_CONFIG"])
    lake, first = Lake.from_config(config), START + timedelta(days=WINDOW)
    scored = {first + timedelta(days=i) for i in range(scored_days)}
    counts = {table.value: len(scored & set(lake.days(table))) for table in (Table.FEATURES, Table.PREDICTIONS)}
    counts["performance"] = len(scored & set(lake.days(Table.PERFORMANCE)))
    registry, model = connect(config), {Tag.MODEL_NAME: config.model.name}
    checks = registry.find_runs(RunKind.DRIFT, **model)
    runs = [*checks, *registry.find_runs(RunKind.RETRAIN_DECISION, **model)]
    decided = {run.tags[Tag.DAY] for run in runs if Tag.DECISION in run.tags}
    counts["decision"] = len(decided & {d.isoformat() for d in scored})
    checked = {date.fromisoformat(run.tags[Tag.DAY]) for run in checks}  # a skipped check (too few rows) draws none
    drawn = set(lake.days_holding(Table.REPORTS, REPORT_HTML))
    counts["drift report if checked"] = len({d for d in scored if d not in checked or d in drawn})
    return counts


def bootstrap(env: dict[str, str], scored_days: int) -> Outcome:
    """Run ``scripts/bootstrap.py`` as ``make bootstrap`` does, timed whole, its per-run lines tallied by DAG; then
    ``scripts/render_reports.py`` as ``make reports`` does, timed apart."""
    started = time.perf_counter()
    command = [sys.executable, str(REPO / "scripts" / "bootstrap.py")]
    done = subprocess.run(command, check=False, env=env, cwd=REPO, capture_output=True, text=True)  # checked below
    wall = time.perf_counter() - started
    runs: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    failed: dict[str, int] = defaultdict(int)
    setup_runs = 0.0
    first_scored = START + timedelta(days=WINDOW)
    for line in done.stdout.splitlines():
        if not (match := RUN_LINE.match(line)):
            continue
        dag = match["dag"]
        failed[dag] += match["state"] != "success"
        if date.fromisoformat(match["day"]) < first_scored:
            setup_runs += float(match["seconds"])
            continue
        runs[dag] += 1
        seconds[dag] += float(match["seconds"])
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
    started = time.perf_counter()
    drawing = [sys.executable, str(REPO / "scripts" / "render_reports.py")]
    drawn = subprocess.run(drawing, check=False, env=env, cwd=REPO, capture_output=True, text=True)  # checked below
    reports = time.perf_counter() - started
    if drawn.returncode:
        print(drawn.stdout[-3000:], drawn.stderr[-3000:], sep="\n", file=sys.stderr)
    outputs = published(env, scored_days)
    return Outcome(
        scored_days,
        wall,
        done.returncode or drawn.returncode,
        dict(runs),
        dict(seconds),
        dict(failed),
        setup_runs,
        outputs,
        reports,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=30, help="scored days of the short history")
    parser.add_argument("--long", type=int, default=365, help="scored days of the long history")
    parser.add_argument("--rows-per-day", type=int, default=5000)
    return _results.add_arguments(parser)


SMOKE = {"short": 3, "long": 6, "rows_per_day": 200}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("bootstrap", args)

    outcomes: list[Outcome] = []
    for scored_days in (args.short, args.long):
        with tempfile.TemporaryDirectory(prefix="bench-bootstrap-") as tmp:
            started = time.perf_counter()
            env = prepare(Path(tmp), scored_days, args.rows_per_day)
            print(f"setup for {scored_days} days: {time.perf_counter() - started:.1f} s (not timed)", flush=True)
            outcome = bootstrap(env, scored_days)
        outcomes.append(outcome)
        print(
            f"{scored_days} scored days: {outcome.wall_s:.1f} s in all, {outcome.per_day_s:.2f} s a day,"
            f" {outcome.fixed_s:.1f} s fixed (of which the first window and training {outcome.setup_runs_s:.1f} s);"
            f" then make reports drew its drift reports in {outcome.reports_s:.1f} s on {os.cpu_count()} cores",
            flush=True,
        )

    rows = []
    print(f"\n== Bootstrap benchmark ({os.cpu_count()} cores, {args.rows_per_day:,} rows a day) ==")
    print(f"{'DAG':<20}" + "".join(f"{f'{o.scored_days} days: runs, s a day':>30}" for o in outcomes))
    for dag in sorted({dag for o in outcomes for dag in o.runs}):
        cells = [(o.runs.get(dag, 0), o.seconds.get(dag, 0.0) / o.scored_days) for o in outcomes]
        print(f"{dag:<20}" + "".join(f"{runs:>18} {per_day:>10.2f} s" for runs, per_day in cells))
        for outcome, (runs, per_day) in zip(outcomes, cells, strict=True):
            rows.append({"scored_days": outcome.scored_days, "dag": dag, "runs": runs, "seconds_per_day": per_day})
    short, long = outcomes
    flat = long.per_day_s / short.per_day_s
    year_s = long.year_s()
    print(f"\nseconds a day, {long.scored_days} / {short.scored_days} days: {flat:.2f}   (goal <= 1.5)")
    print(
        f"a year of daily history at the {long.scored_days}-day rate, fixed cost included: {year_s:.0f} s"
        f"   (goal <= {YEAR_GOAL_S:.0f} s at 5,000 rows a day)"
    )
    record.goal("per_day_long_over_short", flat, 1.5)
    record.goal("year_s", year_s, YEAR_GOAL_S)
    for outcome in outcomes:
        n = outcome.scored_days
        record.check(f"{n} days: bootstrap and make reports exit 0", outcome.returncode == 0)
        record.check(f"{n} days: no failed run", not any(outcome.failed.values()))
        for output, days in outcome.published.items():
            record.check(f"{n} days: every scored day has its {output}", days == n)

    record.write(
        {
            "rows_per_day": args.rows_per_day,
            "per_day_s": {str(o.scored_days): o.per_day_s for o in outcomes},
            "wall_s": {str(o.scored_days): o.wall_s for o in outcomes},
            "fixed_s": {str(o.scored_days): o.fixed_s for o in outcomes},
            "reports_s": {str(o.scored_days): o.reports_s for o in outcomes},
            "per_day_long_over_short": flat,
            "year_s_at_long_rate": year_s,
        },
        rows,
        plot=lambda figure: _plot(figure, outcomes),
    )


def _plot(figure, outcomes: list[Outcome]) -> None:
    """Seconds a day by DAG, stacked, for each length of history."""
    axes = figure.subplots()
    dags = sorted({dag for o in outcomes for dag in o.seconds})
    labels = [f"{o.scored_days} days" for o in outcomes]
    bottom = [0.0] * len(outcomes)
    for dag in dags:
        heights = [o.seconds.get(dag, 0.0) / o.scored_days for o in outcomes]
        axes.bar(labels, heights, bottom=bottom, label=dag)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("seconds per scored day")
    axes.set_title("make bootstrap: where a day's time goes (goal: flat in history)")
    axes.legend(fontsize=8)


if __name__ == "__main__":
    main()
