"""Extraction cost against history: one day extracted with 7 days of source files beside it, and with 365.

    .venv/bin/python bench/extraction.py [--rows-per-day 5000]

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
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DAYS = 365
REPEATS = 7


def write_config(directory: Path, source: str, labels: str) -> Path:
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    config["dataset"].update(source=source, labels=labels)
    config["storage"]["root"] = str(directory / "lake")
    config["schedule"] = {"start_date": None}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-per-day", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

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
        sources = {"7 days": root / "week", "365 days": root / "data"}

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
        every, _ = timed(read_everything, config, day)

    print(f"\nday N = {day}, {args.rows_per_day} events/day")
    print(f"{'source files':<14}{'rows of N':>10}{'files read':>12}{'cold s':>9}{'warm s':>9}")
    for name in sources:
        print(f"{name:<14}{rows[name]:>10}{files[name]:>12}{cold[name]:>9.3f}{warm[name]:>9.3f}")
    assert rows["7 days"] == rows["365 days"], "both sources must yield the same rows for day N"
    print(
        f"\nwarm ratio 365/7: {warm['365 days'] / warm['7 days']:.2f}  (goal <= 1.5)"
        f"\ncold ratio 365/7: {cold['365 days'] / cold['7 days']:.2f}  (first run only: indexes every file once)"
        f"\nprevious behaviour, every file opened and parsed: {every:.3f}s over 365 files"
        f"\nlabels of day N's keys: {labels['7 days']:.3f}s with 7 label files, {labels['365 days']:.3f}s with 365"
        f" (ratio {labels['365 days'] / labels['7 days']:.2f})"
    )


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
