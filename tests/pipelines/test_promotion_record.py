"""A promotion decision in words, for the version's page in the MLflow UI."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.promotion_record import Decision, decision_description

pytestmark = pytest.mark.unit


DAY = date(2026, 10, 18)


def test_a_kept_decision_reads_as_words():
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
