"""Drift-check benchmark: the DAG's whole ``check_drift`` task against one plain Evidently DataDriftPreset report.

    .venv/bin/python bench/drift.py                      # 1M x 20 current vs 200k reference, 3 rounds
    .venv/bin/python bench/drift.py --current 200000 --reference 50000 --rounds 1
    .venv/bin/python bench/drift.py --smoke              # 30k vs 5k, 1 round (CI); --out DIR for the results

Setup (not timed, printed apart): a temporary lake whose prediction log holds ``--current`` rows over the
``monitoring.window_days`` (3) days ending on the checked day, labels for the checked day's keys, an MLflow SQLite
store with a registered champion whose run carries a ``--reference``-row reference artifact. The columns: 14
numerical and 5 categorical features and the model's probability, 20 tested columns; 3 numerical and 2 categorical
features drift, and the probability drifts a little.

- project: ``pipelines.monitoring.check_drift(config, day)``, the function the DAG's ``check`` task calls, whole:
  reading the window and the reference artifact, the per-column verdicts on all rows, the missing-value check, the
  realized metric from the labels, the Evidently report rendered on ``monitoring.report_rows`` sampled rows, the
  HTML/JSON/summary files written to the lake and logged to an MLflow run with the metrics, and the report added to
  the Evidently workspace as the day's snapshot.
- plain: ``Report([DataDriftPreset()]).run(current, reference)`` on the same 20 columns of the same frames, already
  in memory, with the column types declared; the report is computed, not saved (no ``save_html``/``save_json``):
  the baseline leaves out the reading and writing the project's side pays for.

The two sides alternate for ``--rounds`` rounds (the machine is shared: both see the same load); the ratio is of
the medians. Every column's drift verdict from the check's summary must equal the plain report's. Goal: ratio <=
0.25.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import _results
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DAY = date(2026, 10, 21)
NUMERICAL = [f"n{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(5)]
KEY, TARGET, EVENT_TIME = "customer_id", "defaulted", "event_time"


def features(n: int, drifted: bool, rng: np.random.Generator) -> pd.DataFrame:
    """14 numerical + 5 categorical columns; drifted: n0-n2 shift by 0.4 sd, c0-c1 change their frequencies."""
    data: dict[str, object] = {
        c: rng.normal(0.4 if drifted and i < 3 else 0.0, 1.0, n) for i, c in enumerate(NUMERICAL)
    }
    for i, c in enumerate(CATEGORICAL):
        p = [0.2, 0.3, 0.5] if drifted and i < 2 else [0.4, 0.35, 0.25]
        data[c] = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n, p=p)
    data["probability"] = rng.beta(2.2 if drifted else 2.0, 5.0, n)
    return pd.DataFrame(data)


def write_config(directory: Path, report_rows: int | None) -> Path:
    """The demo config with this benchmark's columns, a lake and an MLflow store in ``directory``."""
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    config["dataset"].update(
        source=str(directory / "raw" / "*.parquet"),
        labels=str(directory / "labels" / "*.parquet"),
        features={"numerical": NUMERICAL, "categorical": CATEGORICAL},
        history={},
        checks={},
    )
    config["storage"]["root"] = str(directory / "lake")
    config["mlflow"]["tracking_uri"] = f"sqlite:///{directory / 'mlruns.db'}"
    config["monitoring"].update(window_days=3, **({"report_rows": report_rows} if report_rows else {}))
    config["monitoring"]["evidently_workspace"] = str(directory / "evidently")  # the check's whole work, not the demo's
    config["schedule"] = {"start_date": None}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build(directory: Path, current_rows: int, reference_rows: int, report_rows: int | None):
    """Lake, labels and a registered champion with its reference artifact; returns the config and both frames."""
    from sklearn.dummy import DummyClassifier

    from pipelines import model_artifacts, registry
    from pipelines.config import load_config
    from pipelines.storage import Lake, Table
    from pipelines.training import PREDICTION, REFERENCE_ARTIFACT

    _results.empty_mlflow_store(directory / "mlruns.db")
    config = load_config(write_config(directory, report_rows))
    rng = np.random.default_rng(0)
    reference = features(reference_rows, False, rng)
    reference[TARGET] = (rng.random(reference_rows) < reference["probability"]).astype(int)
    reference[PREDICTION] = (reference["probability"] >= 0.5).astype(int)
    current = features(current_rows, True, rng)

    lake = Lake.from_config(config)
    window = [DAY - timedelta(days=i) for i in reversed(range(config.monitoring.window_days))]
    for day, rows in zip(window, np.array_split(np.arange(current_rows), len(window)), strict=True):
        part = current.iloc[rows]
        logged = pd.DataFrame(
            {KEY: [f"k{i:08d}" for i in rows], EVENT_TIME: pd.Timestamp(day) + pd.Timedelta(hours=12)}
        )
        logged = pd.concat([logged, part.drop(columns="probability").reset_index(drop=True)], axis=1)
        logged[PREDICTION] = (part["probability"].to_numpy() >= 0.5).astype(int)
        logged["probability"] = part["probability"].to_numpy()
        for name, value in {
            "model_name": config.model.name,
            "model_version": "1",
            "logical_date": day.isoformat(),
        }.items():
            logged[name] = pd.Categorical.from_codes(np.zeros(len(logged), np.int8), [value])  # as scoring writes them
        logged["scored_at"] = pd.Timestamp(day) + pd.Timedelta(days=1)
        lake.write(Table.PREDICTION_LOG, day, logged)
    known = write_labels(directory / "labels", lake.read(Table.PREDICTION_LOG, DAY, [KEY, "probability"]), rng)

    store = registry.connect(config)
    run = registry.tracked_run(store, registry.RunKind.TRAINING, "bench-champion")
    with tempfile.TemporaryDirectory() as tmp, run as run_id:
        model = DummyClassifier(strategy="prior").fit(reference[NUMERICAL].head(100), reference[TARGET].head(100))
        source = model_artifacts.log_model(config.tracking_uri, run_id, model, "sklearn", reference[NUMERICAL].head(5))
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        store.log_artifact(run_id, path, str(Path(REFERENCE_ARTIFACT).parent))
        version = store.register_version(config.model.name, source, run_id)
    store.set_alias(config.model.name, registry.CHAMPION, version)
    store.set_version_tag(config.model.name, version, registry.holdout_metric(config.model.metric), "0.7")
    return config, reference, current, known


