"""The pure decision cores, on tiny in-memory inputs: no Dask, no MLflow, no Airflow, milliseconds each.

The promotion ladder and its bootstrap interval, the retraining ladder, the drift assessment, frame-level scoring
with dead-letter isolation, the lake's table addressing and the bounded model cache.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import registry
from pipelines.config import Config, load_config
from pipelines.errors import DataError
from pipelines.modeling import unresamplable
from pipelines.monitoring import DriftResult, assess_drift, columns_to_test, decision_banner, with_banner
from pipelines.promotion import (
    GainInterval,
    RetrainDecision,
    gain_interval,
    nothing_new,
    promotion_verdict,
    retrain_decision,
    settle_challenger,
)
from pipelines.promotion_record import Decision, decision_description
from pipelines.scoring import ERROR, score_frame
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[2] / "include" / "config" / "demo.yaml"
DAY = date(2026, 10, 18)


@pytest.fixture(scope="module")
def demo() -> Config:
    return load_config(DEMO)


def _with(config: Config, section: str, **values) -> Config:
    return config.model_copy(update={section: getattr(config, section).model_copy(update=values)})


# The promotion ladder: new version, enough rows, margin, interval above 0.


def test_margin_passes_but_interval_includes_zero_keeps_the_champion(demo):
    promoted, why = promotion_verdict(demo.promotion, False, 1000, 0.02, GainInterval(-0.004, 0.05))
    assert not promoted
    assert why == "95% interval of the gain [-0.0040, 0.0500] includes 0"


def test_every_rung_refuses_on_its_own(demo):
    policy = demo.promotion
    good = GainInterval(0.01, 0.05)
    assert promotion_verdict(policy, True, 1000, 0.02, good) == (False, "the challenger already is the champion")
    assert promotion_verdict(policy, False, 199, 0.02, good) == (
        False,
        "holdout has 199 rows; promotion.min_samples is 200",
    )
    assert promotion_verdict(policy, False, 1000, 0.004, good) == (False, "gain 0.0040 < min_improvement 0.005")
    no_interval = GainInterval(None, None, "the holdout cannot be resampled: 1 row(s), too few to resample")
    assert promotion_verdict(policy, False, 1000, 0.02, no_interval) == (
        False,
        "no 95% interval of the gain: the holdout cannot be resampled: 1 row(s), too few to resample",
    )
    one_class = GainInterval(None, None, "the holdout cannot be resampled: all 300 rows hold one class")
    assert promotion_verdict(policy, False, 1000, None, one_class) == (
        False,
        "the metric is undefined on the holdout: the holdout cannot be resampled: all 300 rows hold one class",
    )
    assert promotion_verdict(policy, False, 1000, 0.02, good) == (
        True,
        "gain 0.0200 >= 0.005, 95% interval [0.0100, 0.0500] above 0",
    )


def _holdout(n: int, positives: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a weak champion (noise) and a strong challenger (labels + noise)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, positives, replace=False)] = 1
    return y, rng.random(n), np.clip(0.6 * y + 0.5 * rng.random(n), 0, 1)


def test_bootstrap_interval_of_a_clearly_better_challenger_lies_above_zero(demo):
    config = _with(demo, "promotion", bootstrap=50)
    y, champion, challenger = _holdout(200, 60)
    interval = gain_interval(config, y, champion, challenger)
    assert interval.problem == "" and 0 < interval.low < interval.high < 1
    assert gain_interval(config, y, champion, challenger) == interval  # seeded: the same holdout, the same interval
    same = gain_interval(config, y, champion, champion)
    assert (same.low, same.high) == (0.0, 0.0)  # identical models: the interval is [0, 0], which includes 0


def test_a_one_class_holdout_has_no_interval_and_draws_no_resample(demo, monkeypatch):
    monkeypatch.setattr("pipelines.promotion.paired_bootstrap", _no_bootstrap)
    config = _with(demo, "promotion", bootstrap=50)
    y = np.zeros(300, dtype=int)
    interval = gain_interval(config, y, np.full(300, 0.3), np.full(300, 0.7))
    assert (interval.low, interval.high) == (None, None)
    assert interval.problem == (
        "the holdout cannot be resampled: all 300 rows hold one class, where roc_auc is undefined"
    )


def _no_bootstrap(*args, **kwargs):
    raise AssertionError("the bootstrap ran, though the holdout was known to be unresamplable")


def test_a_holdout_too_unbalanced_or_too_small_is_said_so_before_resampling(demo, monkeypatch):
    monkeypatch.setattr("pipelines.promotion.paired_bootstrap", _no_bootstrap)
    config = _with(demo, "promotion", bootstrap=50)
    y, champion, challenger = _holdout(250, 1)  # one positive: about a third of the resamples miss it
    assert gain_interval(config, y, champion, challenger).problem == (
        "the holdout cannot be resampled: the rarest class has 1 of 250 rows, so a resample holds a single class"
        " with probability 36.7% (~18 of 50 resamples), where roc_auc is undefined"
    )
    assert gain_interval(config, y[:1], champion[:1], challenger[:1]).problem == (
        "the holdout cannot be resampled: 1 row(s), too few to resample"
    )


def test_the_pre_check_passes_a_holdout_the_bootstrap_can_resample(demo):
    config = _with(demo, "promotion", bootstrap=300)
    # (1 - 20/168)^168 * 300 = 0.2 expected single-class resamples: resampled; 3 positives: ~15 expected, refused
    assert unresamplable(config, _holdout(168, 20)[0]) is None
    assert "~15 of 300 resamples" in unresamplable(config, _holdout(168, 3)[0])
    assert unresamplable(config.model_copy(update={"task": "regression"}), np.zeros(10)) is None  # no classes


def test_resamples_that_still_hold_one_class_give_no_interval(demo):
    """Below the pre-check's threshold a resample can still miss the rare class: then the interval is undefined too,
    and the problem counts the resamples (which ones depends on the bootstrap's seed, ``training.seed``)."""
    y, champion, challenger = _holdout(60, 5)  # (55/60)^60 * 50 = 0.27 single-class resamples expected: resampled
    problems = {
        seed: gain_interval(_with(_with(demo, "promotion", bootstrap=50), "training", seed=seed), y, champion,
                            challenger).problem
        for seed in range(12)
    }  # fmt: skip
    missed = [p for p in problems.values() if p]
    assert missed and len(missed) < len(problems)  # some seeds draw a one-class resample, most do not
    assert all(
        p.endswith("of 50 bootstrap resamples of the 60 holdout rows hold a single class, where roc_auc is undefined")
        for p in missed
    )


# The retraining ladder: forced, a checked day, a trigger (each signal on its own), the cooldown, enough new labels.


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
    "realized roc_auc 0.7100 vs 0.7200 at training: drop 0.0100 < 0.03",
]


