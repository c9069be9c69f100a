"""A retraining whose holdout cannot support an interval is a decision, taken once however often Airflow retries it.

Reproduces what a low-volume dataset did to the retraining DAG: the paired-bootstrap interval of the gain was
undefined (NaN), Airflow's XCom refused the task's result after the decision had been recorded and alerted, and the
two retries wrote two more decisions and sent two more alerts. Here the holdout has so few positives that the
interval is known to be undefined before resampling, and the task fails twice more on purpose: once right after the
decision is recorded (tagging the version), once after its alert (handing the result to XCom). Airflow retries it.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from alert_inbox import SMTP_ALERTS
from dag_runs import dag_run, load_dags, task_tries
from lakes import extract_and_train, write_config
from mlflow.tracking import MlflowClient

from pipelines.config import load_config
from pipelines.performance import holdout_days

pytestmark = pytest.mark.e2e

START = date(2026, 10, 1)
DAG_ID = "retraining__credit_default"


def _two_positives(config, days: list[date]) -> int:
    """Rewrite the label files so that the events of ``days`` hold two positives between them (a low-volume day's
    holdout); returns how many of their rows have a label (some arrive after the retraining's day)."""
    from pipelines.storage import Lake, Table

    keys = set(Lake.from_config(config).read_days(Table.FEATURES, days, ["customer_id"])["customer_id"].astype(str))
    labeled = kept = 0
    for file in sorted(Path(config.dataset.labels).parent.glob("*.parquet")):
        labels = pd.read_parquet(file)
        held = labels["customer_id"].astype(str).isin(keys)
        positive = held & (labels["defaulted"] == 1)
        keep = positive & (positive.cumsum() + kept <= 2)
        kept += int(keep.sum())
        labeled += int(held.sum())
        labels.assign(defaulted=labels["defaulted"].where(~held | keep, 0)).to_parquet(file, index=False)
    assert kept == 2
    return labeled


class FailOnce:
    """Wraps ``real`` so that its first call raises, as a registry hiccup or a refused XCom would."""

    def __init__(self, real, error: Exception, when=lambda *a, **k: True) -> None:
        self.real, self.error, self.when, self.failed = real, error, when, False

    def __call__(self, *args, **kwargs):
        if not self.failed and self.when(*args, **kwargs):
            self.failed = True
            raise self.error
        return self.real(*args, **kwargs)


def test_an_undefined_interval_keeps_the_champion_once_through_retries(
    airflow_db, alert_inbox, raw_data, tmp_path, monkeypatch
):
    import airflow.sdk.execution_time.task_runner as task_runner

    import pipelines.promotion as promotion

    shutil.copytree(raw_data, tmp_path / "data")
    config_file = write_config(
        tmp_path,
        tmp_path / "data",
        training={"window_days": 3},
        promotion={"holdout_days": 1, "min_samples": 10, "bootstrap": 100, "min_improvement": 0.0},
        alerts={**SMTP_ALERTS, "events": ["promotion"]},
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config_file))
    config = load_config(config_file)
    day = START + timedelta(days=6)
    weak = config.model_copy(  # a champion without skill: the challenger's gain passes the margin
        update={"model": config.model.model_copy(update={"estimator": "sklearn.dummy.DummyClassifier", "params": {}})}
    )
    extract_and_train(weak, 7, train_day=START + timedelta(days=2))
    held_out = holdout_days(config, day)
    rows = _two_positives(
        config, held_out
    )  # 2 positives in ~400 rows labeled by the day: ~13 of 100 resamples one-class

    tagging = FailOnce(promotion.tag_version, ConnectionError("registry went away after the record"))
    monkeypatch.setattr(promotion, "tag_version", tagging)
    xcom = FailOnce(
        task_runner._xcom_push,
        ValueError("Out of range float values are not JSON compliant"),
        when=lambda ti, key, value, **kw: ti.task_id == "evaluate_and_promote" and key == "return_value",
    )
    monkeypatch.setattr(task_runner, "_xcom_push", xcom)
    dags = load_dags()
    task = dags[DAG_ID].get_task("evaluate_and_promote")
    task.retry_delay, task.retry_exponential_backoff = timedelta(0), 0  # retried at once, not in a minute

    run = dag_run(dags, DAG_ID, day, date=day.isoformat(), reason="low volume")

    assert str(run.state) == "success"
    assert tagging.failed and xcom.failed  # both injected failures happened, each on its own try
    assert task_tries(run)["evaluate_and_promote"] == ("success", 3)
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    records = client.search_runs([experiment], f"tags.kind = 'promotion' and tags.day = '{day}'")
    assert len(records) == 1  # one decision, though the task ran three times
    promotion_alerts = [m for m in alert_inbox.messages if m["Subject"].startswith("[mlops] promotion:")]
    assert len(promotion_alerts) == 1
    assert records[0].data.tags["alerted"] == "smtp:mlops_alerts_smtp"

    with create_session() as session:
        pushed = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=DAG_ID, task_ids="evaluate_and_promote", key="return_value")
        ).one()
        decision = XComModel.deserialize_value(pushed)
    assert decision["promoted"] is False and decision["champion_after"] == "1"
    assert decision["ci_low"] is None and decision["ci_high"] is None  # null in XCom, never NaN
    assert decision["reason"].startswith(
        "no 95% interval of the gain: the holdout cannot be resampled: the rarest class has 2 of"
        f" {decision['n']} rows, so a resample holds a single class with probability"
    )
    assert 200 < decision["n"] < rows and decision["holdout"] == f"{held_out[0]}..{held_out[-1]}"
    assert decision["mlflow_run_id"] == records[0].info.run_id

    version = client.get_model_version(config.model.name, decision["challenger_version"])
    assert "decision.ci_low" not in version.tags and "decision.ci_high" not in version.tags  # undefined: no tag
    assert all(value.lower() not in ("nan", "inf", "-inf") for value in version.tags.values())
    assert all(value.lower() not in ("nan", "inf", "-inf") for value in records[0].data.tags.values())
    assert version.description.count(records[0].info.run_id) == 1  # described once, not once per try
    assert "interval of the gain: not computable" in version.description
    aliases = {
        a: str(client.get_model_version_by_alias(config.model.name, a).version) for a in ("champion", "challenger")
    }
    assert aliases == {"champion": "1", "challenger": decision["challenger_version"]}
