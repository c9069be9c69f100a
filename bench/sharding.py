"""Sharding benchmark: what cutting a torch network into stages on different workers costs and what it buys.

    .venv/bin/python bench/sharding.py                  # 9 hidden layers of 4096 (0.5 GiB), 8,192 rows, 3 repeats
    .venv/bin/python bench/sharding.py --width 2048 --rows 50000
    .venv/bin/python bench/sharding.py --smoke          # 5 layers of 256, 2,000 rows (CI); --out DIR for the results

One run, printed. It registers a ``TabularNet`` with random weights (its size is what matters, not its fit) and
scores the same day with ``score_day`` (the function the DAG task calls) on one LocalCluster of ``--workers`` CPU
worker processes with ``scoring.shards`` = 4, 2 and 1: the layers cut into 4 and 2 stages, each stage an actor on
its own worker (released when its run ends), then unsharded (every worker loads the whole network, keeps it cached
and scores its own row groups), last, so that no cached whole model inflates a sharded run's memory. Each setting
scores once to warm up (imports, page cache); then each is timed ``--repeats`` times, interleaved (4, 2, 1, 4, 2,
1, ...), and the median is printed. Workers run torch on ``--threads`` threads each (default 1, as each runs one
task at a time), so four workers on fewer cores do not fight over them.

For each it prints rows/s, the ratio to unsharded, and per worker the weights held (the actors' parameter bytes;
unsharded, the whole model on each) and the worker's RSS. Expect sharding to hold 1/N of the weights per worker
and to be slower than unsharded for a model that fits: it buys capacity, not speed (goal printed: the largest
stage's weights <= 1.1 x total/N). Checks: every row scored, and every setting's probabilities equal unsharded's
(to 1e-5).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import _results
import numpy as np

DAY = date(2026, 1, 1)
HERE = Path(__file__).resolve().parent
SHARDS = (1, 2, 4)
MIB = 2**20


def make_config(workdir: Path, args: argparse.Namespace, shards: int):
    from pipelines.config import Config

    return Config.model_validate(
        {
            "dataset": {
                "source": str(workdir / "unused"),
                "event_time": "event_time",
                "key": "key",
                "target": "label",
                "features": {"numerical": [f"f{i}" for i in range(args.features)]},
            },
            "task": "classification",
            "model": {
                "name": "sharded_bench",
                "flavor": "torch",
                "params": {"hidden": [args.width] * args.layers, "epochs": 0},
                "metric": "roc_auc",
            },
            "storage": {"root": str(workdir / "lake")},
            "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlruns.db'}", "experiment": "bench"},
            "scoring": {"partition_rows": args.partition_rows, "shards": shards, "max_dead_letter_share": 0.0},
            "monitoring": {"sample_rate": 0.01},
        }
    )


def prepare(workdir: Path, args: argparse.Namespace) -> int:
    """The day's features and a registered champion with random weights; returns its parameter bytes."""
    import pandas as pd

    from pipelines import model_artifacts, registry
    from pipelines.modeling import build_model, model_input
    from pipelines.storage import Lake, Table

    config = make_config(workdir, args, 1)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(args.rows, args.features)), columns=config.dataset.features.numerical)
    frame.insert(0, "event_time", pd.Timestamp(DAY, tz="UTC"))
    frame.insert(0, "key", [f"k{i:09d}" for i in range(args.rows)])
    Lake(config.storage.root).write(Table.FEATURES, DAY, frame, row_group_rows=args.partition_rows)
    _results.empty_mlflow_store(workdir / "mlruns.db")
    x = model_input(frame.head(256), config)
    model = build_model(config).fit(x, pd.Series(np.arange(len(x)) % 2))  # epochs=0: preprocessing fitted only
    store = registry.connect(config)
    with registry.tracked_run(store, registry.RunKind.TRAINING, "sharded-bench") as run_id:
        source = model_artifacts.log_model(config.tracking_uri, run_id, model, "torch", x.head(2))
        version = store.register_version(config.model.name, source, run_id)
    store.set_alias(config.model.name, registry.CHAMPION, version)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _rss(dask_worker) -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def timed(client, config, label: str) -> tuple[float, object]:
    from pipelines.scoring import score_day

    started = time.perf_counter()
    result = score_day(config, DAY, label, client)
    return time.perf_counter() - started, result