def _never() -> None:
    raise AssertionError("this rung must not be reached")


def _triggers(config: Config, drift: DriftResult) -> list[str]:
    decision = retrain_decision(config, drift, DAY, lambda: None, lambda: 9999)
    assert decision.retrain is bool(decision.triggers) and len(decision.signals) == 4
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
    assert _triggers(_with(demo, "monitoring", output_drift_trigger=True), drifted_output) == [line]
    off = retrain_decision(demo, drifted_output, DAY, _never, _never)  # the default: a signal, not a trigger
    assert not off.retrain and f"{line}; monitoring.output_drift_trigger is off" in off.signals


def test_a_missing_value_rise_alone_triggers(demo):
    drift = _drift(**CALM, missing={"income": 0.25, "debt_ratio": 0.05})  # debt_ratio's rise is below 0.1
    assert _triggers(demo, drift) == ["missing values rose by more than 0.1: income +0.25"]
    off = retrain_decision(_with(demo, "monitoring", missing_trigger=False), drift, DAY, _never, _never)
    assert not off.retrain
    assert "missing values rose by more than 0.1: income +0.25; monitoring.missing_trigger is off" in off.signals


def test_a_feature_entirely_missing_triggers_though_no_drift_test_can_see_it(demo):
    # The feature is left out of the drift share (no test runs on an empty column): the missing signal catches it.
    drift = _drift(**CALM, missing={"region": 0.05}, all_missing=["region"])
    assert _triggers(demo, drift) == ["missing values rose by more than 0.1: region entirely missing"]


