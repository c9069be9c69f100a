"""The retraining ladder: forced, a checked day, a trigger (each signal on its own), the cooldown, enough new labels;
and when a scheduled retraining has nothing new. Pure, on hand-made drift results."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from lakes import with_section

from pipelines.config import Config
from pipelines.monitoring import DriftResult
from pipelines.retrain_rules import RetrainDecision, nothing_new, retrain_decision

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 18)


def _drift(
    share: float | None = 0.3,
    realized: float | None = 0.6,
    status: str = "checked",
    output_drifted: bool = False,
    missing: dict[str, float] | None = None,
    all_missing: list[str] | None = None,
) -> DriftResult:
    return DriftResult(
        day=DAY.isoformat(),
        status=status,
        reason="2 of 11 columns drifted" if status == "checked" else "12 logged rows",
        drift_share=share,
        realized_metric=realized,
        realized_rows=600 if realized is not None else 0,
        champion_metric=0.72,
        missing_share_rise=missing or {},
        all_missing=all_missing or [],
        output_column="probability",
        output_drift={
            "score": 0.21,
            "threshold": 0.1,
            "method": "Wasserstein distance (normed)",
            "drifted": output_drifted,
        },
    )


CALM = {"share": 0.1, "realized": 0.71}  # below every threshold of the demo config
QUIET = [
    "drift share 0.10 < 0.15",
    "model output probability stable (Wasserstein distance (normed) 0.2100, threshold 0.1)",
    "no feature's missing share rose by more than 0.1",
    "multivariate drift: not computed",
    "realized roc_auc 0.7100 vs 0.7200 at training: drop 0.0100 < 0.03",
]


def _never() -> None:
    raise AssertionError("this rung must not be reached")


def _triggers(config: Config, drift: DriftResult) -> list[str]:
    decision = retrain_decision(config, drift, DAY, lambda: None, lambda: 9999)
    assert decision.retrain is bool(decision.triggers) and len(decision.signals) == 5
    return decision.triggers


def test_retraining_ladder_triggers_with_both_reasons(demo):
    decision = retrain_decision(demo, _drift(), DAY, lambda: date(2026, 10, 10), lambda: 5000)
    assert decision.retrain
    assert decision.reason == "drift share 0.30 >= 0.15; realized roc_auc 0.6000 is 0.1200 below training"
    assert decision.triggers == ["drift share 0.30 >= 0.15", "realized roc_auc 0.6000 is 0.1200 below training"]


def test_a_calm_day_says_every_signal_it_weighed(demo):
    decision = retrain_decision(demo, _drift(**CALM), DAY, _never, _never)
    assert (decision.retrain, decision.triggers, decision.signals) == (False, [], QUIET)
    assert decision.reason == "no trigger: " + "; ".join(QUIET)


def test_drift_share_alone_triggers_and_names_the_columns(demo):
    drift = replace(_drift(**CALM), drift_share=0.18, drifted_columns=["credit_utilization", "income"])
    assert _triggers(demo, drift) == ["drift share 0.18 >= 0.15 (credit_utilization, income)"]


def test_output_drift_alone_triggers_when_configured(demo):
    drifted_output = _drift(**CALM, output_drifted=True)
    line = "model output probability drifted (Wasserstein distance (normed) 0.2100, threshold 0.1)"
    assert _triggers(with_section(demo, "monitoring", output_drift_trigger=True), drifted_output) == [line]
    off = retrain_decision(demo, drifted_output, DAY, _never, _never)  # the default: a signal, not a trigger
    assert not off.retrain and f"{line}; monitoring.output_drift_trigger is off" in off.signals


def test_a_missing_value_rise_alone_triggers(demo):
    drift = _drift(**CALM, missing={"income": 0.25, "debt_ratio": 0.05})  # debt_ratio's rise is below 0.1
    assert _triggers(demo, drift) == ["missing values rose by more than 0.1: income +0.25"]
    off = retrain_decision(with_section(demo, "monitoring", missing_trigger=False), drift, DAY, _never, _never)
    assert not off.retrain
    assert "missing values rose by more than 0.1: income +0.25; monitoring.missing_trigger is off" in off.signals


def test_a_feature_entirely_missing_triggers_though_no_drift_test_can_see_it(demo):
    # The feature is left out of the drift share (no test runs on an empty column): the missing signal catches it.
    drift = _drift(**CALM, missing={"region": 0.05}, all_missing=["region"])
    assert _triggers(demo, drift) == ["missing values rose by more than 0.1: region entirely missing"]


def test_multivariate_drift_alone_triggers_with_its_own_reason(demo):
    found = {"method": "PCA reconstruction error", "error": 1.24, "threshold": 0.92, "drifted": True}
    drift = replace(_drift(**CALM), multivariate=found)
    line = (
        "multivariate drift: the features' joint structure changed"
        " (PCA reconstruction error 1.2400, threshold 0.9200 from reference chunks)"
    )
    assert _triggers(demo, drift) == [line]
    off = retrain_decision(with_section(demo, "monitoring", multivariate_trigger=False), drift, DAY, _never, _never)
    assert not off.retrain and any(s.endswith("monitoring.multivariate_trigger is off") for s in off.signals)
    calm = replace(drift, multivariate={**found, "error": 0.9, "drifted": False})
    assert _triggers(demo, calm) == []


def test_a_realized_metric_drop_alone_triggers(demo):
    metric_only = _drift(share=0.0, realized=0.68)  # a drop of 0.04 >= metric_drop_threshold 0.03
    assert _triggers(demo, metric_only) == ["realized roc_auc 0.6800 is 0.0400 below training"]
    unknown = retrain_decision(demo, _drift(share=0.0, realized=None), DAY, _never, _never)
    assert "realized roc_auc not known (0 labeled rows)" in unknown.signals and not unknown.retrain


def test_an_estimated_drop_triggers_only_when_configured(demo):
    """The checked day's CBPE estimate against training: off by default (no line weighed), then a trigger of its own
    that fires before any label of the day has arrived."""
    early = replace(_drift(share=0.0, realized=None), estimated_metric=0.61)
    assert _triggers(demo, early) == []  # off: monitoring.estimated_drop_threshold is null
    armed = with_section(demo, "monitoring", estimated_drop_threshold=0.05)
    decision = retrain_decision(armed, early, DAY, lambda: None, lambda: 9999)
    assert decision.triggers == ["estimated roc_auc 0.6100 is 0.1100 below training"]
    calm = retrain_decision(armed, replace(early, estimated_metric=0.70), DAY, _never, _never)
    assert not calm.retrain and "estimated roc_auc 0.7000: drop 0.0200 < 0.05" in calm.signals
    unknown = retrain_decision(armed, replace(early, estimated_metric=None), DAY, _never, _never)
    assert not unknown.retrain and any(s.startswith("estimated roc_auc not known") for s in unknown.signals)


def test_cooldown_refuses_before_labels_are_counted(demo):
    decision = retrain_decision(demo, _drift(), DAY, lambda: date(2026, 10, 16), _never)
    assert not decision.retrain
    assert decision.reason == (
        "cooldown: last retraining 2026-10-16, monitoring.cooldown_days=3"
        " (held back: drift share 0.30 >= 0.15; realized roc_auc 0.6000 is 0.1200 below training)"
    )


def test_too_few_new_labels_refuses_after_the_cooldown(demo):
    decision = retrain_decision(demo, _drift(share=0.2, realized=0.71), DAY, lambda: date(2026, 10, 15), lambda: 1999)
    assert not decision.retrain
    assert decision.reason == (
        "only 1999 labeled rows since the champion's window; monitoring.min_new_labels=2000"
        " (held back: drift share 0.20 >= 0.15)"
    )
    assert retrain_decision(demo, _drift(), DAY, lambda: None, lambda: 2000).retrain  # never retrained: no cooldown


def test_skipped_check_and_force(demo):
    skipped = _drift(share=None, status="skipped")
    assert retrain_decision(demo, skipped, DAY, _never, _never) == RetrainDecision(
        False, "no drift check: 12 logged rows"
    )
    forced = retrain_decision(demo, _drift(**CALM), DAY, _never, _never, force=True)
    assert (forced.retrain, forced.reason, forced.signals) == (True, "forced", QUIET)
    assert retrain_decision(demo, skipped, DAY, _never, _never, force=True) == RetrainDecision(True, "forced")


def test_a_scheduled_retraining_has_something_new_only_past_every_day_already_used():
    used = [date(2026, 10, 3), date(2026, 10, 8)]  # the champion's window end, a judged holdout
    assert nothing_new(date(2026, 10, 9), used) is None
    assert nothing_new(date(2026, 10, 9), []) is None  # nothing used yet
    assert nothing_new(date(2026, 10, 8), used) == (
        "no day labeled since 2026-10-08 (the newest labeled day is 2026-10-08): a challenger would be trained and "
        "judged on data already used"
    )
