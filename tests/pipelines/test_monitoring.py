"""Drift checks, the retraining trigger, promotion on current data, and rollback (real Evidently and MLflow)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from lakes import VALID_ROWS, days, evidently_verdicts, with_section
from mlflow.tracking import MlflowClient

from pipelines import registry
from pipelines.monitoring import check_drift, current_window
from pipelines.performance import update_performance
from pipelines.promotion import evaluate_and_promote, rollback, train_challenger
from pipelines.registry import CHALLENGER, PREVIOUS, RunKind
from pipelines.retrain_gate import retrain_reason
from pipelines.scoring import score_day
from pipelines.storage import Lake, Table
from pipelines.validation import DataError

pytestmark = pytest.mark.integration

DAYS = days(10)  # drift from 2026-10-07 (SMALL.drift_day = 6)


@pytest.fixture(scope="module")
def lake(build_lake, dask_client):
    """Ten extracted days, a champion trained on the first three, every later day scored with full logging.

    Labels here are known from the start (no ``dataset.label_time``): delayed labels are tested in
    ``test_performance.py`` and the e2e runs. The performance table is filled in once, as the DAG does before
    each retrain decision."""
    config = build_lake(
        10,
        DAYS[2],
        dataset={"label_time": None},
        training={"window_days": 3},
        monitoring={
            "sample_rate": 1.0,
            "window_days": 2,
            "min_new_labels": 500,
            "drift_share_threshold": 0.15,
            "metric_drop_threshold": 0.1,
        },
        promotion={"min_samples": 200, "bootstrap": 100},
    )
    for day in DAYS[3:]:
        score_day(config, day, f"score-{day}", dask_client)
    update_performance(config, DAYS[9])
    return config


@pytest.fixture
def own_registry(lake, tmp_path):
    """The module's lake with an MLflow store of this test's own and the same first champion in it: the tests that
    promote, keep out and roll back change no registry another test reads (their decisions, aliases, cooldowns)."""
    from pipelines.training import train_and_register

    mlflow = lake.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}"})
    config = lake.model_copy(update={"mlflow": mlflow})
    train_and_register(config, DAYS[2])
    return config


def _champion(config) -> str:
    return str(MlflowClient(config.tracking_uri).get_model_version_by_alias(config.model.name, "champion").version)


def test_stable_days_do_not_trigger_and_drifted_days_do(lake):
    stable = check_drift(lake, DAYS[4])
    assert stable.status == "checked" and stable.drift_share < lake.monitoring.drift_share_threshold, stable
    assert stable.output_column == "probability" and stable.output_drift["method"] == "Wasserstein distance (normed)"
    calm = retrain_reason(lake, stable, DAYS[4])
    assert not calm.retrain and calm.triggers == [], calm
    assert calm.reason.startswith(f"no trigger: drift share {stable.drift_share:.2f} < 0.15; model output probability")
    # The reference's outputs are in-sample (the model on its training rows): they differ from live outputs even
    # on a stable day, which is why output drift is not a trigger unless configured.
    assert stable.output_drift["drifted"] and "monitoring.output_drift_trigger is off" in calm.reason

    drifted = check_drift(lake, DAYS[8])
    assert drifted.drift_share >= lake.monitoring.drift_share_threshold
    assert {"income", "credit_utilization"} <= set(drifted.drifted_columns)
    assert drifted.realized_metric is not None and drifted.realized_metric < drifted.champion_metric - 0.1
    decision = retrain_reason(lake, drifted, DAYS[8])
    assert decision.retrain and decision.reason == "; ".join(decision.triggers)
    assert [t.split(" ")[0] for t in decision.triggers] == ["drift", "multivariate", "realized"], decision.triggers
    # the multivariate signal's threshold is learned from the champion's reference: calm on the stable day
    assert not stable.multivariate["drifted"] and drifted.multivariate["drifted"], (stable, drifted)
    assert stable.multivariate["threshold"] == pytest.approx(drifted.multivariate["threshold"], rel=0.2)


def test_report_is_in_the_lake_and_in_mlflow(lake):
    result = check_drift(lake, DAYS[8])
    folder = Path(Lake.from_config(lake).partition(Table.REPORTS, DAYS[8]))
    assert {"drift_report.html", "drift_report.json", "drift_summary.json"} <= {p.name for p in folder.iterdir()}
    summary = json.loads((folder / "drift_summary.json").read_text())
    assert summary["model_version"] == result.model_version and "income" in summary["columns"]
    run = MlflowClient(lake.tracking_uri).get_run(result.mlflow_run_id)
    assert run.data.tags["model_version"] == result.model_version and run.data.tags["kind"] == "drift"
    assert run.data.metrics["drift_share"] == pytest.approx(result.drift_share)
    assert "drift_score.income" in run.data.metrics and "realized_roc_auc" in run.data.metrics
    assert run.data.metrics["multivariate_error"] == pytest.approx(result.multivariate["error"])
    assert run.data.metrics["multivariate_threshold"] == pytest.approx(result.multivariate["threshold"])
    assert (
        summary["multivariate"]["drifted"] is True and summary["multivariate"]["method"] == "PCA reconstruction error"
    )

    # The report is built as the pipeline decides: its dataset-drift test uses the configured share, over the
    # features only (the model output has its own drift metric), so its count is the pipeline's.
    report = json.loads((folder / "drift_report.json").read_text())
    count = next(m for m in report["metrics"] if m["metric_name"].startswith("DriftedColumnsCount("))
    assert count["config"]["drift_share"] == lake.monitoring.drift_share_threshold == 0.15
    assert count["value"]["share"] == pytest.approx(result.drift_share)
    assert any(m["metric_name"].startswith("ValueDrift(column=probability,") for m in report["metrics"])


def test_each_scored_days_performance_row_has_the_estimate_from_its_scores(lake):
    """CBPE's estimate (calibration stored with the champion at training) is in every row with its interval; on the
    stable days it lies near the realized metric, on the drifted ones (the demo's concept drift: the features'
    relation to default changes) it stays high while the realized metric falls: what CBPE cannot see."""
    from pipelines.performance import read_performance

    rows = read_performance(lake).set_index("date")
    assert (rows["estimated_note"] == "").all() and len(rows) == 7
    assert (
        (rows["estimated_ci_low"] < rows["estimated_value"]) & (rows["estimated_value"] < rows["estimated_ci_high"])
    ).all()
    stable, drifted = rows.loc[[d.isoformat() for d in DAYS[3:6]]], rows.loc[[d.isoformat() for d in DAYS[6:]]]
    assert ((stable["estimated_value"] - stable["value"]).abs() < 0.07).all(), stable
    assert ((drifted["estimated_value"] - drifted["value"]) > 0.15).all(), drifted
    client = MlflowClient(lake.tracking_uri)
    experiment = client.get_experiment_by_name(lake.mlflow.experiment).experiment_id
    [run] = client.search_runs([experiment], f"tags.kind = 'performance' and tags.day = '{DAYS[4]}'")
    assert run.data.metrics["estimated_roc_auc"] == pytest.approx(rows.loc[DAYS[4].isoformat(), "estimated_value"])


def test_segments_are_in_the_report_mlflow_and_the_decision(lake):
    """Per region: the window's drift share against the reference's rows of the region and the day's realized
    metric, in the summary and the drift run; the decision weighs the newest labeled day's metric per region."""
    from pipelines.retrain_gate import decide_retraining

    config = with_section(lake, "monitoring", segments=["region"])
    result = check_drift(config, DAYS[8])
    regions = result.segments["region"]
    assert sorted(regions) == ["central", "east", "north", "south", "west"]
    assert sum(r["rows"] for r in regions.values()) == result.rows_current
    assert all(r["drift_share"] is not None and r["reference_rows"] >= 100 for r in regions.values()), regions
    assert "region" not in {c for r in regions.values() for c in r["drifted_columns"]}  # constant inside a segment
    assert any(r["realized_metric"] is not None for r in regions.values())
    summary = json.loads((Path(result.report_url) / "drift_summary.json").read_text())
    assert summary["segments"]["region"] == json.loads(json.dumps(regions))
    metrics = MlflowClient(lake.tracking_uri).get_run(result.mlflow_run_id).data.metrics
    assert metrics["segment.region.north.drift_share"] == pytest.approx(regions["north"]["drift_share"])

    decision = decide_retraining(config, result)
    [line] = [s for s in decision["signals"] if s.startswith("segment")]
    assert f"of {DAYS[8]}" in line, line  # labels known at once here: the day itself is the newest labeled one
    metrics = MlflowClient(lake.tracking_uri).get_run(result.mlflow_run_id).data.metrics
    assert "realized_segment.region.north.value" in metrics and metrics["realized_segment.region.north.rows"] > 100


