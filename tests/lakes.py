"""Small test lakes: the demo config pointed at temporary folders, extracted days and a trained champion.

Importable from any test module (pyproject's pytest ``pythonpath`` holds ``tests``); the fixtures in
``conftest.py`` wrap these for the common cases.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from pipelines import demo_data

REPO = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)
# Ten days of 600 rows (8 of them bad, so 592 valid a day), drifting from 2026-10-07.
SMALL = demo_data.DemoSpec(rows_per_day=600, days=10, drift_day=6, bad_rows_per_day=8)
VALID_ROWS = 592


@functools.cache
def _empty_mlflow_store() -> Path:
    """One migrated, empty MLflow SQLite store per test session, created on first use.

    MLflow creates a new SQLite store by running its schema migrations, seconds each time; every test store starts
    as a copy of this one instead, which MLflow opens as it is.
    """
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="mlflow-empty-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    MlflowClient(f"sqlite:///{folder / 'mlruns.db'}").search_experiments()
    return folder / "mlruns.db"


def _store_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlruns.db'}"


def mlflow_store_in(directory: Path) -> str:
    """The tracking URI of an MLflow store in ``directory``: the one there, or a copy of the session's empty one."""
    if not (directory / "mlruns.db").exists():
        shutil.copyfile(_empty_mlflow_store(), directory / "mlruns.db")
    return _store_uri(directory)


def write_config(
    directory: Path, raw: Path, *, mlflow_store: bool = True, declared: bool = False, **overrides: Any
) -> Path:
    """The demo config pointed at ``raw`` with a lake and MLflow store inside ``directory``.

    Raw features only, unless ``declared``: then with the demo's declared features (payments aggregates and the
    derived one) over ``raw/payments``, and its Feast repository inside ``directory``. Each keyword replaces or
    updates one top-level section (a dict updates it, anything else replaces it). Tests that never touch MLflow pass
    ``mlflow_store=False`` and spare themselves importing it.
    """
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    dataset = config["dataset"]
    dataset["source"] = str(raw / "raw" / "*.parquet")
    dataset["labels"] = str(raw / "labels" / "*.parquet")
    if declared:
        dataset["history"]["payments"]["source"] = str(raw / "payments" / "*.parquet")
        config["feature_store"] = {"repo": str(directory / "feature_repo")}
    else:
        dataset.pop("history")
        dataset["features"] = {k: dataset["features"][k] for k in ("numerical", "categorical")}
    config["storage"]["root"] = str(directory / "lake")
    config["mlflow"]["tracking_uri"] = mlflow_store_in(directory) if mlflow_store else _store_uri(directory)
    config["model"]["params"] = {"max_iter": 50}
    config["scoring"] = {"partition_rows": 250, "n_workers": 2}
    config["monitoring"]["evidently_workspace"] = str(directory / "evidently")  # not the checkout's
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def declared_features(payments: Path) -> dict[str, Any]:
    """``dataset`` overrides declaring a payments history (see :func:`write_payments`) and features over it:
    aggregates over two windows with a filter and an availability delay, and a derived ratio."""
    features = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())["dataset"]["features"]
    history = {
        "source": str(payments / "*.parquet"),
        "entity": "customer",
        "event_time": "paid_at",
        "join_key": "customer_id",
        "numerical": ["amount", "days_late"],
        "categorical": ["channel"],
        "delay_hours": 1,
    }
    aggregates = [
        {
            "name": "paid",
            "table": "payments",
            "column": "amount",
            "functions": ["sum", "mean", "last"],
            "windows": [7, 30],
        },
        {
            "name": "late",
            "table": "payments",
            "functions": ["count", "days_since_last"],
            "windows": [30],
            "where": "days_late > 0",
        },
        {
            "name": "channels",
            "table": "payments",
            "column": "channel",
            "functions": ["distinct_count"],
            "windows": [30],
        },
    ]
    derived = {"paid_to_income": "paid_sum_30d / income"}
    return {"history": {"payments": history}, "features": {**features, "aggregates": aggregates, "derived": derived}}


