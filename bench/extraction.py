"""Extraction cost against history: one day extracted with 7 days of source files beside it, and with 365.

    .venv/bin/python bench/extraction.py [--rows-per-day 5000]

Generates 365 days of demo events (one Parquet file per arrival day, 1% of each day's events arriving in the next
day's file), then extracts the same day N with ``extract_features`` (the function the DAG task calls) from two
sources: a glob over the 7 files around N, and a glob over all 365. Each gets its own lake, so its own source index.

- cold: the first extraction into an empty lake, which indexes every file (from Parquet footers: no rows read);
- warm: extracting N again with the index in place, which is what every daily run is once the history is indexed
  (a day's run indexes only the files that arrived since the last one).

Goal: warm(365) / warm(7) <= 1.5. Each warm timing is the median of 5 runs.
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
REPEATS = 5


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

    import pipelines.features as features
    from pipelines import demo_data
    from pipelines.config import load_config

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
        week = root / "week"
        week.mkdir()
        for offset in range(-3, 4):  # the 7 files around day N, N+1 (which carries N's late events) among them
            name = f"events-{(day + timedelta(days=offset)).isoformat()}.parquet"
            (week / name).symlink_to(root / "data" / "raw" / name)
        labels = str(root / "data" / "labels" / "*.parquet")
        sources = {"7 days": str(week / "*.parquet"), "365 days": str(root / "data" / "raw" / "*.parquet")}

        rows, cold, warm, files = {}, {}, {}, {}
        for name, source in sources.items():
            directory = root / name.replace(" ", "_")
            directory.mkdir()
            config = load_config(write_config(directory, source, labels))
            cold[name], result = timed(features.extract_features, config, day)
            rows[name] = result.rows_in
            runs = []
            for _ in range(REPEATS):
                opened.clear()
                runs.append(timed(features.extract_features, config, day)[0])
            warm[name] = statistics.median(runs)
            files[name] = len(opened)

    print(f"\nday N = {day}, {args.rows_per_day} events/day")
    print(f"{'source files':<14}{'rows of N':>10}{'files read':>12}{'cold s':>9}{'warm s':>9}")
    for name in sources:
        print(f"{name:<14}{rows[name]:>10}{files[name]:>12}{cold[name]:>9.3f}{warm[name]:>9.3f}")
    assert rows["7 days"] == rows["365 days"], "both sources must yield the same rows for day N"
    print(
        f"\nwarm ratio 365/7: {warm['365 days'] / warm['7 days']:.2f}  (goal <= 1.5)"
        f"\ncold ratio 365/7: {cold['365 days'] / cold['7 days']:.2f}  (first run only: indexes every file once)"
    )


if __name__ == "__main__":
    main()
