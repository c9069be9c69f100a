"""DAG parse-time benchmark: each DAG file parsed on its own, as the DAG processor does, in a fresh interpreter.

    .venv/bin/python bench/dag_parse.py
    .venv/bin/python bench/dag_parse.py --smoke    # one fresh interpreter per file, not three (CI); --out DIR

Airflow and its TaskFlow machinery are imported before the clock starts (a trivial DAG is built first: the DAG
processor has all that loaded long before it parses a file); what is timed is executing the file: its top-level
imports (the first file to import ``_support`` pays for it) and DAG construction. A
DagBag then parses the file too, to report its DAGs and import errors. Goal: every file under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import _results

DAGS = Path(__file__).resolve().parents[1] / "dags"

CHILD = """
import importlib.util, json, sys, time
import airflow.sdk, airflow.models, pendulum
from airflow.dag_processing.dagbag import BundleDagBag

@airflow.sdk.dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def warm_up():  # what the long-running DAG processor has imported long before it parses this file
    airflow.sdk.task(lambda: None, task_id="noop")()
warm_up()
sys.path.append(sys.argv[2])
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - started
dags = sorted(v.dag_id for v in vars(module).values() if isinstance(v, airflow.sdk.DAG))
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=__import__("pathlib").Path(sys.argv[2]))
print(json.dumps({"seconds": seconds, "dags": sorted(bag.dag_ids), "errors": list(bag.import_errors)}))
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per file (the best is kept)")
    return _results.add_arguments(parser)


SMOKE = {"repeats": 1}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("dag_parse", args)
    print(f"{'file':<28}{'seconds':>9}  dags")
    worst = 0.0
    rows = []
    for file in sorted(DAGS.glob("*.py")):
        if file.name.startswith("_"):
            continue
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(file), str(DAGS)], capture_output=True, text=True, check=True
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(r["seconds"] for r in runs)
        worst = max(worst, best)
        errors = runs[0]["errors"]
        print(f"{file.name:<28}{best:>9.3f}  {','.join(runs[0]['dags'])}{'  ERRORS: ' + str(errors) if errors else ''}")
        record.check(f"{file.name}: no import errors", not errors)
        record.check(f"{file.name}: defines a DAG", bool(runs[0]["dags"]))
        rows.append(
            {
                "file": file.name,
                "best_s": best,
                "runs_s": " ".join(f"{r['seconds']:.4f}" for r in runs),
                "dags": " ".join(runs[0]["dags"]),
                "import_errors": len(errors),
            }
        )
    print(f"\nslowest file: {worst:.3f}s   (goal < 0.5s; best of {args.repeats} fresh interpreters each)")
    record.goal("slowest_file_s", worst, 0.5)
    record.write({"slowest_file_s": worst, "repeats": args.repeats}, rows=rows, plot=lambda figure: _plot(figure, rows))


def _plot(figure, rows: list[dict]) -> None:
    """Best parse time per DAG file against the goal."""
    axes = figure.subplots()
    axes.barh([r["file"] for r in rows], [r["best_s"] for r in rows])
    axes.axvline(0.5, color="red", linestyle="--", label="goal: < 0.5 s")
    axes.invert_yaxis()
    axes.set_xlabel("seconds to execute the DAG file (best of fresh interpreters)")
    axes.set_ylabel("DAG file")
    axes.set_title("DAG parse time per file")
    axes.legend()


if __name__ == "__main__":
    main()
