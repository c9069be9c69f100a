"""`make demo`: generate the demo data, run the real DAGs over a run of dates, print what they produced.

Two models live side by side, each with its own DAGs (``<dag>__<model>``), assets, lake and MLflow experiment:
the sklearn model of ``include/config/demo.yaml`` over every date, then the PyTorch model of
``include/config/demo_torch.yaml`` over fewer scored dates (``--second-days``) to keep the demo short. With
``MLOPS_CONFIG`` set, only that config runs.

The DAGs run with Airflow's ``dag.test()`` in this one process, and scoring uses one Dask cluster started here,
so process start, DAG parsing and cluster start-up are paid once for the whole sequence rather than once per run.
Each run is an ordinary Airflow DAG run recorded in the local Airflow database (visible in `make airflow-ui`), the
chain's runs under their day as partition key, as the scheduler keys them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.models.dagrun import DagRun
from airflow.sdk import DAG, CronPartitionTimetable, PartitionedAssetTimetable
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from sqlalchemy import update

from pipelines import demo_data, registry
from pipelines.cluster import local_cluster
from pipelines.config import Config, config_path, load_config, project_home
from pipelines.summary import (
    feature_summary,
    lake_summary,
    monitoring_summary,
    performance_summary,
    registry_summary,
)

DAGS = Path(__file__).resolve().parents[1] / "dags"
DEMO_CONFIGS = ("include/config/demo.yaml", "include/config/demo_torch.yaml")
log = logging.getLogger("demo")


def load_dags() -> dict[str, DAG]:
    """Parse the DAG folder once, as Airflow's DAG processor does (the folder is the bundle root)."""
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return bag.dags


class Runs:
    """Runs DAGs for days and keeps the failed ones. ``strict`` (the demo) stops at the first failure; otherwise
    (``make bootstrap``) a failed run is kept and the caller goes on with the next day, as the scheduler does."""

    def __init__(self, dags: dict[str, DAG], strict: bool = True) -> None:
        self.dags, self.strict = dags, strict
        self.failed: list[str] = []

    def __call__(self, dag_id: str, day: date, logical=None, through: date | None = None, **conf: object) -> bool:
        """One DAG run for ``day`` (through ``through``: a run of days), named by the ``date`` (and ``through``)
        Params, with the current time as its logical date; whether it succeeded.

        Not the day itself: ``dag.test()`` takes the logical date as the run's start, and the UI's grid then showed
        weeks-long runs (nor None: ``dag.test()`` would then clear every earlier run's task instances). A run of one
        day gets the day as its partition key; a run of days gets none (it is keyed by no single day).
        """
        started = time.monotonic()
        logical = logical or datetime.now(UTC)
        if through is not None:
            conf["through"] = through.isoformat()
        dag_run = self.dags[dag_id].test(logical_date=logical, run_conf={"date": day.isoformat(), **conf})
        if through is None:
            label_partition(self.dags[dag_id], dag_run, day)
        state = str(getattr(dag_run.state, "value", dag_run.state))
        days = f"{day}..{through}" if through is not None else str(day)
        print(f"  {dag_id:<36} {days}  {state:<8} {time.monotonic() - started:5.1f}s", flush=True)
        if state == "success":
            return True
        failure = f"{dag_id} for {days} ended in state {state} (run {dag_run.run_id})"
        if self.strict:
            raise SystemExit(f"{failure}; see the log above")
        self.failed.append(failure)
        return False


def label_partition(dag: DAG, dag_run: DagRun, day: date) -> None:
    """Record the day as the finished run's partition key when the DAG is partitioned, as a scheduled run has it.

    ``dag.test()`` takes no partition key in Airflow 3.3.2, so its runs process the ``date`` Param's day (the same
    day: ``_schedule.partition_day``) and their asset events carry it (the tasks add it); only the run itself would
    be unkeyed, and the grid of `make airflow-ui` shows runs by their partition key.
    """
    if not isinstance(dag.timetable, (CronPartitionTimetable, PartitionedAssetTimetable)):
        return
    with create_session() as session:
        session.execute(
            update(DagRun)
            .where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
            .values(partition_key=day.isoformat(), partition_date=datetime(day.year, day.month, day.day, tzinfo=UTC))
        )


