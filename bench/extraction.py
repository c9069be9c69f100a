"""Extraction cost against history: one day extracted with 7 days of source files beside it, and with 365.

    .venv/bin/python bench/extraction.py [--rows-per-day 5000]
    .venv/bin/python bench/extraction.py --smoke     # 20 days x 300 rows, 3 repeats (CI); --out DIR for the results

Generates 365 days of demo events (one Parquet file per arrival day, 1% of each day's events arriving in the next
day's file), then extracts the same day N with ``extract_features`` (the function the DAG task calls) from two
sources: a glob over the 7 files around N, and a glob over all 365. Each gets its own lake, so its own source index.

- cold: the first extraction into an empty lake, which indexes every file (from Parquet footers: no rows read);
- warm: extracting N again with the index in place, which is what every daily run is once the history is indexed
  (a day's run indexes only the files that arrived since the last one).

Goal: warm(365) / warm(7) <= 1.5. Each warm timing is the median of 7 runs, interleaved. For scale, the previous
behaviour (open and parse every file the glob matches, keep the day's rows) is timed once over the 365 files, and
the labels of day N's keys are read (``read_labels``, warm index) with 7 and with 365 label files beside them.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import _results
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(directory: Path, source: str, labels: str) -> Path:
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    features = {k: config["dataset"]["features"][k] for k in ("numerical", "categorical")}  # raw: the source's cost
    config["dataset"].update(source=source, labels=labels, features=features, history={})
    config["storage"]["root"] = str(directory / "lake")
    config["schedule"] = {"start_date": None}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-per-day", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365, help="days of history (at least 9: day N is 5 from the end)")
    parser.add_argument("--repeats", type=int, default=7, help="warm runs of each side (median)")
    return _results.add_arguments(parser)


SMOKE = {"rows_per_day": 300, "days": 20, "repeats": 3}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("extraction", args)
    logging.basicConfig(level=logging.ERROR)
    DAYS, REPEATS = args.days, args.repeats
    if DAYS < 9:
        sys.exit("--days must be at least 9")
    many = f"{DAYS} days"

    import pandas as pd

    import pipelines.features as features
    from pipelines import demo_data
    from pipelines.config import load_config
    from pipelines.training import read_labels

    opened: list[str] = []
    read_source = features.read_source
    features.read_source = lambda url, *a, **k: opened.append(url) or read_source(url, *a, **k)

    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        root = Path(tmp)
        start = demo_data.DemoSpec.start - timedelta(days=DAYS)
        spec = demo_data.DemoSpec(start=start, days=DAYS, rows_per_day=args.rows_per_day, drift_day=DAYS)
        started = time.perf_counter()
        demo_data.generate(root / "data", spec)
        print(f"generated {DAYS} daily files x ~{args.rows_per_day} rows in {time.perf_counter() - started:.1f}s")
        index = DAYS - 5
        day = spec.start + timedelta(days=index)
        for kind in ("raw", "labels"):
            (root / "week" / kind).mkdir(parents=True)
            for offset in range(-3, 4):  # the 7 files around day N, N+1 (which carries N's late events) among them
                name = f"{'events' if kind == 'raw' else 'labels'}-{(day + timedelta(days=offset)).isoformat()}.parquet"
                (root / "week" / kind / name).symlink_to(root / "data" / kind / name)
        sources = {"7 days": root / "week", many: root / "data"}

        rows, cold, warm, files, labels, configs = {}, {}, {}, {}, {}, {}
        for name, folder in sources.items():
            directory = root / name.replace(" ", "_")
            directory.mkdir()
            configs[name] = load_config(
                write_config(directory, str(folder / "raw" / "*.parquet"), str(folder / "labels" / "*.parquet"))
            )
            cold[name], result = timed(features.extract_features, configs[name], day)
            rows[name] = result.rows_in
        runs: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(REPEATS):  # interleaved, so a burst of load on the shared machine hits both sides alike
            for name, config in configs.items():
                opened.clear()
                runs[name].append(timed(features.extract_features, config, day)[0])
                files[name] = len(opened)
        for name, config in configs.items():
            warm[name] = statistics.median(runs[name])
            features_url = f"{config.storage.root}/features/date={day.isoformat()}"
            keys = pd.read_parquet(features_url, columns=[config.dataset.key])[config.dataset.key]
            read_labels(config, keys)  # indexes the label files
            labels[name] = statistics.median(timed(read_labels, config, keys)[0] for _ in range(REPEATS))
        every_s, every = timed(read_everything, configs[many], day)

    print(f"\nday N = {day}, {args.rows_per_day} events/day")
    print(f"{'source files':<14}{'rows of N':>10}{'files read':>12}{'cold s':>9}{'warm s':>9}")
    for name in sources:
        print(f"{name:<14}{rows[name]:>10}{files[name]:>12}{cold[name]:>9.3f}{warm[name]:>9.3f}")
    record.check("same_rows_of_day_n_from_both_sources", rows["7 days"] == rows[many])
    record.check("previous_behaviour_same_rows", every == rows["7 days"])
    record.check("only_two_files_read_warm", files["7 days"] == files[many] == 2)
    warm_ratio, cold_ratio = warm[many] / warm["7 days"], cold[many] / cold["7 days"]
    labels_ratio = labels[many] / labels["7 days"]
    print(
        f"\nwarm ratio {DAYS}/7: {warm_ratio:.2f}  (goal <= 1.5)"
        f"\ncold ratio {DAYS}/7: {cold_ratio:.2f}  (first run only: indexes every file once)"
        f"\nprevious behaviour, every file opened and parsed: {every_s:.3f}s over {DAYS} files"
        f"\nlabels of day N's keys: {labels['7 days']:.3f}s with 7 label files, {labels[many]:.3f}s with {DAYS}"
        f" (ratio {labels_ratio:.2f})"
    )
    if rows["7 days"] != rows[many]:
        print(f"ROWS DIFFER: {rows}")
    record.goal("warm_ratio", warm_ratio, 1.5)
    record.write(
        {
            "day_n": day.isoformat(),
            "days": DAYS,
            "rows_per_day": args.rows_per_day,
            "warm_ratio": warm_ratio,
            "cold_ratio": cold_ratio,
            "previous_behaviour_s": every_s,
            "previous_behaviour_rows": every,
            "labels_s": {"7": labels["7 days"], str(DAYS): labels[many]},
            "labels_ratio": labels_ratio,
            "warm_runs_s": {name: runs[name] for name in sources},
        },
        rows=[
            {
                "source_files": int(name.split()[0]),
                "rows_of_n": rows[name],
                "files_read": files[name],
                "cold_s": cold[name],
                "warm_s": warm[name],
                "labels_s": labels[name],
            }
            for name in sources
        ],
        plot=lambda figure: _plot(figure, sources, cold, warm, labels, every_s, DAYS),
    )


def _plot(figure, sources, cold, warm, labels, every_s: float, days: int) -> None:
    """Seconds per side: cold, warm and labels, with the previous behaviour at the history's size for scale."""
    import numpy as np

    axes = figure.subplots()
    names = list(sources)
    x = np.arange(len(names))
    for offset, (label, values) in zip(
        (-0.27, 0, 0.27),
        (("cold (indexes every file)", cold), ("warm (median)", warm), ("labels of day N's keys", labels)),
        strict=True,
    ):
        axes.bar(x + offset, [values[n] for n in names], 0.27, label=label)
    axes.axhline(every_s, color="grey", linestyle="--", label=f"previous behaviour, {days} files: {every_s:.2f}s")
    axes.set_xticks(x, [f"{n} of source files" for n in names])
    axes.set_yscale("log")  # the previous behaviour is ~30x the warm runs at 365 files
    axes.set_ylabel("seconds (log scale)")
    axes.set_title(f"extracting one day: warm ratio {warm[names[1]] / warm[names[0]]:.2f} (goal <= 1.5)")
    axes.legend(fontsize=8)


def read_everything(config, day) -> int:
    """What extraction did before the index: read every matched file and keep the day's rows."""
    from pipelines.features import _select_day
    from pipelines.sources import read_source, source_files

    return sum(
        len(_select_day(read_source(url, config.dataset), config.dataset, url, day))
        for url in source_files(config.dataset.source)
    )


if __name__ == "__main__":
    main()
