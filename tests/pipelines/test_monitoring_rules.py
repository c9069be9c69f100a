"""The drift assessment (share over tested features, missing-value alerts, columns entirely missing) and the
decision banner on a report: pure, on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.drift_report import decision_banner, with_banner
from pipelines.drift_tests import assess_drift, columns_to_test

pytestmark = pytest.mark.unit


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


def test_the_decision_banner_replaces_an_earlier_one_in_the_report():
    page = "<html><head></head><body class='x'><div id='root'></div></body></html>"
    first = with_banner(page, decision_banner("Retraining decision for D: retrain", True, "a <b> reason", ["x < 1"]))
    assert first.index('id="mlops-decision"') < first.index("id='root'") and "a &lt;b&gt; reason" in first
    second = with_banner(first, decision_banner("Retraining decision for D: no retrain", False, "calm", []))
    assert second.count('id="mlops-decision"') == 1 and "no retrain" in second and "a &lt;b&gt;" not in second


def test_the_demos_declared_features_are_tested_for_drift_like_its_raw_ones():
    """The committed demo config's aggregates and derived feature are drift-tested columns (numerical), and one
    entirely missing in the window (no account paid in it) is flagged, not tested."""
    from lakes import REPO

    from pipelines.config import load_config

    features = load_config(REPO / "include/config/demo.yaml").dataset.features
    assert len(features.aggregated) == 7 and list(features.derived) == ["payment_burden"]
    current = pd.DataFrame({c: [1.0, 2.0] for c in features.numbers}).assign(
        **{c: ["a", "b"] for c in features.categorical}, payment_days_since_last_90d=[None, None]
    )
    numerical, categorical, empty = columns_to_test(current, features, "probability")
    assert empty == ["payment_days_since_last_90d"]
    assert numerical == [*features.numerical, *[c for c in features.computed if c not in empty], "probability"]
    assert categorical == features.categorical