def test_every_decision_is_recorded_on_the_days_run_and_report(lake):
    """Retrain or not, the decision is on the day's drift run (tags, description) and on top of its HTML report,
    a later decision of the day replaces the banner rather than stacking one, and a skipped day gets a run of its
    own."""
    from pipelines.retrain_gate import decide_retraining

    stable, drifted = check_drift(lake, DAYS[4]), check_drift(lake, DAYS[8])
    skipped = check_drift(lake, date(2030, 1, 1))
    calm = decide_retraining(lake, stable)
    assert (
        calm["retrain"] is False
        and calm["date"] == DAYS[4].isoformat()
        and calm["mlflow_run_id"] == stable.mlflow_run_id
    )
    client = MlflowClient(lake.tracking_uri)
    tags = client.get_run(stable.mlflow_run_id).data.tags
    assert (tags["decision"], tags["decision.reason"], tags["decision.triggers"]) == (
        "no retrain",
        calm["reason"],
        "none",
    )
    assert tags["mlflow.note.content"].startswith(f"**Retraining decision for {DAYS[4]}: no retrain**")
    html = (Path(stable.report_url) / "drift_report.html").read_text()
    assert html.count('id="mlops-decision"') == 1 and f"Retraining decision for {DAYS[4]}: no retrain" in html
    assert f"verdicts on all {stable.rows_current} logged rows of the window; the charts below" in html
    artifact = Path(client.download_artifacts(stable.mlflow_run_id, "drift/drift_report.html"))
    assert f"Retraining decision for {DAYS[4]}: no retrain" in artifact.read_text()

    decided = decide_retraining(lake, drifted)
    assert decided["retrain"] is True and decided["date"] == DAYS[8].isoformat(), decided
    assert client.get_run(drifted.mlflow_run_id).data.tags["decision"] == "retrain"
    forced = decide_retraining(lake, stable, force=True)  # the day decided again (a forced rerun)
    tags = client.get_run(stable.mlflow_run_id).data.tags
    assert (tags["decision"], tags["decision.reason"]) == ("retrain", forced["reason"]) == ("retrain", "forced")
    html = (Path(stable.report_url) / "drift_report.html").read_text()
    assert html.count('id="mlops-decision"') == 1 and "no retrain" not in html  # replaced, not stacked
    decide_retraining(lake, skipped)
    experiment = client.get_experiment_by_name(lake.mlflow.experiment).experiment_id
    [run] = client.search_runs([experiment], f"tags.kind = '{RunKind.RETRAIN_DECISION}' and tags.day = '2030-01-01'")
    assert (run.data.tags["decision"], run.data.tags["decision.reason"]) == (
        "no retrain",
        f"no drift check: {skipped.reason}",
    )


