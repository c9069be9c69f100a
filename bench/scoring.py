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

    .venv/bin/python bench/scoring.py --gpu --rows 2000000     # on a machine with an NVIDIA GPU (scripts/gpu_check.sh)

``--gpu`` measures the GPU worker pool instead, with the torch demo model (``include/config/demo_torch.yaml``'s
network) trained on the same data: (a) its raw forward pass on the GPU over tensors preloaded there, (b) ``score_day``
on ``--gpu-workers`` GPU worker processes (``GPU=1``, each with its own ``CUDA_VISIBLE_DEVICES``, sharing the visible
GPUs round-robin) beside the CPU workers; the ratio (b)/(a) (goal >= 0.8); then the same day scored on CPU workers
only, and sharded (``scoring.shards: 2``) with its stages on GPU workers. Checks: every row scored, the pool ran on
CUDA, both stages on CUDA, and the GPU paths' probabilities equal the CPU path's (to 1e-5). Without a CUDA device
torch can see it refuses, saying so.
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


def make_config(workdir: Path, features: int, partition_rows: int, trees: int = 200, torch_model: bool = False):
    """The bench's config: a gradient-boosted model, or with ``torch_model`` the demo's torch network (``--gpu``)."""
    from pipelines.config import Config

    if torch_model:
        import yaml

        demo = yaml.safe_load((HERE.parent / "include/config/demo_torch.yaml").read_text())["model"]
        model = {"name": "bench_torch", "flavor": "torch", "params": demo["params"], "metric": "roc_auc"}
    else:
        model = {
            "name": "bench",
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": trees, "max_leaf_nodes": 63, "early_stopping": False},
            "metric": "roc_auc",
        }
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
            "model": model,
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
    workdir: Path,
    rows: int,
    features: int,
    partition_rows: int,
    trees: int,
    train_rows: int,
    train_threads: int | None,
    torch_model: bool = False,
) -> None:
    """Write the day (one file per row group, streamed, committed once) and register a champion trained on
    ``train_rows`` rows (once per ``workdir``: a later run reuses it)."""
    from threadpoolctl import threadpool_limits

    from pipelines import model_artifacts, registry
    from pipelines.modeling import build_model, model_input
    from pipelines.storage import Lake, Table

    config = make_config(workdir, features, partition_rows, trees, torch_model)
    root = f"{workdir}/lake-{rows}"
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    name = config.model.name
    rng = np.random.default_rng(rows)
    lake, files = Lake(root), []
    for piece, start in enumerate(range(0, rows, partition_rows)):  # one file per row group, committed as one day
        chunk = _frame(rng, start, min(partition_rows, rows - start), features).drop(columns=["label"])
        files.append(lake.write_file(Table.FEATURES, DAY, f"part-{piece:05d}.parquet", chunk))
    lake.commit(Table.FEATURES, DAY, files)
    if not (workdir / "mlruns.db").exists():
        _results.empty_mlflow_store(workdir / "mlruns.db")
    store = registry.connect(config)
    if store.alias(name, registry.CHAMPION) is None:
        train = _frame(np.random.default_rng(0), 0, train_rows, features)
        with threadpool_limits(train_threads):  # setup, not measured: on a busy machine OpenMP's spinning dominates
            x = model_input(train, config)
            model = build_model(config).fit(x, train["label"])
        with registry.tracked_run(store, registry.RunKind.TRAINING, f"{name}-champion") as run_id:
            source = model_artifacts.log_model(config.tracking_uri, run_id, model, config.model.flavor, x.head(5))
            version = store.register_version(name, source, run_id)
        store.set_alias(name, registry.CHAMPION, version)


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


