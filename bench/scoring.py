"""Scoring benchmark: the pipeline's throughput against the model's raw predict, and memory against row count.

    .venv/bin/python bench/scoring.py                 # 10M and 1M rows x 20 features
    .venv/bin/python bench/scoring.py --rows 2000000 --small 200000
    .venv/bin/python bench/scoring.py --smoke         # 200k and 50k rows, 20 trees (CI); --out DIR for the results

In one run it
  (a) measures the physical limit: the same model's in-process ``predict_proba`` on preloaded arrays, all cores;
  (b) scores the same Parquet partition end to end with ``score_day`` on a LocalCluster (all cores);
and prints rows/s for both, the ratio (b)/(a), peak RSS of the scoring process tree, and time 10M / time 1M.
Goals: ratio >= 0.85, peak RSS at 10M <= 1.2 x at 1M, time ratio <= 10.5. Each measurement runs in its own
process, so one's memory never inflates another's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import _results
import numpy as np

DAY = date(2026, 1, 1)
HERE = Path(__file__).resolve().parent


def make_config(workdir: Path, features: int, partition_rows: int, trees: int = 200):
    from pipelines.config import Config

    return Config.model_validate(
        {
            "dataset": {
                "source": str(workdir / "unused"),
                "event_time": "event_time",
                "key": "key",
                "target": "label",
                "features": {"numerical": [f"f{i}" for i in range(features)]},
            },
            "task": "classification",
            "model": {
                "name": "bench",
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": trees, "max_leaf_nodes": 63, "early_stopping": False},
                "metric": "roc_auc",
            },
            "storage": {"root": str(workdir / f"lake-{features}")},
            "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlruns.db'}", "experiment": "bench"},
            "scoring": {"partition_rows": partition_rows, "max_dead_letter_share": 0.0},
            "monitoring": {"sample_rate": 0.01},
        }
    )


def _frame(rng: np.random.Generator, start: int, n: int, features: int):
    import pandas as pd

    x = rng.normal(size=(n, features))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame.insert(0, "event_time", pd.Timestamp(DAY, tz="UTC"))
    frame.insert(0, "key", [f"k{i:010d}" for i in range(start, start + n)])
    logit = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.4, -0.3]) + 0.5 * x[:, 5] * x[:, 6]
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def prepare(
    workdir: Path, rows: int, features: int, partition_rows: int, trees: int, train_rows: int, train_threads: int | None
) -> None:
    """Write the day (one file per row group, streamed, committed once) and register a champion trained on
    ``train_rows`` rows (once per ``workdir``: a later run reuses it)."""
    from threadpoolctl import threadpool_limits

    from pipelines import model_artifacts, registry
    from pipelines.modeling import build_model, model_input
    from pipelines.storage import Lake, Table

    config = make_config(workdir, features, partition_rows, trees)
    root = f"{workdir}/lake-{rows}"
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    rng = np.random.default_rng(rows)
    lake, files = Lake(root), []
    for piece, start in enumerate(range(0, rows, partition_rows)):  # one file per row group, committed as one day
        chunk = _frame(rng, start, min(partition_rows, rows - start), features).drop(columns=["label"])
        files.append(lake.write_file(Table.FEATURES, DAY, f"part-{piece:05d}.parquet", chunk))
    lake.commit(Table.FEATURES, DAY, files)
    if not (workdir / "mlruns.db").exists():
        _results.empty_mlflow_store(workdir / "mlruns.db")
    store = registry.connect(config)
    if store.alias("bench", registry.CHAMPION) is None:
        train = _frame(np.random.default_rng(0), 0, train_rows, features)
        with threadpool_limits(train_threads):  # setup, not measured: on a busy machine OpenMP's spinning dominates
            x = model_input(train, config)
            model = build_model(config).fit(x, train["label"])
        with registry.tracked_run(store, registry.RunKind.TRAINING, "bench-champion") as run_id:
            source = model_artifacts.log_model(config.tracking_uri, run_id, model, "sklearn", x.head(5))
            version = store.register_version("bench", source, run_id)
        store.set_alias("bench", registry.CHAMPION, version)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(kind: str, workdir: Path, rows: int, features: int, partition_rows: int) -> dict:
    """Run inside a fresh process: time one measurement and sample the process tree's RSS every 50 ms."""

    from pipelines import registry
    from pipelines.cluster import local_cluster
    from pipelines.model_artifacts import load_model
    from pipelines.scoring import score_day
    from pipelines.storage import Lake, Table

    config = make_config(workdir, features, partition_rows)
    root = f"{workdir}/lake-{rows}"
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    ref = registry.require_alias(registry.connect(config), "bench")
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(os.getpid()))
            time.sleep(0.05)

    if kind == "limit":
        model = load_model(ref, config.tracking_uri, "cpu", 1)
        frame = Lake(root).read(Table.FEATURES, DAY, columns=config.dataset.features.numerical)
        model.predict_proba(frame.head(1000))  # warm-up
        threading.Thread(target=sample, daemon=True).start()
        started = time.perf_counter()
        model.predict_proba(frame)
        elapsed = time.perf_counter() - started
    else:
        from distributed import Client

        with local_cluster() as cluster, Client(cluster) as client:
            client.run(load_model, ref, config.tracking_uri, "cpu", 1)  # the per-worker model cache, as in service
            threading.Thread(target=sample, daemon=True).start()
            started = time.perf_counter()
            result = score_day(config, DAY, "bench", client)
            elapsed = time.perf_counter() - started
            assert result.rows_scored == rows, result
    done.set()
    return {
        "kind": kind,
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "peak_rss_mb": peak[0] / 2**20,
    }