def test_a_realized_metric_drop_alone_triggers(demo):
    metric_only = _drift(share=0.0, realized=0.68)  # a drop of 0.04 >= metric_drop_threshold 0.03
    assert _triggers(demo, metric_only) == ["realized roc_auc 0.6800 is 0.0400 below training"]
    unknown = retrain_decision(demo, _drift(share=0.0, realized=None), DAY, _never, _never)
    assert "realized roc_auc not known (0 labeled rows)" in unknown.signals and not unknown.retrain


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


def test_the_decision_banner_replaces_an_earlier_one_in_the_report():
    page = "<html><head></head><body class='x'><div id='root'></div></body></html>"
    first = with_banner(page, decision_banner("Retraining decision for D: retrain", True, "a <b> reason", ["x < 1"]))
    assert first.index('id="mlops-decision"') < first.index("id='root'") and "a &lt;b&gt; reason" in first
    second = with_banner(first, decision_banner("Retraining decision for D: no retrain", False, "calm", []))
    assert second.count('id="mlops-decision"') == 1 and "no retrain" in second and "a &lt;b&gt;" not in second


# After a promotion decision: the challenger alias, and the decision in words for the version's page.


class AliasClient:
    """The registry calls ``settle_challenger`` makes, on a dict of aliases."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = aliases

    def get_model_version_by_alias(self, name: str, alias: str):
        from mlflow.exceptions import MlflowException

        if alias not in self.aliases:
            raise MlflowException("no such alias", error_code="RESOURCE_DOES_NOT_EXIST")
        return type("Version", (), {"version": self.aliases[alias], "run_id": None})()

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        del self.aliases[alias]


def test_the_challenger_alias_names_the_last_kept_challenger_and_never_the_champion():
    kept = AliasClient(champion="1", challenger="3")
    settle_challenger(kept, "m", "2", challenger_holds=True)  # v2 evaluated (e.g. by hand) and kept out
    assert kept.aliases == {"champion": "1", "challenger": "2"}
    promoted = AliasClient(champion="2", previous_champion="1", challenger="2")
    settle_challenger(promoted, "m", "2", challenger_holds=False)
    assert promoted.aliases == {"champion": "2", "previous_champion": "1"}
    same = AliasClient(champion="2", challenger="2")  # "the challenger already is the champion": kept, yet removed
    settle_challenger(same, "m", "2", challenger_holds=True)
    assert same.aliases == {"champion": "2"}


def test_a_kept_decision_reads_as_words(demo):
    decision = Decision(
        "m", False, "no 95% interval of the gain: too few rows", "4", "3", "3", "roc_auc", 0.71, 0.7, -0.01,
        None, None, 150, 0.005, 0.95, "2026-10-17..2026-10-17", "drift share 0.30 >= 0.15", "run1",
    )  # fmt: skip
    assert decision_description(decision, DAY).splitlines() == [
        "**Kept out on 2026-10-18**: v3 stays champion; v4 was not promoted.",
        "",
        "- roc_auc on the holdout 2026-10-17..2026-10-17 (150 labeled rows): challenger v4 0.7000, champion v3 0.7100,"
        " gain -0.0100",
        "- 95% paired bootstrap interval of the gain: not computable",
        "- required: gain >= 0.005 and the interval above 0",
        "- why: no 95% interval of the gain: too few rows",
        "- trigger: drift share 0.30 >= 0.15",
        "- decision run: run1",
    ]


# The drift assessment: share over tested features, missing-value alerts, columns entirely missing.


def test_drift_share_counts_features_not_the_model_output(demo):
    features = demo.dataset.features
    reference = pd.DataFrame({c: [1.0, 2.0, 3.0, 4.0] for c in features.numerical})
    reference = reference.assign(**{c: ["a", "b", "a", None] for c in features.categorical})
    current = reference.assign(income=[np.nan, np.nan, 3.0, 4.0], region=[None, None, None, None])
    numerical, categorical, empty = columns_to_test(current, features, "probability")
    assert empty == ["region"] and "region" not in categorical and numerical[-1] == "probability"
    tested = [*numerical, *categorical]
    verdicts = {c: {"drifted": c in ("age", "product", "probability")} for c in tested}
    drift = assess_drift(verdicts, "probability", reference, current, features, empty, 0.3)
    assert drift.drifted_columns == ["age", "product"]
    assert drift.drift_share == pytest.approx(2 / 10)  # 11 features, one untestable; the output is not counted
    assert drift.missing == {"income": 0.5, "region": 0.75}  # region was 25% missing, now 100%
    assert drift.reason == "2 of 10 columns drifted; all missing: ['region']"


def test_an_all_missing_column_is_flagged_even_below_the_rise_threshold(demo):
    features = demo.dataset.features
    frame = pd.DataFrame({c: [1.0, 2.0] for c in features.numerical}).assign(
        **{c: ["a", "b"] for c in features.categorical}
    )
    reference, current = frame.assign(region=[None, None]), frame.assign(region=[None, None])
    _, _, empty = columns_to_test(current, features, "probability")
    drift = assess_drift({"income": {"drifted": False}}, "probability", reference, current, features, empty, 0.1)
    assert drift.missing == {"region": 1.0} and drift.drift_share == 0.0


# Frame-level scoring: checked input, a model that rejects rows, non-finite outputs, duplicates, the log sample.


class StubModel:
    """Probability from income; rejects any batch with an age above 95; returns NaN for a debt_ratio of 9."""

    classes_ = np.array([0, 1])

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        if (x["age"] > 95).any():
            raise ValueError("age out of range")
        positive = np.where(x["debt_ratio"] == 9, np.nan, np.clip(x["income"].fillna(50_000) / 100_000, 0, 1))
        return np.column_stack([1 - positive, positive])


def _frame(config: Config, n: int) -> pd.DataFrame:
    features = config.dataset.features
    frame = pd.DataFrame({c: np.linspace(1, 2, n) for c in features.numerical})
    frame = frame.assign(**{c: ["x"] * n for c in features.categorical})
    return frame.assign(
        customer_id=[f"c{i}" for i in range(n)],
        event_time=pd.Timestamp("2026-10-18", tz="UTC"),
        income=np.linspace(10_000, 90_000, n),
        age=40.0,
    )


def test_score_frame_isolates_every_bad_row_and_scores_the_rest(demo):
    config = _with(demo, "monitoring", sample_rate=1.0)
    frame = _frame(config, 40)
    frame["income"] = frame["income"].astype(object)
    frame.loc[1, "income"] = "lots"
    frame.loc[2, "credit_utilization"] = np.inf
    frame.loc[3, "customer_id"] = None
    frame.loc[5, "customer_id"] = frame.loc[4, "customer_id"]
    frame.loc[[11, 30], "age"] = 99.0  # each sinks its batch unless isolated
    frame.loc[20, "debt_ratio"] = 9.0  # the model returns NaN for it
    scores = score_frame(frame, StubModel(), config, duplicates=(33,))

    errors = dict(zip(scores.dead.index, scores.dead[ERROR], strict=True))
    assert errors == {
        1: "income: not a number",
        2: "credit_utilization: not finite",
        3: "customer_id: missing",
        5: "customer_id: duplicate key",
        11: "ValueError: age out of range",
        20: "model returned a non-finite prediction",
        30: "ValueError: age out of range",
        33: "customer_id: duplicate key (first seen in an earlier row group)",
    }
    assert len(scores.predictions) + len(scores.dead) == len(frame) == 40
    assert list(scores.predictions.columns) == ["customer_id", "prediction", "probability"]
    assert not set(scores.predictions.index) & set(errors)
    assert scores.predictions["probability"].between(0, 1).all()
    assert (scores.predictions["prediction"] == (scores.predictions["probability"] >= 0.5)).all()
    assert scores.dead.loc[1, "income"] == "lots" and scores.dead["income"].dtype == "string"  # original values
    assert list(scores.dead_positions) == sorted(errors)
    assert list(scores.logged.index) == list(scores.predictions.index)  # sample_rate 1.0: every scored row logged
    assert {"event_time", "income", "region", "probability"} <= set(scores.logged.columns)


def test_score_frame_log_sample_is_stable_by_key(demo):
    frame = _frame(demo, 400)
    none = score_frame(frame, StubModel(), _with(demo, "monitoring", sample_rate=0.0))
    assert none.logged.empty and len(none.predictions) == 400 and none.dead.empty
    tenth = score_frame(frame, StubModel(), demo)  # the demo's 10%
    again = score_frame(frame.iloc[::-1].reset_index(drop=True), StubModel(), demo)
    assert 20 < len(tenth.logged) < 60
    assert set(tenth.logged["customer_id"]) == set(again.logged["customer_id"])  # the key decides, not the row


def test_score_frame_on_an_empty_frame(demo):
    scores = score_frame(_frame(demo, 0), StubModel(), demo)
    assert scores.predictions.empty and scores.dead.empty and scores.logged.empty


# The lake: one object knows where a table lives; a missing partition is bad input, named.


def test_lake_addresses_tables_by_name_and_day(tmp_path):
    lake = Lake(f"{tmp_path}/lake/")
    assert lake.partition(Table.FEATURES, DAY) == f"{tmp_path}/lake/features/date=2026-10-18"
    with pytest.raises(DataError, match=r"partition .*/lake/features/date=2026-10-18 does not exist"):
        lake.read(Table.FEATURES, DAY)
    assert lake.count_rows(Table.FEATURES, DAY) is None and lake.days(Table.FEATURES) == []
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1, 2, 3]}))
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [4, 5]}))  # replaces, never appends
    staging = lake.new_staging(Table.FEATURES, date(2026, 10, 19))  # staged, not published: not a day of the table
    assert lake.read(Table.FEATURES, DAY)["k"].tolist() == [4, 5] and lake.count_rows(Table.FEATURES, DAY) == 2
    assert lake.days(Table.FEATURES) == [DAY]
    lake.discard(staging)
    assert lake.read_days(Table.FEATURES, [DAY, DAY])["k"].tolist() == [4, 5, 4, 5]


# The model cache: bounded, keyed by version and device.


def test_model_cache_is_bounded_and_keyed_by_version_and_device(monkeypatch):
    import mlflow.sklearn

    loads: list[str] = []
    monkeypatch.setattr(mlflow.sklearn, "load_model", lambda uri: loads.append(uri) or object())
    for setter in ("set_tracking_uri", "set_registry_uri"):
        monkeypatch.setattr(mlflow, setter, lambda uri: None)
    registry._load.cache_clear()
    refs = [registry.ModelRef("m", str(v), None) for v in range(1, 8)]
    first = registry.load_model(refs[0], "sqlite:///unused.db")
    assert registry.load_model(refs[0], "sqlite:///unused.db") is first and loads == ["models:/m/1"]
    for ref in refs:
        registry.load_model(ref, "sqlite:///unused.db")
    assert registry._load.cache_info().currsize == registry.MODEL_CACHE_SIZE < len(refs)
    registry.load_model(refs[0], "sqlite:///unused.db")  # evicted long ago: loaded again
    assert loads.count("models:/m/1") == 2
    registry._load.cache_clear()


def test_a_scheduled_retraining_has_something_new_only_past_every_day_already_used():
    used = [date(2026, 10, 3), date(2026, 10, 8)]  # the champion's window end, a judged holdout
    assert nothing_new(date(2026, 10, 9), used) is None
    assert nothing_new(date(2026, 10, 9), []) is None  # nothing used yet
    assert nothing_new(date(2026, 10, 8), used) == (
        "no day labeled since 2026-10-08 (the newest labeled day is 2026-10-08): a challenger would be trained and "
        "judged on data already used"
    )