def write_labels(folder: Path, checked: pd.DataFrame, rng: np.random.Generator) -> int:
    """Labels of the checked day's keys as the demo's label source holds them (``pipelines.demo_data``): each with
    its arrival time (``label_time``, UTC), one file per arrival day, sorted by key. 80% arrive later on the checked
    day (after the events' 12:00), so the check's realized metric reads them; the rest the next day, which a check of
    the day must not see (``read_labels(..., as_of=day)``)."""
    n = len(checked)
    late = rng.random(n) >= 0.8
    arrival = pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(np.where(late, 1, 0), unit="D")
    seconds = np.where(late, rng.integers(0, 86_400, n), rng.integers(13 * 3600, 86_400, n))
    labels = pd.DataFrame(
        {
            KEY: checked[KEY].astype(str).to_numpy(),
            TARGET: (rng.random(n) < checked["probability"].to_numpy()).astype(int),
            "label_time": arrival + pd.to_timedelta(seconds, unit="s"),
        }
    )
    folder.mkdir()
    for day, frame in labels.groupby(labels["label_time"].dt.date):
        frame.sort_values(KEY).to_parquet(folder / f"labels-{day.isoformat()}.parquet", index=False)
    return int((~late).sum())


def plain_report(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """One plain Evidently DataDriftPreset report over the 20 columns: column -> drifted."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from pipelines.drift_tests import column_verdicts

    numerical, columns = [*NUMERICAL, "probability"], [*NUMERICAL, "probability", *CATEGORICAL]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    return {c: v["drifted"] for c, v in column_verdicts(snapshot).items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--current", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=200_000)
    parser.add_argument("--report-rows", type=int, default=None, help="monitoring.report_rows (default: the config's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one check_drift call and print the top")
    return _results.add_arguments(parser)


SMOKE = {"current": 30_000, "reference": 5_000, "report_rows": 2_000, "rounds": 1}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("drift", args)
    logging.basicConfig(level=logging.WARNING)

    from pipelines.monitoring import check_drift
    from pipelines.storage import Lake, Table

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        started = time.perf_counter()
        config, reference, current, known = build(Path(tmp), args.current, args.reference, args.report_rows)
        setup = time.perf_counter() - started
        plain_report(reference.head(2000), current.head(2000))  # imports and warm-up, both sides
        check_drift(config, DAY)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(check_drift, config, DAY)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        plain_s, ours_s = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            plain = plain_report(reference, current)
            plain_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = check_drift(config, DAY)
            ours_s.append(time.perf_counter() - started)
        folder = Path(Lake.from_config(config).partition(Table.REPORTS, DAY))
        summary = json.loads((folder / "drift_summary.json").read_text())
    ours = {c: v["drifted"] for c, v in summary["columns"].items()}

    print(
        f"current {args.current:,} rows over {config.monitoring.window_days} days x {len(plain)} columns"
        f" vs reference {args.reference:,}; report rendered on <= {config.monitoring.report_rows:,} sampled rows a side"
    )
    print(f"setup (lake, labels, MLflow champion; not timed): {setup:.1f}s")
    print(f"{'column':<13}{'method':<34}{'plain':>7}{'ours':>7}")
    for column in plain:
        print(f"{column:<13}{summary['columns'][column]['method'][:33]:<34}{plain[column]!s:>7}{ours[column]!s:>7}")
    mismatched = [c for c in plain if plain[c] != ours.get(c)]
    print(f"\nplain Evidently DataDriftPreset (Report.run, in memory): {_times(plain_s)}")
    print(f"project check_drift (the DAG task, end to end):         {_times(ours_s)}")
    ratio = statistics.median(ours_s) / statistics.median(plain_s)
    rounds = ", ".join(f"{o / p:.2f}" for o, p in zip(ours_s, plain_s, strict=True))
    print(f"ratio of medians: {ratio:.2f}   (goal <= 0.15; each round: {rounds}); drift share {result.drift_share:.2f}")
    print(
        f"verdicts match on all {len(plain)} columns: {not mismatched}"
        + (f" (differ: {mismatched})" if mismatched else "")
    )
    print(
        f"realized metric from the labels known by {DAY}: {result.realized_metric}"
        f" on {result.realized_rows:,} rows ({known:,} labels arrived that day)"
    )

    record.goal("ratio_of_medians", ratio, 0.15)
    record.check("verdicts_match", not mismatched)
    record.check("realized_rows_equal_labels_known_by_day", result.realized_rows == known)
    record.write(
        {
            "current_rows": args.current,
            "reference_rows": args.reference,
            "columns": len(plain),
            "window_days": config.monitoring.window_days,
            "report_rows": config.monitoring.report_rows,
            "setup_s": setup,
            "plain_s": plain_s,
            "project_s": ours_s,
            "plain_median_s": statistics.median(plain_s),
            "project_median_s": statistics.median(ours_s),
            "ratio_of_medians": ratio,
            "ratio_each_round": [o / p for o, p in zip(ours_s, plain_s, strict=True)],
            "drift_share": result.drift_share,
            "realized_metric": result.realized_metric,
            "realized_rows": result.realized_rows,
            "labels_known_by_day": known,
            "mismatched_columns": mismatched,
        },
        rows=[
            {
                "column": c,
                "method": summary["columns"][c]["method"],
                "score": summary["columns"][c].get("score"),
                "threshold": summary["columns"][c].get("threshold"),
                "plain_drifted": plain[c],
                "project_drifted": ours[c],
            }
            for c in plain
        ],
        plot=lambda figure: _plot(figure, plain_s, ours_s, ratio),
    )


def _plot(figure, plain_s: list[float], ours_s: list[float], ratio: float) -> None:
    """Seconds per round, both sides side by side."""
    axes = figure.subplots()
    x = np.arange(len(plain_s))
    axes.bar(x - 0.2, plain_s, 0.4, label="plain Evidently DataDriftPreset (in memory)")
    axes.bar(x + 0.2, ours_s, 0.4, label="project check_drift (the DAG task, end to end)")
    axes.set_xticks(x, [f"round {i + 1}" for i in x])
    axes.set_ylabel("seconds")
    axes.set_title(f"drift check: ratio of medians {ratio:.2f} (goal <= 0.15)")
    axes.legend()


def _times(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.1f}s  (" + ", ".join(f"{s:.1f}" for s in seconds) + ")"


if __name__ == "__main__":
    main()