def _child(kind: str, args: argparse.Namespace, rows: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--rows",
        str(rows),
        "--features",
        str(args.features),
        "--partition-rows",
        str(args.partition_rows),
        "--workdir",
        str(args.workdir),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {kind} measurement at {rows:,} rows failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partition-rows", type=int, default=250_000)
    parser.add_argument("--trees", type=int, default=200, help="the model's max_iter")
    parser.add_argument("--train-rows", type=int, default=100_000, help="rows the champion is trained on")
    parser.add_argument("--train-threads", type=int, default=None, help="threads training uses (default: all cores)")
    parser.add_argument(
        "--workdir", type=Path, default=HERE / ".data", help="lakes and registry, kept: a later run reuses the model"
    )
    parser.add_argument("--child", choices=["limit", "pipeline"])
    return _results.add_arguments(parser)


# Its own workdir: the registry there holds a 20-tree champion, which a full run must not reuse.
SMOKE = {
    "rows": 200_000,
    "small": 50_000,
    "partition_rows": 25_000,
    "trees": 20,
    "train_rows": 5_000,
    "train_threads": 1,
    "workdir": HERE / ".data" / "smoke",
}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        print(json.dumps(measure(args.child, args.workdir, args.rows, args.features, args.partition_rows)))
        return

    record = _results.Run("scoring", args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    for rows in (args.small, args.rows):
        started = time.perf_counter()
        prepare(args.workdir, rows, args.features, args.partition_rows, args.trees, args.train_rows, args.train_threads)
        print(f"prepared {rows:,} rows x {args.features} features in {time.perf_counter() - started:.0f}s", flush=True)
    limit = _child("limit", args, args.rows)
    big = _child("pipeline", args, args.rows)
    small = _child("pipeline", args, args.small)
    print(
        f"\ncores: {os.cpu_count()}   model: HistGradientBoostingClassifier(max_iter={args.trees}, max_leaf_nodes=63)"
    )
    print(f"{'measurement':<36}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>13}")
    for name, m in (
        ("(a) in-process predict_proba", limit),
        ("(b) pipeline score_day", big),
        ("(b) pipeline score_day", small),
    ):
        print(f"{name:<36}{m['rows']:>12,}{m['seconds']:>10.1f}{m['rows_per_s']:>12,.0f}{m['peak_rss_mb']:>13,.0f}")
    throughput = big["rows_per_s"] / limit["rows_per_s"]
    rss = big["peak_rss_mb"] / small["peak_rss_mb"]
    seconds = big["seconds"] / small["seconds"]
    print(f"\nthroughput ratio (b)/(a) at {args.rows:,} rows: {throughput:.2f}   (goal >= 0.95)")
    print(f"peak RSS {args.rows:,} / {args.small:,}: {rss:.2f}   (goal <= 1.2)")
    print(f"time {args.rows:,} / {args.small:,}: {seconds:.2f}   (goal <= 10.5)")
    record.goal("throughput_ratio", throughput, 0.95, at_most=False)
    record.goal("peak_rss_ratio", rss, 1.2)
    record.goal("time_ratio", seconds, 10.5)
    # score_day's own row accounting is asserted in the child (rows_scored == rows); here, every row came back.
    record.check("every_row_scored", big["rows"] == args.rows and small["rows"] == args.small)
    names = ["(a) in-process predict_proba", "(b) pipeline score_day", "(b) pipeline score_day"]
    rows = [{"measurement": n, **m} for n, m in zip(names, (limit, big, small), strict=True)]
    record.write(
        {
            "cores": os.cpu_count(),
            "model": f"HistGradientBoostingClassifier(max_iter={args.trees}, max_leaf_nodes=63)",
            "throughput_ratio": throughput,
            "peak_rss_ratio": rss,
            "time_ratio": seconds,
        },
        rows=rows,
        plot=lambda figure: _plot(figure, rows),
    )


def _plot(figure, rows: list[dict]) -> None:
    """Throughput and peak RSS of the three measurements."""
    left, right = figure.subplots(1, 2)
    labels = [f"{r['measurement'][:3]} {r['kind']}\n{r['rows']:,} rows" for r in rows]
    left.bar(labels, [r["rows_per_s"] for r in rows], color=["grey", "C0", "C1"])
    left.set_ylabel("rows / s")
    left.set_title("throughput")
    right.bar(labels, [r["peak_rss_mb"] for r in rows], color=["grey", "C0", "C1"])
    right.set_ylabel("peak RSS of the process tree, MB")
    right.set_title("memory")
    for axes in (left, right):
        axes.tick_params(axis="x", labelsize=8)


if __name__ == "__main__":
    main()