def reset_outputs(folders: list[str], home: Path) -> None:
    """Start from empty lakes, registry, online stores and Evidently workspace so the summary and UIs show this run
    alone."""
    for path in (*map(Path, folders), home / "mlruns.db", home / "mlartifacts"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", type=date.fromisoformat, default=demo_data.DemoSpec.start)
    parser.add_argument("--warmup-days", type=int, default=7, help="days extracted before the first training")
    parser.add_argument("--days", type=int, default=17, help="days extracted and scored after it")
    parser.add_argument("--second-days", type=int, default=7, help="scored days of the second (PyTorch) model")
    parser.add_argument("--keep", action="store_true", help="keep the lake and registry from earlier demo runs")
    parser.add_argument(
        "--online-requests",
        type=int,
        default=0,
        help="after the runs, send this many requests (10 rows each) to the model server for the last day",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    home = project_home()
    single = os.environ.get("MLOPS_CONFIG")
    configs = [load_config(config_path(single))] if single else [load_config(path) for path in DEMO_CONFIGS]
    if any(config.online_features for config in configs):
        import feast  # noqa: F401  # its import turns DeprecationWarnings back on ("once"): before the filter below
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # Airflow's own, once per DAG run otherwise
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"dask\.")  # Feast's offline reads, each day
    if not args.keep:
        local = [c.storage.root for c in configs if "://" not in c.storage.root]
        workspaces = [c.monitoring.evidently_workspace for c in configs if c.monitoring.evidently_workspace]
        stores = [str(Path(c.feature_store.repo) / c.model.name) for c in configs]
        reset_outputs([*local, *stores, *workspaces], home)
    if not all((home / "data" / kind).exists() for kind in ("raw", "labels", "payments")):
        spec = demo_data.DemoSpec(start=args.start, days=max(demo_data.DemoSpec.days, args.warmup_days + args.days))
        print(f"generating demo data: {demo_data.generate(home / 'data', spec)}")

    dags = load_dags()  # one set of DAGs per config: the same parse the DAG processor does
    warmup = [args.start + timedelta(days=i) for i in range(args.warmup_days)]
    results = []
    with local_cluster() as cluster:
        os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        print(f"Dask cluster {cluster.scheduler_address} with {len(cluster.workers)} worker processes")
        for index, config in enumerate(configs):
            days = args.days if index == 0 else min(args.days, args.second_days)
            scored = [warmup[-1] + timedelta(days=i + 1) for i in range(days)]
            print(f"\nmodel {config.model.name} ({config.model.flavor}): {len(warmup)} warm-up and {days} scored dates")
            started = time.monotonic()
            champions = run_chain(Runs(dags), config, warmup, scored)
            results.append((config, scored, champions, time.monotonic() - started))
    if args.online_requests:
        online_burst(configs[0], results[0][1][-1], args.online_requests)
    for config, scored, champions, elapsed in results:
        print_summary(config, warmup + scored, scored, champions, elapsed)


def run_chain(runs: Runs, config: Config, warmup: list[date], scored: list[date]) -> dict[str, str]:
    """One model's DAGs over the dates, in the order the assets would start them; returns each day's champion."""
    name = config.model.name
    for day in warmup:
        runs(f"feature_extraction__{name}", day)
    runs(f"model_training__{name}", warmup[-1], reason="demo: first model")
    return run_days(runs, config, scored)


def run_days(runs: Runs, config: Config, days: list[date], extract: bool = True) -> dict[str, str]:
    """Extract (unless ``extract`` is False: done already), score and check each day, then any retraining the check
    triggered; returns each day's champion.

    A failed run ends its day's chain there (its asset event would not start the next DAG either); the next day
    starts afresh."""
    name = config.model.name
    champions = {}
    chain = (f"batch_scoring__{name}", f"drift_monitoring__{name}")
    if extract:
        chain = (f"feature_extraction__{name}", *chain)
    for day in days:
        if all(runs(dag_id, day) for dag_id in chain):  # all() stops at the first failed run
            run_triggered_retraining(runs, name, day)
        champions[day.isoformat()] = f"v{registry.require_alias(registry.connect(config), name).version}"
    return champions


def online_burst(config, day: date, requests: int, rows_per_request: int = 10) -> None:
    """A bounded burst through the real model server app (in process): the day's log then holds online rows."""
    from fastapi.testclient import TestClient

    from pipelines.serving.app import create_app
    from pipelines.storage import Lake, Table

    dataset = config.dataset
    features = Lake.from_config(config).read(Table.FEATURES, day).head(requests * rows_per_request)
    features = features.assign(**{dataset.event_time: features[dataset.event_time].astype(str)})
    if config.online_features:  # the server looks the declared features up by account: send what a caller has
        features = features[[dataset.key, dataset.event_time, *dataset.join_keys, *dataset.features.raw]]
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    answered, url = 0, f"/v1/models/{config.model.name}:predict"
    with TestClient(create_app([config])) as client:  # leaving it stops the server: the log is flushed
        for start in range(0, len(rows), rows_per_request):
            response = client.post(url, json=rows[start : start + rows_per_request])
            answered += len(response.json()["predictions"]) if response.status_code == 200 else 0
    print(f"  model server: {answered} rows answered online for {day}; sampled ones are in its prediction log")


def run_triggered_retraining(runs: Runs, model: str, day: date) -> date | None:
    """Run the retraining that the model's drift monitoring queued (no scheduler runs here): same date and conf.
    Returns the day it retrained for (the day whose check started it), or None when none was queued."""
    retrained = None
    for queued in DagRun.find(dag_id=f"retraining__{model}", state=DagRunState.QUEUED):
        print(f"  drift_monitoring__{model} triggered retraining: {queued.conf.get('reason')}")
        conf = dict(queued.conf)
        retrained = date.fromisoformat(conf.pop("date", None) or day.isoformat())
        runs(f"retraining__{model}", retrained, logical=queued.logical_date, **conf)
    return retrained


def print_summary(config, days: list[date], scored: list[date], champions: dict[str, str], elapsed: float) -> None:
    pd.set_option("display.width", 200)
    lake = lake_summary(config, days)
    print(f"\n== {config.model.name} ({config.model.flavor}): {len(days)} dates in {elapsed:.0f}s ==\n")
    print("Rows per date (rows_in = valid + quarantined; valid = scored + dead_letter; logged = sampled predictions):")
    print(lake.to_string(index=False))
    features = feature_summary(config, days)
    if not features.empty:
        tables = ", ".join(config.dataset.history)
        print(
            f"\nDeclared features, computed from each row's history ({tables}) before its time, then derived"
            " (mean per date;\nno_history: rows whose entity had no event in the window, given the declared defaults):"
        )
        print(features.to_string(index=False))
    monitoring = monitoring_summary(config, scored).assign(champion_after=lambda f: f["date"].map(champions))
    print("\nDrift checks and retraining (drift_share: share of drifted features; decision: challenger vs champion):")
    print(monitoring.to_string(index=False))
    print(
        "\nLabels arrive late: share of each scored date's rows labeled N days after it was scored, and the realized"
        f" metric\nwith its {config.promotion.confidence:.0%} bootstrap interval as known now, beside the estimate from"
        " the scores alone, known on the\nday of scoring (performance table, updated by drift_monitoring):"
    )
    print(performance_summary(config, scored).to_string(index=False))
    print(f"\nRegistered versions of '{config.model.name}' in MLflow:")
    print(registry_summary(config).to_string(index=False))
    root = config.storage.root
    print(
        f"\nOutputs:\n  features     {root}/features/date=YYYY-MM-DD/"
        f"\n  quarantine   {root}/quarantine/date=YYYY-MM-DD/"
        f"\n  predictions  {root}/predictions/date=YYYY-MM-DD/\n  dead letters {root}/dead_letter/date=YYYY-MM-DD/"
        f"\n  pred. log    {root}/prediction_log/date=YYYY-MM-DD/"
        f"\n  drift report {root}/reports/date=YYYY-MM-DD/drift_report.html"
        f"\n  performance  {root}/performance/date=YYYY-MM-DD/ (realized metric as labels arrive)"
        f"\n  MLflow store {config.tracking_uri}"
        "\n\nUIs:\n  make airflow-ui   -> http://127.0.0.1:8080 (DAG runs above are in its history)"
        "\n  make mlflow-ui    -> http://127.0.0.1:5000 (runs, registered versions, aliases)"
        "\n  make evidently-ui -> http://127.0.0.1:8002 (Evidently's dashboard: drift and metric over the days)"
    )


if __name__ == "__main__":
    sys.exit(main())