def test_check_drift_decides_with_the_verdicts_of_one_plain_evidently_report(lake):
    """check_drift's verdicts (every row of the window) equal a plain DataDriftPreset report's on the same rows,
    while its own HTML report is rendered on a sample: report_rows below the window's 1184 rows."""
    sampled = lake.model_copy(update={"monitoring": lake.monitoring.model_copy(update={"report_rows": 1001})})
    result = check_drift(sampled, DAYS[8])
    folder = Path(Lake.from_config(lake).partition(Table.REPORTS, DAYS[8]))
    ours = json.loads((folder / "drift_summary.json").read_text())["columns"]
    plain = evidently_verdicts(lake, DAYS[8])
    assert {c: v["drifted"] for c, v in ours.items()} == {c: v["drifted"] for c, v in plain.items()}
    assert {c: v["method"] for c, v in ours.items()} == {c: v["method"] for c, v in plain.items()}
    assert all(ours[c]["score"] == pytest.approx(plain[c]["score"]) for c in plain)
    assert result.drifted_columns == sorted(c for c, v in plain.items() if v["drifted"] and c != "probability")
    window = current_window(lake, DAYS[8])
    assert len(window) == result.rows_current == 2 * VALID_ROWS > sampled.monitoring.report_rows
    assert {c: v["rows"] for c, v in ours.items()} == {c: window[c].notna().sum() for c in ours}