def write_payments(raw: Path, folder: Path, seed: int = 0) -> Path:
    """A payments history for the demo's customers: most have payments in the 40 days before their row (a few late),
    some have none, and some pay after their row's time (future events, which no row may see). One file per day."""
    import numpy as np
    import pandas as pd

    events = pd.concat([pd.read_parquet(f) for f in sorted((raw / "raw").glob("*.parquet"))], ignore_index=True)
    events = events.dropna(subset=["customer_id", "event_time"]).drop_duplicates("customer_id")
    rng = np.random.default_rng(seed)
    counts = rng.choice([0, 1, 3, 6], len(events), p=[0.25, 0.25, 0.25, 0.25])
    customers = np.repeat(events["customer_id"].to_numpy(), counts)
    times = np.repeat(pd.to_datetime(events["event_time"], utc=True).dt.tz_localize(None).to_numpy(), counts)
    offsets = pd.to_timedelta(rng.integers(-40 * 86400, 3 * 86400, len(customers)), unit="s")  # some after the row
    payments = pd.DataFrame(
        {
            "customer": customers,
            "paid_at": pd.DatetimeIndex(times, tz="UTC") + offsets,
            "amount": rng.integers(1, 400, len(customers)) * 2.5,
            "days_late": np.where(rng.random(len(customers)) < 0.2, rng.integers(1, 30, len(customers)), 0),
            "channel": rng.choice(["card", "bank", "cash"], len(customers)),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    for day, part in payments.groupby(payments["paid_at"].dt.date):
        part.reset_index(drop=True).to_parquet(folder / f"payments-{day}.parquet", index=False)
    return folder


def days(n: int, first: date = START) -> list[date]:
    """``n`` consecutive days from ``first``."""
    return [first + timedelta(days=i) for i in range(n)]


def extract_and_train(config: Any, n_days: int, train_day: date | None = None, first: date = START) -> Any:
    """Extract ``n_days`` from ``first``; then, if ``train_day`` is given, train and register on the window ending
    there. Returns the training result (``None`` when nothing was trained)."""
    from pipelines.features import extract_features
    from pipelines.training import train_and_register

    for day in days(n_days, first):
        extract_features(config, day)
    return train_and_register(config, train_day) if train_day is not None else None


def evidently_verdicts(config: Any, day: date) -> dict[str, dict[str, Any]]:
    """What one plain Evidently ``DataDriftPreset`` report says per column about the day's drift window against the
    champion's reference (every row of both): the verdicts ``check_drift`` must reach."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from pipelines import registry
    from pipelines.drift_tests import column_verdicts
    from pipelines.monitoring import current_window, drift_input, load_reference, output_column

    store = registry.connect(config)
    champion = registry.require_alias(store, config.model.name)
    current = drift_input(current_window(config, day), config)
    reference = drift_input(load_reference(store, champion), config)
    features = config.dataset.features
    definition = DataDefinition(
        numerical_columns=[*features.numerical, output_column(config)], categorical_columns=features.categorical
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    return column_verdicts(snapshot)


def with_section(config: Any, section: str, **values: Any) -> Any:
    """``config`` with some values of one section replaced (configs are frozen: a copy)."""
    return config.model_copy(update={section: getattr(config, section).model_copy(update=values)})


def rewrite_while_reading(lake: Any, day: date, rewrites: int = 6, parts: int = 3, seconds: float = 60.0) -> tuple:
    """Replace one day of the predictions table ``rewrites`` times, each a commit of ``parts`` files written one
    after the other (as batch scoring writes them), while a thread reads the day in a loop (at most 2,000 reads and
    ``seconds``). Fails unless every read is exactly one version's rows; returns (reads, distinct row sets seen)."""
    import threading
    import time

    import pandas as pd

    from pipelines.storage import Table

    def rows(version: int) -> list[list[str]]:  # each version its own keys and size, in ``parts`` files
        return [[f"v{version}-{p}-{i}" for i in range(5 + version)] for p in range(parts)]

    versions = [frozenset(k for part in rows(v) for k in part) for v in range(rewrites + 1)]
    lake.commit(
        Table.PREDICTIONS,
        day,
        [lake.write_file(Table.PREDICTIONS, day, "v0.parquet", pd.DataFrame({"k": sorted(versions[0])}))],
    )
    done = threading.Event()
    seen: list[frozenset] = []
    failures: list[Exception] = []

    def reader() -> None:
        deadline = time.monotonic() + seconds
        try:
            while len(seen) < 2000 and time.monotonic() < deadline and not (done.is_set() and len(seen) > 0):
                seen.append(frozenset(lake.read(Table.PREDICTIONS, day, ["k"])["k"]))
        except Exception as exc:  # noqa: BLE001 (a read that fails, e.g. a missing day, fails the test too)
            failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, rewrites + 1):
            files = []
            for p, keys in enumerate(rows(version)):
                files.append(
                    lake.write_file(Table.PREDICTIONS, day, f"v{version}-{p}.parquet", pd.DataFrame({"k": keys}))
                )
                time.sleep(0.02)  # a reader gets its chance between the files of one rewrite
            lake.commit(Table.PREDICTIONS, day, files)
    finally:
        done.set()
        thread.join(timeout=seconds)
    assert not failures, failures
    wrong = [s for s in seen if s not in versions]
    assert not wrong, f"{len(wrong)} of {len(seen)} reads saw a mix or a part of a version, e.g. {sorted(wrong[0])[:8]}"
    assert frozenset(lake.read(Table.PREDICTIONS, day, ["k"])["k"]) == versions[-1]
    return len(seen), len(set(seen))


def append_while_overwriting(lake: Any, day: date, reruns: int = 5, appends: int = 20) -> None:
    """The model server appends to the day's prediction log while batch reruns replace the day's batch rows, each in
    its own thread: afterwards every online row is there exactly once and the batch rows are the last rerun's."""
    import threading

    import pandas as pd

    from pipelines.storage import Table

    failures: list[Exception] = []

    def batch() -> None:
        try:
            for run in range(reruns):
                keys = [f"batch{run}-{i}" for i in range(10)]
                lake.write(Table.PREDICTION_LOG, day, pd.DataFrame({"k": keys, "run_id": f"batch-{run}"}))
        except Exception as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
            failures.append(exc)

    def online() -> None:
        try:
            for n in range(appends):
                lake.append(Table.PREDICTION_LOG, day, pd.DataFrame({"k": [f"online-{n}"], "arm": "champion"}))
        except Exception as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
            failures.append(exc)

    threads = [threading.Thread(target=batch), threading.Thread(target=online)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    log = lake.read(Table.PREDICTION_LOG, day)
    online_keys = sorted(log.loc[log["source"] == "online", "k"])
    assert online_keys == sorted(f"online-{n}" for n in range(appends)), "online rows lost or duplicated"
    assert sorted(log.loc[log["source"] == "batch", "k"]) == [f"batch{reruns - 1}-{i}" for i in range(10)]
    assert lake.count_rows(Table.PREDICTION_LOG, day) == appends + 10


def labeled_champion(config: Any, folder: Path, labels: list[Any], rng: Any, lift: float) -> tuple[Any, Any]:
    """``labels`` as one labels file in ``folder`` (known at once: no label time) and the config pointed at it, with
    an in-memory registry whose version 1 holds a calibration of scores that rise with the label by ``lift``: what
    the performance table's estimate needs, without training a model."""
    import numpy as np
    import pandas as pd

    from pipelines.estimated_performance import log_calibration
    from pipelines.registry import RunKind
    from pipelines.registry_memory import MemoryRegistry

    (folder / "labels").mkdir()
    pd.concat(labels).to_parquet(folder / "labels" / "labels.parquet", index=False)
    registry = MemoryRegistry()
    run_id = registry.start_run(RunKind.TRAINING, "train", {})
    y = rng.integers(0, 2, 2000)
    log_calibration(registry, run_id, y, np.clip(y * lift + rng.random(2000) * (1 - lift), 0, 1))
    registry.register_version(config.model.name, "source", run_id)
    return with_section(config, "dataset", labels=str(folder / "labels" / "*.parquet"), label_time=None), registry
