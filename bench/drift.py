"""Drift-check benchmark: one plain Evidently DataDriftPreset call against the project's per-column check.

    .venv/bin/python bench/drift.py                     # 1M x 20 current vs 200k reference
    .venv/bin/python bench/drift.py --current 200000 --reference 50000

The project's check (``pipelines.monitoring.drift_verdicts``) runs, per column, the statistical test Evidently
itself selects and implements, as one Dask task per column; it skips the report rendering work a plain Report does.
Prints both times, the ratio, and whether every column's verdict matches. Goal: ratio <= 0.25.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd


def frames(
    reference_rows: int, current_rows: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """15 numerical + 5 categorical columns; in the current frame 3 numerical and 2 categorical ones drift."""
    rng = np.random.default_rng(seed)
    numerical, categorical = [f"n{i}" for i in range(15)], [f"c{i}" for i in range(5)]

    def make(n: int, drifted: bool) -> pd.DataFrame:
        data = {c: rng.normal(0.4 if drifted and i < 3 else 0.0, 1.0, n) for i, c in enumerate(numerical)}
        for i, c in enumerate(categorical):
            p = [0.2, 0.3, 0.5] if drifted and i < 2 else [0.4, 0.35, 0.25]
            data[c] = rng.choice(["a", "b", "c"], size=n, p=p)
        return pd.DataFrame(data)

    return make(reference_rows, False), make(current_rows, True), numerical, categorical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--current", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from distributed import Client

    from pipelines.cluster import local_cluster
    from pipelines.monitoring import column_verdicts, drift_verdicts, evidently_drift

    reference, current, numerical, categorical = frames(args.reference, args.current)
    evidently_drift(reference.head(2000), current.head(2000), numerical, categorical)  # imports and warm-up

    started = time.perf_counter()
    plain = column_verdicts(evidently_drift(reference, current, numerical, categorical))
    plain_seconds = time.perf_counter() - started

    with local_cluster() as cluster, Client(cluster) as client:
        drift_verdicts(reference.head(2000), current.head(2000), numerical, categorical, client)  # warm workers
        started = time.perf_counter()
        ours = drift_verdicts(reference, current, numerical, categorical, client)
        ours_seconds = time.perf_counter() - started
        workers = len(cluster.workers)

    mismatched = [c for c in plain if plain[c]["drifted"] != ours[c]["drifted"]]
    print(
        f"current {args.current:,} x {len(numerical) + len(categorical)} vs reference {args.reference:,};"
        f" {workers} Dask workers"
    )
    print(f"{'column':<8}{'method':<34}{'plain score':>12}{'ours':>10}{'drifted':>9}")
    for column in plain:
        p, o = plain[column], ours[column]
        print(f"{column:<8}{p['method'][:33]:<34}{p['score']:>12.4f}{o['score']:>10.4f}{p['drifted']!s:>9}")
    print(f"\nplain Evidently DataDriftPreset: {plain_seconds:.1f}s")
    print(f"project drift check:             {ours_seconds:.1f}s")
    print(f"ratio: {ours_seconds / plain_seconds:.2f}   (goal <= 0.25)")
    print(f"verdicts match: {not mismatched}" + (f" (differ on {mismatched})" if mismatched else ""))


if __name__ == "__main__":
    main()