def test_bad_inputs_have_defined_outcomes(lake, monkeypatch, tmp_path):
    empty = check_drift(lake, date(2030, 1, 1))
    assert empty.status == "skipped" and "0 logged rows" in empty.reason
    assert retrain_reason(lake, empty, date(2030, 1, 1)).retrain is False

    original = Lake.from_config(lake).read(Table.PREDICTION_LOG, DAYS[5])
    day = date(2030, 2, 2)
    Lake.from_config(lake).write(Table.PREDICTION_LOG, day, original.assign(income=float("nan")))
    result = check_drift(lake, day)
    assert "income" in result.missing_alerts and "all missing: ['income']" in result.reason
    assert result.all_missing == ["income"] and result.missing_share_rise["income"] == pytest.approx(0.967, abs=0.001)
    assert "missing values rose by more than 0.1: income entirely missing" in retrain_reason(lake, result, day).triggers

    # A day written without a column the table has reads it as missing values (Delta's schema is the table's) ...
    later = day + timedelta(days=10)
    Lake.from_config(lake).write(Table.PREDICTION_LOG, later, original.drop(columns=["region"]))
    assert check_drift(lake, later).all_missing == ["region"]
    # ... and a log table that never had the column cannot be checked against this config
    other = with_section(lake, "storage", root=str(tmp_path / "other-lake"))
    Lake.from_config(other).write(Table.PREDICTION_LOG, later, original.drop(columns=["region"]))
    with pytest.raises(DataError, match=r"lacks feature column\(s\) \['region'\]"):
        check_drift(other, later)

    import pipelines.monitoring as monitoring

    monkeypatch.setattr(monitoring, "REFERENCE_ARTIFACT", "reference/missing.parquet")
    with pytest.raises(DataError, match=r"reference artifact reference/missing\.parquet missing from run"):
        check_drift(lake, DAYS[5])


def test_the_reference_is_downloaded_once_per_registry_connection(tmp_path):
    """A run of days checks every day with one connection: the champion's reference is fetched once for it, each
    caller gets a frame of its own, and a run without the artifact is named."""
    import pandas as pd

    from pipelines.monitoring import load_reference
    from pipelines.registry import ModelRef
    from pipelines.registry_memory import MemoryRegistry
    from pipelines.training import REFERENCE_ARTIFACT

    store = MemoryRegistry()
    run_id = store.start_run(RunKind.TRAINING, "training")
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(tmp_path / Path(REFERENCE_ARTIFACT).name)
    store.log_artifact(run_id, tmp_path / Path(REFERENCE_ARTIFACT).name, str(Path(REFERENCE_ARTIFACT).parent))
    model = ModelRef("m", "1", run_id)
    downloads = []
    real = store.download_artifact
    store.download_artifact = lambda *args: downloads.append(args[0]) or real(*args)
    first = load_reference(store, model)
    first["added"] = 0  # a caller's change stays its own
    assert list(load_reference(store, model).columns) == ["x"] and downloads == [run_id]
    bare = store.start_run(RunKind.TRAINING, "training without a reference")
    with pytest.raises(DataError, match=f"missing from run {bare}"):
        load_reference(store, ModelRef("m", "2", bare))


def test_labels_for_unknown_keys_are_ignored(lake):
    result = check_drift(lake, DAYS[5])
    assert result.realized_rows == 592  # the label source also holds keys never scored; they do not count