def first_pass(client, workdir: Path, args: argparse.Namespace, shards: int, model_bytes: int) -> tuple[dict, object]:
    """Warm up, then one timed run with its memory figures; returns the figures and the day's probabilities (in key
    order)."""
    from pipelines.storage import Lake, Table

    config = make_config(workdir, args, shards)
    timed(client, config, f"warm-{shards}")
    seconds, result = timed(client, config, f"timed-{shards}-0")
    if shards == 1:
        rss = client.run(_rss)
        held, worker_rss = [model_bytes] * len(rss), max(rss.values())  # every worker loaded the whole network
    else:
        held = [s["parameter_bytes"] for s in result.stages]
        worker_rss = max(s["worker_rss_bytes"] for s in result.stages)
    predictions = Lake(config.storage.root).read(Table.PREDICTIONS, DAY, columns=["key", "probability"])
    figures = {
        "shards": shards,
        "workers": args.workers,
        "rows": result.rows_in,
        "scored": result.rows_scored,
        "times": [seconds],
        "weights_per_worker_mib": max(held) / MIB,
        "weights_share": max(held) / model_bytes,
        "worker_rss_mib": worker_rss / MIB,
    }
    return figures, predictions.sort_values("key")["probability"].to_numpy()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8192, help="rows of the scored day")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--width", type=int, default=4096, help="units of each hidden layer")
    parser.add_argument("--layers", type=int, default=9, help="hidden layers (the 8 after the first: width x width)")
    parser.add_argument("--partition-rows", type=int, default=2048, help="rows per row group = per scoring task")
    parser.add_argument("--workers", type=int, default=4, help="CPU worker processes (at least the most shards)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker process (OMP_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each setting, interleaved (median)")
    return _results.add_arguments(parser)


SMOKE = {"rows": 2_000, "width": 256, "layers": 5, "partition_rows": 500, "repeats": 1}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    logging.basicConfig(level=logging.WARNING)
    if args.workers < max(SHARDS):
        raise SystemExit(f"--workers {args.workers}: the benchmark cuts the model into up to {max(SHARDS)} stages")
    record = _results.Run("sharding", args)
    rows, probabilities = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-sharding-") as tmp:
        started = time.perf_counter()
        model_bytes = prepare(Path(tmp), args)
        print(
            f"prepared {args.rows:,} rows and a {model_bytes / MIB:,.0f} MiB network"
            f" ({args.layers} x {args.width}) in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        from distributed import Client

        from pipelines.cluster import local_cluster

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the workers' torch threads (they inherit it)
        with local_cluster(args.workers) as cluster, Client(cluster) as client:
            for shards in sorted(SHARDS, reverse=True):  # sharded first: no cached whole model in their memory
                figures, probabilities[shards] = first_pass(client, Path(tmp), args, shards, model_bytes)
                rows.insert(0, figures)
                print(f"shards={shards}: {figures['rows'] / figures['times'][0]:,.0f} rows/s", flush=True)
            for repeat in range(1, args.repeats):  # interleaved, so a change in the machine's load hits each alike
                for row in rows:
                    config = make_config(Path(tmp), args, row["shards"])
                    row["times"].append(timed(client, config, f"timed-{row['shards']}-{repeat}")[0])
                rates = ", ".join(f"shards={r['shards']}: {r['rows'] / r['times'][-1]:,.0f}" for r in rows)
                print(f"repeat {repeat}: {rates} rows/s", flush=True)

    for row in rows:
        row["seconds"] = statistics.median(row.pop("times"))
        row["rows_per_s"] = row["rows"] / row["seconds"]
    base = rows[0]["rows_per_s"]
    for row in rows:
        row["ratio_to_unsharded"] = row["rows_per_s"] / base
    print(
        f"\n== Sharding benchmark ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f};"
        f" TabularNet {args.layers} x {args.width}, {model_bytes / MIB:,.0f} MiB of weights; {args.workers} workers) =="
    )
    print(
        f"{'shards':>6}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'vs 1':>7}"
        f"{'weights/worker MiB':>20}{'share':>7}{'max worker RSS MiB':>20}"
    )
    for r in rows:
        print(
            f"{r['shards']:>6}{r['rows']:>9,}{r['seconds']:>9.1f}{r['rows_per_s']:>10,.0f}"
            f"{r['ratio_to_unsharded']:>7.2f}{r['weights_per_worker_mib']:>20,.1f}{r['weights_share']:>7.2f}"
            f"{r['worker_rss_mib']:>20,.0f}"
        )
    for r in rows[1:]:
        record.goal(f"largest_stage_share_{r['shards']}", r["weights_share"], 1.1 / r["shards"])
    record.check("every_row_scored", all(r["scored"] == r["rows"] == args.rows for r in rows))
    same = all(np.allclose(probabilities[n], probabilities[1], rtol=1e-5, atol=1e-6) for n in SHARDS[1:])
    record.check("probabilities_equal_unsharded", same)
    print("sharding buys capacity (1/N of the weights per worker), not speed: see the rows/s ratio")
    record.write(
        {"cores": os.cpu_count(), "model_mib": model_bytes / MIB, "workers": args.workers},
        rows=rows,
        plot=lambda figure: _plot(figure, rows),
    )


def _plot(figure, rows: list[dict]) -> None:
    """Throughput and weights per worker against the number of stages."""
    left, right = figure.subplots(1, 2)
    labels = [f"{r['shards']}" for r in rows]
    left.bar(labels, [r["rows_per_s"] for r in rows], color="C0")
    left.set_xlabel("scoring.shards")
    left.set_ylabel("rows / s")
    left.set_title("throughput")
    right.bar(labels, [r["weights_per_worker_mib"] for r in rows], color="C1", label="weights held")
    right.plot(labels, [r["worker_rss_mib"] for r in rows], "ko-", label="worker RSS")
    right.set_xlabel("scoring.shards")
    right.set_ylabel("MiB per worker")
    right.set_title("memory")
    right.legend()


if __name__ == "__main__":
    main()
