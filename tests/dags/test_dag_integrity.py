"""The DAG folder as Airflow's DAG processor sees it: imports, metadata and task graphs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk import CronDataIntervalTimetable, CronPartitionTimetable, PartitionedAssetTimetable
from airflow.sdk.definitions.timetables.simple import NullTimetable

from _schedule import partition_day, run_of_days
from _support import stderr_to_log

pytestmark = pytest.mark.unit

DAGS = Path(__file__).resolve().parents[2] / "dags"
BASES = ("feature_extraction", "model_training", "batch_scoring", "drift_monitoring", "retraining", "model_rollback")
MODELS = ("credit_default", "credit_default_torch")  # include/config/demo.yaml and demo_torch.yaml
EXPECTED = {f"{base}__{model}" for base in BASES for model in MODELS}


@pytest.fixture(scope="module")
def bag(dag_bag):
    return dag_bag


def test_no_import_errors_and_one_set_of_dags_per_config(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXPECTED  # include/stack/config.yaml (compose only) makes none outside the stack


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_metadata(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags and "mlops" in dag.tags
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    assert dag.max_active_runs is not None and dag.max_active_runs <= 3
    assert not dag.catchup
    assert "config" not in dag.params  # baked into the DAG: a run cannot drift to another model's config
    if not dag_id.startswith("model_rollback"):
        assert "date" in dag.params
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag_id}.{task.task_id} has no retries"


def test_dag_files_import_nothing_heavy():
    """Parsing must stay cheap: pandas, MLflow, Dask, sklearn and torch are imported inside task bodies only."""
    heavy = ("pandas", "mlflow", "dask", "distributed", "sklearn", "torch", "evidently", "pipelines")
    for file in DAGS.glob("*.py"):
        top_level = [line for line in file.read_text().splitlines() if line.startswith(("import ", "from "))]
        offenders = [line for line in top_level if line.split()[1].split(".")[0] in heavy]
        assert not offenders, f"{file.name}: {offenders}"


# Runs in a fresh interpreter: imports what every DAG file imports from Airflow (as the DAG processor has), then
# executes each DAG file in a forked child of that state and prints which heavy modules the child holds.
_PARSE_EACH = """
import importlib.util, json, os, sys
import _support, airflow.sdk
folder, files, heavy = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
found = {"(airflow + _support)": [n for n in heavy if n in sys.modules]}
for file in files:
    read, write = os.pipe()
    if os.fork() == 0:
        spec = importlib.util.spec_from_file_location("dag_file", os.path.join(folder, file))
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        os.write(write, json.dumps([n for n in heavy if n in sys.modules]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[file] = json.loads(pipe.read() or '["<parse failed>"]')
    os.wait()
print(json.dumps(found))
"""


def test_parsing_a_dag_file_loads_no_heavy_library():
    """Not only the file's own imports: what Airflow resolves while building the DAG (e.g. the retry policy's
    exception classes) must stay light too. Each file is parsed in its own child process."""
    heavy = [
        "pandas",
        "mlflow",
        "dask",
        "distributed",
        "sklearn",
        "torch",
        "evidently",
        "pandera",
        "pyarrow",
        "deltalake",
    ]
    files = sorted(f.name for f in DAGS.glob("[!_]*.py"))
    assert len(files) == len(BASES)
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_EACH, str(DAGS), ",".join(files), ",".join(heavy)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"(airflow + _support)": [], **{file: [] for file in files}}, found


@pytest.mark.parametrize("model", MODELS)
def test_schedules(bag, model):
    dags = {base: bag.dags[f"{base}__{model}"] for base in BASES}

    def day_keyed_assets(base: str) -> set[str]:
        """The assets a DAG runs on, one run per day key (a partitioned asset timetable)."""
        timetable = dags[base].timetable
        assert isinstance(timetable, PartitionedAssetTimetable), f"{base}: {timetable!r}"
        assert timetable.default_partition_mapper.input_format == "%Y-%m-%d"
        return {timetable.asset_condition.name}

    extraction = dags["feature_extraction"].timetable
    assert isinstance(extraction, CronPartitionTimetable)  # each run keyed by the day it extracts
    assert (extraction.expression, extraction.run_offset, extraction.key_format) == ("0 0 * * *", -1, "%Y-%m-%d")
    retraining = dags["retraining"].timetable
    assert isinstance(retraining, CronDataIntervalTimetable) and retraining.expression == "0 3 * * 1"  # weekly gate
    assert isinstance(dags["model_training"].timetable, NullTimetable)  # manual: bootstraps the first champion
    assert dags["model_training"].max_active_runs == 1
    assert day_keyed_assets("batch_scoring") == {f"mlops.features.{model}"}
    assert day_keyed_assets("drift_monitoring") == {f"mlops.predictions.{model}"}
    assert dags["batch_scoring"].max_active_runs == dags["drift_monitoring"].max_active_runs == 1
    assert isinstance(dags["model_rollback"].timetable, NullTimetable)


@pytest.mark.parametrize("model", MODELS)
def test_task_graphs(bag, model):
    dags = {base: bag.dags[f"{base}__{model}"] for base in BASES}
    features = dags["feature_extraction"]
    assert features.get_task("days_to_extract").downstream_task_ids == {"extract"}
    declared = model == "credit_default"  # demo.yaml declares aggregates; demo_torch.yaml keeps raw features
    materialized = {"materialize"} if declared else set()  # the day into the online store; no task without one
    assert features.get_task("extract").downstream_task_ids == materialized
    assert [t.task_id for t in dags["model_training"].tasks] == ["train"]
    extract = dags["feature_extraction"].get_task("extract")
    assert [o.name for o in extract.outlets] == [f"mlops.features.{model}"]  # one event per day, keyed by it
    scoring = dags["batch_scoring"]
    assert [t.task_id for t in scoring.tasks] == ["score"]  # one run, its day (or run of days) in order
    assert [o.name for o in scoring.get_task("score").outlets] == [f"mlops.predictions.{model}"]
    drift = dags["drift_monitoring"]
    assert drift.get_task("days_to_check").downstream_task_ids == {"check"}
    # each day checked, its labels' performance and its decision in one loop: a day is decided before the next
    assert drift.get_task("check").downstream_task_ids == {"start_retraining"}
    assert drift.get_task("start_retraining").downstream_task_ids == {"trigger_retraining"}
    assert drift.get_task("trigger_retraining").trigger_dag_id == f"retraining__{model}"
    retrain = dags["retraining"]
    assert retrain.get_task("train_challenger").downstream_task_ids == {"evaluate_and_promote"}
    assert retrain.get_task("evaluate_and_promote").pool == "mlops_registry"
    assert set(retrain.task_dict) == {"train_challenger", "evaluate_and_promote"}  # approval: automatic
    assert dags["model_rollback"].get_task("rollback").pool == "mlops_registry"  # one pool for every model
    assert isinstance(dags["model_rollback"].timetable, NullTimetable)


def test_approval_required_puts_airflows_approval_operator_between_the_verdict_and_the_alias_move(
    monkeypatch, tmp_path
):
    from itertools import pairwise

    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from dag_runs import load_bag
    from lakes import write_config

    path = write_config(
        tmp_path, tmp_path, mlflow_store=False, promotion={"approval": "required", "approval_timeout_hours": 6}
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    dag = load_bag().dags["retraining__credit_default"]
    chain = ["train_challenger", "evaluate_and_promote", "awaiting_approval", "approve", "promote_approved"]
    for upstream, downstream in pairwise(chain):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)
    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator) and approve.defaults == ["Reject"]  # a timeout rejects
    assert approve.response_timeout.total_seconds() == 6 * 3600
    keep = dag.get_task("keep_champion")
    assert keep.upstream_task_ids == {"promote_approved"} and keep.trigger_rule == "all_skipped"
    assert {dag.get_task(t).pool for t in ("promote_approved", "keep_champion")} == {"mlops_registry"}


def test_mlops_config_selects_one_model_and_mlops_configs_a_glob(monkeypatch, tmp_path):
    from lakes import write_config

    from _support import models

    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        write_config(tmp_path / name, tmp_path, model={"name": name}).rename(tmp_path / f"{name}.yaml")
    monkeypatch.setenv("MLOPS_CONFIGS", str(tmp_path / "*.yaml"))
    assert [(m.name, m.config) for m in models()] == [(n, str(tmp_path / f"{n}.yaml")) for n in ("alpha", "beta")]
    assert models()[0].dag_id("batch_scoring") == "batch_scoring__alpha"
    assert models()[0].features.name == "mlops.features.alpha"
    monkeypatch.setenv("MLOPS_CONFIG", str(tmp_path / "beta.yaml"))  # a single-model deployment wins over the glob
    assert [m.name for m in models()] == ["beta"]
    monkeypatch.delenv("MLOPS_CONFIG")
    (tmp_path / "gamma.yaml").write_text((tmp_path / "alpha.yaml").read_text())
    with pytest.raises(ValueError, match="both define model 'alpha'"):
        models()


# --- the one rule that maps a run to a day -----------------------------------------------------------------


def _context(params=None, start=None, end=None, logical=None, key=None):
    return {
        "params": params or {},
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": logical,
        "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 10, 9, 13, tz="UTC"), partition_key=key),
    }


def test_partition_day_rules():
    utc = pendulum.timezone("UTC")
    d = lambda *a: pendulum.datetime(*a, tz=utc)  # noqa: E731
    assert partition_day(_context(start=d(2026, 10, 4), end=d(2026, 10, 5), logical=d(2026, 10, 4))) == date(
        2026, 10, 4
    )
    assert partition_day(_context(start=d(2026, 10, 5, 7), end=d(2026, 10, 5, 7), logical=d(2026, 10, 5, 7))) == date(
        2026, 10, 4
    )
    assert partition_day(_context(start=d(2026, 9, 28), end=d(2026, 10, 5))) == date(2026, 10, 4)  # weekly
    assert partition_day(_context()) == date(2026, 10, 8)  # manual run without a logical date
    assert partition_day(_context(params={"date": "2026-01-31"}, end=d(2026, 10, 5))) == date(2026, 1, 31)
    tokyo = pendulum.datetime(2026, 10, 5, 0, 30, tz="Asia/Tokyo")  # 2026-10-04 15:30 UTC
    assert partition_day(_context(end=tokyo)) == date(2026, 10, 3)


def test_partition_day_is_the_runs_partition_key():
    """Scheduled, backfilled and asset-triggered runs of the chain carry their day as the partition key; a manual
    run may name it by the key or the Param, not two different days."""
    from pipelines.errors import ConfigError

    assert partition_day(_context(key="2026-03-01", end=pendulum.datetime(2026, 10, 5, tz="UTC"))) == date(2026, 3, 1)
    assert partition_day(_context(params={"date": "2026-03-01"}, key="2026-03-01")) == date(2026, 3, 1)
    with pytest.raises(ConfigError, match="partition key is 2026-03-01 but its date Param is 2026-03-02"):
        partition_day(_context(params={"date": "2026-03-02"}, key="2026-03-01"))


def test_a_run_of_days_runs_from_its_day_through_the_through_param():
    """A run keyed by one day (scheduled, backfilled, asset-triggered) holds that day; ``through`` extends a run to a
    run of days, forward only."""
    from pipelines.errors import ConfigError

    assert run_of_days(_context(key="2026-03-01")) == [date(2026, 3, 1)]
    days = run_of_days(_context(params={"date": "2026-02-27", "through": "2026-03-02"}))
    assert days == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    with pytest.raises(ConfigError, match=r"through Param \(2026-02-26\) is before the run's day \(2026-02-27\)"):
        run_of_days(_context(params={"date": "2026-02-27", "through": "2026-02-26"}))


def test_what_mlflow_prints_to_stderr_is_logged_at_info(caplog):
    from mlflow.utils.logging_utils import eprint  # how MLflow announces a registration

    with caplog.at_level("INFO", logger="task.stderr"), stderr_to_log():
        eprint("Successfully registered model 'm'.\n")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "task.stderr"] == [
        ("INFO", "Successfully registered model 'm'.")
    ]


def _queues(dags) -> dict[str, set[str]]:
    """The worker queues each task id of these DAGs is sent to."""
    queues: dict[str, set[str]] = {}
    for dag in dags:
        for task in dag.tasks:
            queues.setdefault(task.task_id, set()).add(task.queue)
    return queues


def test_the_bundled_configs_send_every_task_to_the_default_queue(bag):
    """Neither demo config asks for GPU workers (demo_torch.yaml leaves scoring.gpu_workers unset)."""
    assert {queue for queues in _queues(bag.dags.values()).values() for queue in queues} == {"default"}


def test_torch_scoring_with_gpu_workers_goes_to_the_gpu_queue_and_nothing_else_does(monkeypatch, tmp_path):
    """As the DAG processor parses it: the model's one scoring task on `gpu`, the rest of its DAGs on the default
    queue; with an external Dask scheduler (the compose stack's), scoring stays on the default queue too."""
    from lakes import write_config

    torch = {"name": "gpu_model", "flavor": "torch", "estimator": None, "params": {"epochs": 1}}
    config = write_config(tmp_path, tmp_path, mlflow_store=False, model=torch, scoring={"gpu_workers": 1})
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    queues = _queues(BundleDagBag(dag_folder=DAGS, bundle_path=DAGS).dags.values())
    assert queues.pop("score") == {"gpu"}
    assert set().union(*queues.values()) == {"default"}
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://dask-scheduler:8786")
    assert _queues(BundleDagBag(dag_folder=DAGS, bundle_path=DAGS).dags.values())["score"] == {"default"}


def test_a_broken_config_is_an_import_error_naming_the_file(monkeypatch, tmp_path):
    """The config is read at parse time: a bad one shows in Airflow's import errors, never as a silent gap."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: {}\n")
    monkeypatch.setenv("MLOPS_CONFIG", str(broken))
    errors = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS).import_errors
    assert len(errors) == 6 and all(f"invalid config {broken}" in text for text in errors.values())