def test_better_challenger_is_promoted_and_rollback_restores(own_registry):
    lake = own_registry
    before = _champion(lake)
    drifted = check_drift(lake, DAYS[8])  # against the first champion: reason enough to retrain
    assert retrain_reason(lake, drifted, DAYS[9]).retrain
    version = train_challenger(lake, DAYS[9], "drift")
    assert (
        str(MlflowClient(lake.tracking_uri).get_model_version_by_alias(lake.model.name, CHALLENGER).version) == version
    )
    decision = evaluate_and_promote(lake, DAYS[9], version, "drift")
    assert decision.promoted, decision
    assert (
        decision.challenger_metric > decision.champion_metric + lake.promotion.min_improvement and decision.ci_low > 0
    )
    assert decision.n == 592 and decision.holdout == "2026-10-10..2026-10-10"
    client = MlflowClient(lake.tracking_uri)
    assert _champion(lake) == version
    assert str(client.get_model_version_by_alias(lake.model.name, PREVIOUS).version) == before
    tags = client.get_model_version(lake.model.name, version).tags
    assert tags["decision.promoted"] == "True" and float(tags["decision.ci_low"]) > 0
    assert client.get_run(decision.mlflow_run_id).data.tags["kind"] == "promotion"
    assert registry.connect(lake).alias(lake.model.name, CHALLENGER) is None  # promoted: it is the champion now
    description = client.get_model_version(lake.model.name, version).description
    assert description.startswith(f"**Promoted on {DAYS[9]}**: v{version} replaced v{before} as champion.")
    assert f"gain {decision.difference:+.4f}" in description and f"[{decision.ci_low:+.4f}," in description
    assert f"- why: {decision.reason}" in description and "- trigger: drift" in description

    # The same drift a day later is refused for the cooldown alone, and accepted once the cooldown is over.
    cooldown = lake.monitoring.cooldown_days
    refused = retrain_reason(lake, drifted, DAYS[9] + timedelta(days=cooldown - 1))
    assert not refused.retrain and refused.reason == (
        f"cooldown: last retraining {DAYS[9]}, monitoring.cooldown_days={cooldown}"
        f" (held back: {'; '.join(refused.triggers)})"
    )
    accepted = retrain_reason(lake, drifted, DAYS[9] + timedelta(days=cooldown))
    assert accepted.retrain and accepted.reason.startswith("drift share"), accepted
    back = rollback(lake, "test rollback")
    assert (back.from_version, back.to_version) == (version, before)
    assert _champion(lake) == before
    assert str(client.get_model_version_by_alias(lake.model.name, PREVIOUS).version) == version
    rollback(lake, "undo the rollback")
    assert _champion(lake) == version


