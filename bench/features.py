"""Declared features for one day: the pipeline's DuckDB point-in-time query against a plain pandas peer, with 30 and
with 365 days of history beside the day.

    .venv/bin/python bench/features.py [--entities 100000 --events 20000000 --day-rows 50000]
    .venv/bin/python bench/features.py --smoke     # 2,000 entities, 200k events (CI); --out DIR for the results

Generates ``--events`` payment events of ``--entities`` customers over 365 days (one Parquet file per day, as a feed
delivers them) and ``--day-rows`` scored rows on the day after. The declared features are count, sum, mean, max and
std of the amount over 7 and 30 days (10 features). Each side runs in a child process of its own, so its peak memory
(``ru_maxrss``) is its own:

- pipeline: ``pipelines.aggregates.add_declared`` (what extraction calls) with a warm source index: it reads the 30
  files inside the longest window and runs one range join + filtered aggregates in DuckDB; the median of
  ``--repeats`` warm runs in each of ``--rounds`` children per history, the two histories' children interleaved;
- peer: the plain pandas way, every history file read, the day's rows appended as markers, then
  ``groupby(customer).rolling("7D"/"30D", on=time, closed="left")`` per function, the markers' values kept; once.

Both sides read the same folders: the 30 most recent days (symlinks) and all 365. Goals: peer / pipeline at 365 days
>= 10, pipeline(365) / pipeline(30) <= 1.5. Checks: both sides agree on every feature of every row (counts and
maxima exactly, sums, means and std to 1e-9 relative).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import _results
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's pipelines, also in the child processes
DAY = date(2026, 10, 1)
HISTORY_DAYS = 365
WINDOWS = (7, 30)
FUNCTIONS = ("count", "sum", "mean", "max", "std")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000, help="history events over 365 days")
    parser.add_argument("--day-rows", type=int, default=50_000, help="scored rows of the day")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of the pipeline side per child (median)")
    parser.add_argument("--rounds", type=int, default=3, help="pipeline children per history, interleaved (median)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "FOLDER", "WORKDIR"), help=argparse.SUPPRESS)
    return _results.add_arguments(parser)


SMOKE = {"entities": 2_000, "events": 200_000, "day_rows": 2_000, "repeats": 2, "rounds": 2}


def _generate(root: Path, entities: int, events: int, day_rows: int) -> None:
    """365 daily files of payments and the day's rows (setup, never timed)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    per_day = events // HISTORY_DAYS
    full = root / "history_365"
    full.mkdir(parents=True)
    for index in range(HISTORY_DAYS):
        start = pd.Timestamp(DAY - timedelta(days=HISTORY_DAYS - index), tz="UTC")
        seconds = np.sort(rng.integers(0, 86400, per_day))
        frame = pd.DataFrame(
            {
                "customer": rng.integers(0, entities, per_day),
                "at": start + pd.to_timedelta(seconds, unit="s"),
                "amount": rng.integers(1, 4000, per_day) * 0.25,
            }
        )
        frame.to_parquet(full / f"payments-{start.date()}.parquet", index=False)
    recent = root / "history_30"
    recent.mkdir()
    for path in sorted(full.glob("*.parquet"))[-30:]:
        (recent / path.name).symlink_to(path)
    rows = pd.DataFrame(
        {
            "customer_id": rng.integers(0, entities, day_rows),
            "event_time": pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(rng.integers(0, 86400, day_rows), unit="s"),
        }
    )
    rows.to_parquet(root / "rows.parquet", index=False)


def _config(workdir: Path, folder: Path) -> Path:
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    config["dataset"]["history"] = {
        "payments": {
            "source": str(folder / "*.parquet"),
            "entity": "customer",
            "event_time": "at",
            "join_key": "customer_id",
            "numerical": ["amount"],
        }
    }
    aggregate = {"name": "paid", "table": "payments", "column": "amount", "functions": list(FUNCTIONS)}
    config["dataset"]["features"]["aggregates"] = [{**aggregate, "windows": list(WINDOWS)}]
    config["dataset"]["features"]["derived"] = {}  # the demo's derived feature names the demo's aggregates
    config["storage"]["root"] = str(workdir / "lake")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _pipeline(folder: Path, workdir: Path, repeats: int) -> dict:
    """``add_declared`` on the day's rows: once cold (indexes every file), then ``repeats`` warm runs."""
    import pandas as pd

    from pipelines.aggregates import add_declared
    from pipelines.config import load_config

    config = load_config(_config(workdir, folder))
    rows = pd.read_parquet(folder.parent / "rows.parquet")
    started = time.perf_counter()
    add_declared(config, rows)
    cold = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        found = add_declared(config, rows)
        runs.append(time.perf_counter() - started)
    found[config.dataset.features.computed].to_parquet(workdir / "features.parquet")
    return {"seconds": statistics.median(runs), "cold_s": cold, "runs_s": runs}


