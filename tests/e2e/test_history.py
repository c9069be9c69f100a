"""History through the real DAGs: dates from the config, late files, and `make bootstrap` from raw history."""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import date, timedelta
from pathlib import Path

import pendulum
import pytest
from dag_runs import load_dags, run_dag
from lakes import REPO, write_config
from mlflow.tracking import MlflowClient
from sqlalchemy import select

from pipelines import demo_data
from pipelines.config import load_config
from pipelines.storage import Lake, Table

START = date(2018, 3, 1)  # long before the DAG files' old hard-coded 2026-10-01
SPEC = demo_data.DemoSpec(start=START, days=5, rows_per_day=300, bad_rows_per_day=4, drift_day=99)


@pytest.fixture
def history(tmp_path: Path, airflow_db, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Five days of 2018 events and a config whose schedule starts on the first; DAGs parse with that config."""
    demo_data.generate(tmp_path / "data", SPEC)
    config = write_config(
        tmp_path, tmp_path / "data", schedule={"start_date": START.isoformat()}, training={"window_days": 2}
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    return config


@pytest.mark.e2e
def test_history_before_the_old_start_runs_and_a_day_before_the_configured_start_fails(history):
    dags = load_dags()
    config = load_config(history)
    assert (
        dags["feature_extraction__credit_default"].start_date.date() <= START
    )  # every run of the history gets its tasks

    assert run_dag(dags, "feature_extraction__credit_default", START + timedelta(days=1)) == "success"
    assert Lake.from_config(config).count_rows(Table.FEATURES, START + timedelta(days=1)) > 290
    before = START - timedelta(days=3)
    assert (
        run_dag(dags, "feature_extraction__credit_default", before) == "failed"
    )  # not "success with no task instances"
    assert run_dag(dags, "model_training__credit_default", before, date=before.isoformat()) == "failed"
    assert not Lake.from_config(config).exists(Table.FEATURES, before)


@pytest.mark.e2e
def test_a_late_file_re_extracts_its_day_and_announces_it_to_scoring(history, tmp_path):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dags = load_dags()
    config = load_config(history)
    first, second = START, START + timedelta(days=1)
    for day in (first, second):
        assert run_dag(dags, "feature_extraction__credit_default", day) == "success"
    before = Lake.from_config(config).read(Table.FEATURES, first)

    late = demo_data._day_events(SPEC, 0)[0].head(40).dropna(subset=["customer_id"])
    late = late.assign(customer_id="L" + late["customer_id"].str[1:])  # 40 events of the first day, new keys
    late.to_parquet(tmp_path / "data" / "raw" / "late-arrival.parquet", index=False)

    dag_run = dags["feature_extraction__credit_default"].test(
        logical_date=pendulum.datetime(2018, 3, 4, tz="UTC")
    )  # day 03-03
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success"
    after = Lake.from_config(config).read(Table.FEATURES, first)
    assert len(after) > len(before) and after["customer_id"].str.startswith("L").sum() >= 35
    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dag_run.run_id)).all()
    # One features event per extracted day, keyed by it: the late day starts its own scoring run.
    keyed = sorted((e.partition_key, e.extra["days"]) for e in events)
    assert keyed == [(d.isoformat(), [d.isoformat()]) for d in (first, START + timedelta(days=2))]


def _bootstrap_module():
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("bootstrap", REPO / "scripts" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_bootstrap_takes_raw_history_to_a_champion_and_scored_days(history, capsys, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "")  # the runner points it at its own cluster: undone afterwards
    _bootstrap_module().main(["--to", (START + timedelta(days=2)).isoformat()])
    config = load_config(history)
    days = [START + timedelta(days=i) for i in range(3)]
    assert Lake.from_config(config).days(Table.FEATURES) == days
    assert Lake.from_config(config).days(Table.PREDICTIONS) == days[2:]  # after the 2-day first window
    champion = MlflowClient(config.tracking_uri).get_model_version_by_alias(config.model.name, "champion")
    assert (str(champion.version), champion.tags["window_end"]) == ("1", days[1].isoformat())
    assert "Rows per date" in capsys.readouterr().out


@pytest.mark.e2e
def test_bootstrap_goes_on_past_a_failed_run_and_names_it(history, capsys, monkeypatch, scheduler_address):
    """One day's run failing (here scoring, refused as bad data) fails that run only: the days after it are still
    extracted, scored and checked, as the scheduler would go on with the next day; the end lists the failure."""
    import pipelines.scoring
    from pipelines.errors import DataError

    broken, last = START + timedelta(days=2), START + timedelta(days=3)  # the first and the last scored day
    real = pipelines.scoring.score_days

    def score_days(config, days, *args, **kwargs):
        if broken in days:
            raise DataError(f"injected: day {broken} cannot be scored")
        return real(config, days, *args, **kwargs)

    monkeypatch.setattr(pipelines.scoring, "score_days", score_days)

    status = _bootstrap_module().main(["--to", last.isoformat()])

    out, err = capsys.readouterr()
    days = [START + timedelta(days=i) for i in range(4)]
    lake = Lake.from_config(load_config(history))
    assert status == 1
    assert lake.days(Table.FEATURES) == days
    assert lake.days(Table.PREDICTIONS) == [last]  # the day after it was scored
    assert re.search(rf"drift_monitoring__credit_default +{last}  success", out)  # and checked
    assert not re.search(rf"drift_monitoring__credit_default +{broken}", out)  # nothing to check on the broken day
    assert "Rows per date" in out  # the summary still comes
    header, failure = err.splitlines()[-2:]
    assert header == "1 run(s) failed:"
    assert failure.startswith(f"  batch_scoring__credit_default for {broken} ended in state failed (run ")


def _history_outcome(config) -> dict:
    """What a bootstrap leaves, without what differs between two of them (run ids, times): per scored day its
    decision and the version checked, the version that scored it and its performance row; per version its window,
    holdout decision and aliases."""
    from pipelines.performance import read_performance
    from pipelines.registry import RunKind, Tag, connect

    registry, lake = connect(config), Lake.from_config(config)
    drift = registry.find_runs(RunKind.DRIFT, **{Tag.MODEL_NAME: config.model.name})
    decisions = {run.tags[Tag.DAY]: (run.tags[Tag.MODEL_VERSION], run.tags.get(Tag.DECISION)) for run in drift}
    assert len(decisions) == len(drift)  # each day checked once: no run of days checked a day twice
    scored = {
        day.isoformat(): sorted(lake.read(Table.PREDICTIONS, day, ["model_version"])["model_version"].unique())
        for day in lake.days(Table.PREDICTIONS)
    }
    performance = read_performance(config)[["date", "model_version", "labeled_rows", "value", "labels_as_of"]]
    versions = {
        v.version: (v.aliases, v.tags.get(Tag.WINDOW_END), v.tags.get(Tag.decision("promoted")))
        for v in registry.versions(config.model.name)
    }
    return {
        "decisions": decisions,
        "scored": scored,
        "performance": performance.astype(str).to_dict("records"),
        "versions": versions,
    }


@pytest.mark.e2e
def test_runs_of_days_load_history_as_one_run_per_day_does(
    tmp_path, airflow_db, monkeypatch, capsys, scheduler_address
):
    """`make bootstrap` scores and checks history in runs of days (the DAGs' ``through`` Param): each day is still
    decided in turn, a retraining stops its run, and the days after it are scored again by the new champion. So the
    lake, the decisions and the registry equal those of one run per DAG per day (``--days-per-run 1``), on a history
    whose drift retrains in the middle of a run of days."""
    spec = demo_data.DemoSpec(start=START, days=10, rows_per_day=1000, bad_rows_per_day=4, drift_day=5)
    demo_data.generate(tmp_path / "data", spec)
    outcomes = {}
    for per_run in (1, 14):
        home = tmp_path / f"per-run-{per_run}"
        home.mkdir()
        config = write_config(
            home,
            tmp_path / "data",
            schedule={"start_date": START.isoformat()},
            training={"window_days": 3},
            monitoring={"sample_rate": 1.0, "min_new_labels": 500},
        )
        monkeypatch.setenv("MLOPS_CONFIG", str(config))
        assert _bootstrap_module().main(["--days-per-run", str(per_run)]) == 0
        out = capsys.readouterr().out
        assert bool(re.search(r"batch_scoring__credit_default +2018-03-04\.\.2018-03-10", out)) == (per_run > 1)
        outcomes[per_run] = _history_outcome(load_config(config))
    daily, runs_of_days = outcomes[1], outcomes[14]
    retrained = sorted(day for day, (_, decision) in daily["decisions"].items() if decision == "retrain")
    assert retrained and retrained[0] < "2018-03-10"  # a retraining inside the first run of days: it stopped there
    assert len(daily["decisions"]) == 7 and len(daily["versions"]) > 1
    assert runs_of_days == daily

    # The bootstrap left each checked day's report to `make reports`, which draws them a few days per process.
    from pipelines.drift_report import REPORT_HTML, pending_reports

    lake_config = load_config(config)
    checked = sorted(date.fromisoformat(day) for day in runs_of_days["decisions"])
    assert f"{len(checked)} drift report(s) left to draw" in out and pending_reports(lake_config) == checked
    render_reports = importlib.import_module("render_reports")  # by name: the processes it starts import it too
    monkeypatch.setattr(render_reports, "PIECE", 4)  # two pieces: two processes of their own
    assert render_reports.draw(jobs=2) == checked
    assert pending_reports(lake_config) == []
    assert Lake.from_config(lake_config).days_holding(Table.REPORTS, REPORT_HTML) == checked


@pytest.mark.unit
def test_a_run_of_days_is_short_after_a_retraining_and_doubles_while_none_comes():
    """Days scored after a retraining are scored again, and retrainings come in bursts: a week's run after one, then
    twice as long each run that retrains nothing, never past ``--days-per-run`` (1: one run per day stays 1)."""
    next_run_length = _bootstrap_module().next_run_length
    lengths, length = [], 56
    for retrained in (True, False, False, False, True, False):
        length = next_run_length(length, 56, retrained)
        lengths.append(length)
    assert lengths == [7, 14, 28, 56, 7, 14]
    assert next_run_length(1, 1, retrained=True) == next_run_length(1, 1, retrained=False) == 1