def test_weak_challenger_is_not_promoted(own_registry):
    lake = own_registry
    before = _champion(lake)
    weak_model = lake.model.model_copy(
        update={"estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}}
    )
    weak = lake.model_copy(update={"model": weak_model})
    day = DAYS[5]  # before the drift (from DAYS[6]), where the champion has skill to lose
    version = train_challenger(weak, day, "weak on purpose")
    decision = evaluate_and_promote(weak, day, version, "weak on purpose")
    assert not decision.promoted and decision.champion_after == before == _champion(lake)
    assert "min_improvement" in decision.reason
    client = MlflowClient(lake.tracking_uri)
    tags = client.get_model_version(lake.model.name, version).tags
    assert tags["decision.promoted"] == "False"
    assert str(client.get_model_version_by_alias(lake.model.name, CHALLENGER).version) == version  # the last kept out
    description = client.get_model_version(lake.model.name, version).description
    assert description.startswith(f"**Kept out on {day}**: v{before} stays champion; v{version} was not promoted.")
    assert f"- why: {decision.reason}" in description


def test_the_days_report_renders_its_drift_table_in_a_browser(lake, tmp_path):
    """Headless Chromium runs the report's scripts; the rendered DOM must hold the per-column drift table."""
    import html
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (`make test` installs Debian's chromium when run as root)")
    from pipelines.retrain_gate import decide_retraining

    result = check_drift(lake, DAYS[8])
    decision = decide_retraining(lake, result)
    report = Path(Lake.from_config(lake).partition(Table.REPORTS, DAYS[8])) / "drift_report.html"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--window-size=1400,2200",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    shot = tmp_path / "drift_report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120, check=True
    )
    assert 'data-testid="mtablecell"' in dom  # the drift table, rendered by the report's JavaScript
    assert "Dataset Drift" in dom and "income" in dom and "Wasserstein distance (normed)" in dom
    # The same story as the decision: the configured threshold, and the decision with its reason on top.
    detected = "detected" if result.drift_share >= lake.monitoring.drift_share_threshold else "NOT detected"
    assert f"Dataset Drift is {detected}. Dataset drift detection threshold is 0.15" in dom
    verdict = "retrain" if decision["retrain"] else "no retrain"
    assert (
        f"Retraining decision for {DAYS[8]}: {verdict}" in dom and html.escape(decision["reason"], quote=False) in dom
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_a_deferred_report_ends_as_one_drawn_at_once(own_registry):
    """A check that defers its report (what `make bootstrap` asks) stores the report's inputs and the decision's
    banner, and records the same verdicts; drawing it later leaves the day's folder and MLflow run as a report drawn
    at once leaves them, and a drawn report is not drawn again."""
    from pipelines.drift_report import render_pending
    from pipelines.retrain_gate import decide_retraining

    config, day = own_registry, DAYS[7]
    store, client = registry.connect(config), MlflowClient(own_registry.tracking_uri)
    deferred = check_drift(config, day, render=False)
    folder = Path(deferred.report_url)
    assert "drift_report.html" not in {p.name for p in folder.iterdir()}
    assert [a.path for a in client.list_artifacts(deferred.mlflow_run_id, "drift")] == ["drift/drift_summary.json"]
    decision = decide_retraining(config, deferred, registry=store)
    assert (folder / "decision_banner.html").exists()

    assert render_pending(config, store) == [day]
    assert {p.name for p in folder.iterdir()} == {"drift_report.html", "drift_report.json", "drift_summary.json"}
    html = (folder / "drift_report.html").read_text()
    verdict = "retrain" if decision["retrain"] else "no retrain"
    assert html.count('id="mlops-decision"') == 1 and f"Retraining decision for {day}: {verdict}" in html
    logged = {a.path for a in client.list_artifacts(deferred.mlflow_run_id, "drift")}
    assert logged == {f"drift/{name}" for name in ("drift_report.html", "drift_report.json", "drift_summary.json")}
    assert Path(client.download_artifacts(deferred.mlflow_run_id, "drift/drift_report.html")).read_text() == html
    report = json.loads((folder / "drift_report.json").read_text())
    count = next(m for m in report["metrics"] if m["metric_name"].startswith("DriftedColumnsCount("))
    assert count["value"]["share"] == pytest.approx(deferred.drift_share)  # drawn from the same samples and roles
    assert check_drift(config, day).drift_share == deferred.drift_share  # and the verdicts do not depend on it
    assert render_pending(config, store) == []


def test_each_checked_day_is_one_snapshot_in_the_evidently_workspace(lake):
    """Every check adds its report to the Evidently workspace as the day's drift snapshot; checking the day again
    replaces it, and a deferred report joins when it is drawn."""
    from evidently.ui.workspace import Workspace

    from pipelines.drift_report import render_pending

    wanted = {DAYS[3].isoformat(), DAYS[6].isoformat()}

    def drift_snapshots() -> dict:
        workspace = Workspace(lake.monitoring.evidently_workspace)
        (project,) = workspace.search_project(lake.model.name)
        runs = (workspace.get_run(project.id, sid) for sid in workspace.list_runs(project.id))
        return {run.metadata["day"]: run for run in runs if run.tags == ["drift"] and run.metadata["day"] in wanted}

    check_drift(lake, DAYS[6])
    again = check_drift(lake, DAYS[6])
    check_drift(lake, DAYS[3], render=False)
    assert list(drift_snapshots()) == [DAYS[6].isoformat()]
    assert render_pending(lake, registry.connect(lake), [DAYS[3]]) == [DAYS[3]]
    snapshots = drift_snapshots()
    assert sorted(snapshots) == sorted(wanted)
    rerun = snapshots[DAYS[6].isoformat()]
    count = next(v for v in rerun.metric_results.values() if type(v).__name__ == "CountValue")
    assert count.share.value == pytest.approx(again.drift_share)  # the window whole in the report's sample here
    assert rerun.metadata["model_version"] == again.model_version


def test_deferred_performance_snapshots_are_the_rows_rewritten_as_of_the_days_drawn(lake, tmp_path):
    """A run with deferred reports leaves its performance rows' snapshots to the drawing: the rows whose labels are
    as of the days drawn, as they stand, and no other."""
    from evidently.ui.workspace import Workspace

    from pipelines.drift_run import deferred_performance_snapshots
    from pipelines.performance import read_performance

    monitoring = lake.monitoring.model_copy(update={"evidently_workspace": str(tmp_path / "workspace")})
    config = lake.model_copy(update={"monitoring": monitoring})
    table = read_performance(config)
    known = table[table["value"].notna() | table["estimated_value"].notna()]
    assert set(table["labels_as_of"]) == {DAYS[9].isoformat()} and len(known) >= 5
    assert deferred_performance_snapshots(config, [DAYS[8]]) == 0  # as of another day: left to it
    assert deferred_performance_snapshots(config, [DAYS[9]]) == len(known)
    workspace = Workspace(monitoring.evidently_workspace)
    (project,) = workspace.search_project(config.model.name)
    runs = [workspace.get_run(project.id, sid) for sid in workspace.list_runs(project.id)]
    assert sorted(r.metadata["day"] for r in runs if r.tags == ["performance"]) == sorted(known["date"].astype(str))