def _peer(folder: Path, workdir: Path) -> dict:
    """The plain pandas way: every file, the rows as markers, a time-based rolling window per entity."""
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    history = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)
    rows = pd.read_parquet(folder.parent / "rows.parquet")
    markers = pd.DataFrame(
        {"customer": rows["customer_id"], "at": rows["event_time"], "amount": np.nan, "row": np.arange(len(rows))}
    )
    frame = pd.concat([history.assign(row=-1), markers], ignore_index=True)
    frame = frame.sort_values(["customer", "at"], kind="stable").reset_index(drop=True)
    is_marker = frame["row"].to_numpy() >= 0
    out = pd.DataFrame(index=frame.loc[is_marker, "row"].to_numpy())
    for window in WINDOWS:
        rolling = frame.groupby("customer").rolling(f"{window}D", on="at", closed="left")["amount"]
        for function in FUNCTIONS:
            values = getattr(rolling, function)().to_numpy()  # grouped in the sorted frame's order
            out[f"paid_{function}_{window}d"] = values[is_marker]
    seconds = time.perf_counter() - started
    out = out.sort_index()
    for window in WINDOWS:  # an empty window: 0 for count and sum (the declared defaults), missing for the rest
        out[f"paid_sum_{window}d"] = out[f"paid_sum_{window}d"].fillna(0.0)
        out[f"paid_count_{window}d"] = out[f"paid_count_{window}d"].fillna(0.0)
    out.reset_index(drop=True).to_parquet(workdir / "features.parquet")
    return {"seconds": seconds}


def _child(side: str, folder: Path, workdir: Path, repeats: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    result = _pipeline(folder, workdir, repeats) if side == "pipeline" else _peer(folder, workdir)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run_child(side: str, folder: Path, workdir: Path, repeats: int) -> dict:
    workdir.mkdir(parents=True)
    command = [sys.executable, __file__, "--child", side, str(folder), str(workdir), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{side} on {folder.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _agree(pipeline: Path, peer: Path) -> bool:
    import numpy as np
    import pandas as pd

    ours, theirs = pd.read_parquet(pipeline), pd.read_parquet(peer)
    for column in theirs.columns:
        a, b = ours[column].to_numpy(), theirs[column].to_numpy()
        exact = column.startswith(("paid_count", "paid_max"))
        if not np.allclose(a, b, rtol=0 if exact else 1e-9, atol=0, equal_nan=True):
            print(f"DIFFER: {column}: {np.sum(~np.isclose(a, b, equal_nan=True))} rows")
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    if args.child:
        side, folder, workdir = args.child
        _child(side, Path(folder), Path(workdir), args.repeats)
        return
    record = _results.Run("features", args)
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        _generate(root, args.entities, args.events, args.day_rows)
        print(
            f"generated {args.events:,} events of {args.entities:,} entities over {HISTORY_DAYS} days and"
            f" {args.day_rows:,} rows in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        runs: dict[int, list[dict]] = {30: [], HISTORY_DAYS: []}
        for attempt in range(args.rounds):  # interleaved, so a burst of load on the shared machine hits both alike
            for days in runs:
                workdir = root / f"pipeline_{days}" / str(attempt)
                runs[days].append(_run_child("pipeline", root / f"history_{days}", workdir, args.repeats))
        for days, found in runs.items():
            results["pipeline", days] = {
                "seconds": statistics.median(r["seconds"] for r in found),
                "cold_s": statistics.median(r["cold_s"] for r in found),
                "peak_mib": max(r["peak_mib"] for r in found),
            }
            results["peer", days] = _run_child("peer", root / f"history_{days}", root / f"peer_{days}", 1)
            for side in ("pipeline", "peer"):
                print(
                    f"{side:<9} {days:>3} days: {results[side, days]['seconds']:8.2f}s,"
                    f" peak {results[side, days]['peak_mib']:7.0f} MiB",
                    flush=True,
                )
            record.check(
                f"same_features_{days}_days",
                _agree(
                    root / f"pipeline_{days}" / "0" / "features.parquet", root / f"peer_{days}" / "features.parquet"
                ),
            )
        record.check(
            "pipeline_same_with_30_or_365_days",
            _agree(
                root / "pipeline_30" / "0" / "features.parquet",
                root / f"pipeline_{HISTORY_DAYS}" / "0" / "features.parquet",
            ),
        )
    speedup = results["peer", HISTORY_DAYS]["seconds"] / results["pipeline", HISTORY_DAYS]["seconds"]
    flat = results["pipeline", HISTORY_DAYS]["seconds"] / results["pipeline", 30]["seconds"]
    print(
        f"\npeer / pipeline at {HISTORY_DAYS} days of history: {speedup:.1f}x  (goal >= 10)"
        f"\npipeline {HISTORY_DAYS} / 30 days of history: {flat:.2f}  (goal <= 1.5)"
    )
    record.goal("peer_over_pipeline", speedup, 10, at_most=False)
    record.goal("pipeline_365_over_30", flat, 1.5)
    rows = [
        {"side": side, "history_days": days, "seconds": r["seconds"], "peak_mib": r["peak_mib"]}
        for (side, days), r in results.items()
    ]
    record.write(
        {
            "entities": args.entities,
            "events": args.events,
            "day_rows": args.day_rows,
            "features": len(WINDOWS) * len(FUNCTIONS),
            "peer_over_pipeline": speedup,
            "pipeline_365_over_30": flat,
            "pipeline_cold_s": {str(d): results["pipeline", d]["cold_s"] for d in (30, HISTORY_DAYS)},
        },
        rows=rows,
        plot=lambda figure: _plot(figure, results, speedup),
    )


def _plot(figure, results: dict, speedup: float) -> None:
    import numpy as np

    axes = figure.subplots()
    x = np.arange(2)
    for offset, side in ((-0.2, "pipeline"), (0.2, "peer")):
        axes.bar(x + offset, [results[side, d]["seconds"] for d in (30, HISTORY_DAYS)], 0.4, label=side)
    axes.set_xticks(x, ["30 days of history", f"{HISTORY_DAYS} days of history"])
    axes.set_yscale("log")
    axes.set_ylabel("seconds for one day's features (log scale)")
    axes.set_title(f"declared features of one day: peer / pipeline {speedup:.1f}x at {HISTORY_DAYS} days")
    axes.legend(fontsize=8)


if __name__ == "__main__":
    main()