def measure_gpu(kind: str, workdir: Path, rows: int, features: int, partition_rows: int, gpu_workers: int) -> dict:
    """One ``--gpu`` measurement, in a fresh process: the raw forward pass on the GPU over preloaded tensors
    (``gpu-limit``), or ``score_day`` on GPU workers (``gpu-pipeline``), CPU workers only (``cpu-pipeline``), or
    sharded in two stages on GPU workers (``gpu-sharded``); a pipeline's probabilities are saved for the parent."""
    import torch
    from distributed import Client

    from pipelines import registry
    from pipelines.cluster import local_cluster, resource_workers
    from pipelines.model_artifacts import load_model
    from pipelines.scoring import score_day
    from pipelines.storage import Lake, Table

    config = make_config(workdir, features, partition_rows, torch_model=True)
    root = f"{workdir}/lake-{rows}"
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    ref = registry.require_alias(registry.connect(config), config.model.name)
    batch = config.scoring.torch_batch_rows
    if kind == "gpu-limit":
        model = load_model(ref, config.tracking_uri, "cuda", batch)
        frame = Lake(root).read(Table.FEATURES, DAY, columns=config.dataset.features.numerical)
        x = torch.as_tensor(model.matrix(frame), device="cuda")  # preloaded: no transfer is timed
        with torch.inference_mode():
            for chunk in x[: batch * 4].split(batch):  # warm-up: kernels chosen, allocator primed
                model(chunk)
            torch.cuda.synchronize()
            started = time.perf_counter()
            for chunk in x.split(batch):
                model(chunk)
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
        return {"kind": kind, "rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "device": "cuda"}

    devices = torch.cuda.device_count()
    gpus = 0 if kind == "cpu-pipeline" else gpu_workers if kind == "gpu-pipeline" else 2
    cpus = None if kind == "cpu-pipeline" else 2  # all cores for the CPU path; the GPU paths score on GPU workers
    if kind == "gpu-sharded":
        config = config.model_copy(update={"scoring": config.scoring.model_copy(update={"shards": 2})})
    with local_cluster(cpus, gpus, gpu_devices=devices) as cluster, Client(cluster) as client:
        if kind == "gpu-pipeline":  # the per-worker model cache, as in service
            gpu_workers_here = list(resource_workers(client, "GPU"))
            client.run(load_model, ref, config.tracking_uri, "cuda", batch, workers=gpu_workers_here)
        score_day(config, DAY, "warm-up", client)
        started = time.perf_counter()
        result = score_day(config, DAY, "bench", client)
        elapsed = time.perf_counter() - started
    predictions = Lake(root).read(Table.PREDICTIONS, DAY, columns=["key", "probability"]).sort_values("key")
    np.save(workdir / f"probabilities-{kind}.npy", predictions["probability"].to_numpy())
    return {
        "kind": kind,
        "rows": rows,
        "scored": result.rows_scored,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "device": result.device,
        "stages": [{k: s[k] for k in ("layers", "device", "parameter_bytes")} for s in result.stages],
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
        "--gpu-workers",
        str(args.gpu_workers),
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
    parser.add_argument("--child", choices=["limit", "pipeline", *GPU_KINDS])
    parser.add_argument("--gpu", action="store_true", help="measure the GPU worker pool with the torch demo model")
    parser.add_argument(
        "--gpu-workers", type=int, default=8, help="--gpu: GPU worker processes, sharing the visible GPUs"
    )
    return _results.add_arguments(parser)


GPU_KINDS = ("gpu-limit", "gpu-pipeline", "cpu-pipeline", "gpu-sharded")


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
    if args.child in GPU_KINDS:
        gpu = measure_gpu(args.child, args.workdir, args.rows, args.features, args.partition_rows, args.gpu_workers)
        print(json.dumps(gpu))
        return
    if args.child:
        print(json.dumps(measure(args.child, args.workdir, args.rows, args.features, args.partition_rows)))
        return
    if args.gpu:
        main_gpu(args)
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


def main_gpu(args: argparse.Namespace) -> None:
    """``--gpu``: the pool on the GPU against the raw forward pass there, and the GPU paths against the CPU path."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(
            f"bench/scoring.py --gpu: torch {torch.__version__} sees no CUDA device here; run it where an NVIDIA GPU"
            " and a CUDA build of torch are (scripts/gpu_check.sh checks both first and skips a machine without)"
        )
    if args.workdir == build_parser().get_default("workdir"):
        args.workdir = args.workdir / "gpu"  # its own registry: the torch champion, not the bench's trees
    record = _results.Run("scoring_gpu", args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    prepare(args.workdir, args.rows, args.features, args.partition_rows, 0, args.train_rows, None, torch_model=True)
    print(f"prepared {args.rows:,} rows x {args.features} features in {time.perf_counter() - started:.0f}s", flush=True)
    runs = {kind: _child(kind, args, args.rows) for kind in GPU_KINDS}
    probabilities = {kind: np.load(args.workdir / f"probabilities-{kind}.npy") for kind in GPU_KINDS[1:]}
    name = torch.cuda.get_device_name(0)
    print(f"\n{torch.cuda.device_count()} x {name}; {os.cpu_count()} cores; torch demo network, {args.rows:,} rows")
    print(f"{'measurement':<44}{'seconds':>9}{'rows/s':>14}  device")
    for kind, run in runs.items():
        print(f"{kind:<44}{run['seconds']:>9.2f}{run['rows_per_s']:>14,.0f}  {run['device']}")
    ratio = runs["gpu-pipeline"]["rows_per_s"] / runs["gpu-limit"]["rows_per_s"]
    print(f"\nGPU pool / raw forward pass on the GPU: {ratio:.3f}   (goal >= 0.8)")
    for kind in ("gpu-pipeline", "gpu-sharded"):
        gap = float(np.max(np.abs(probabilities[kind] - probabilities["cpu-pipeline"])))
        print(f"{kind} probabilities vs cpu-pipeline: largest difference {gap:.2e}")
    print(f"sharded stages: {runs['gpu-sharded']['stages']}")
    record.goal("gpu_pool_vs_raw_forward", ratio, 0.8, at_most=False)
    record.check("every_row_scored", all(runs[k]["scored"] == args.rows for k in GPU_KINDS[1:]))
    record.check("pool_ran_on_cuda", runs["gpu-pipeline"]["device"] == "cuda")
    record.check("stages_on_cuda", [s["device"] for s in runs["gpu-sharded"]["stages"]] == ["cuda", "cuda"])
    for kind in ("gpu-pipeline", "gpu-sharded"):
        same = np.allclose(probabilities[kind], probabilities["cpu-pipeline"], rtol=1e-5, atol=1e-5)
        record.check(f"{kind}_equals_cpu", bool(same))
    columns = ("kind", "rows", "scored", "seconds", "rows_per_s", "device")
    rows = [{k: run.get(k) for k in columns} for run in runs.values()]
    record.write({"gpu": name, "gpus": torch.cuda.device_count(), "ratio": ratio}, rows=rows)


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
