"""The multivariate signal on frames built to fool per-column tests: every marginal kept, one correlation broken."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.drift_tests import assess_drift, drift_verdicts
from pipelines.multivariate_drift import reconstruction_drift

pytestmark = pytest.mark.unit

NUMERICAL, CATEGORICAL = ["income", "loan_amount", "age"], ["region"]


def _frame(rows: int, seed: int, broken: bool = False) -> pd.DataFrame:
    """Loan amount follows income (correlation 0.9); ``broken``: the same loan amounts shuffled across rows, so
    each column keeps its distribution and only the relation is gone."""
    rng = np.random.default_rng(seed)
    income = rng.normal(0, 1, rows)
    loan = 0.9 * income + np.sqrt(1 - 0.81) * rng.normal(0, 1, rows)
    frame = pd.DataFrame(
        {
            "income": income,
            "loan_amount": rng.permutation(loan) if broken else loan,
            "age": rng.normal(40, 10, rows),
            "region": rng.choice(np.array(["north", "south", "east"], dtype=object), rows),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "income"] = np.nan  # missing values are imputed, not dropped
    return frame


def _check(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, dict]:
    """Per-column drift share (Evidently's verdicts, as check_drift computes them) and the multivariate signal."""
    verdicts = drift_verdicts(reference, current, NUMERICAL, CATEGORICAL)
    share = assess_drift(verdicts, "none", reference, current, _features(), [], 0.1).drift_share
    return share, reconstruction_drift(reference, current, NUMERICAL, CATEGORICAL).as_dict()


def _features():
    from pipelines.config import FeatureSpec

    return FeatureSpec(numerical=NUMERICAL, categorical=CATEGORICAL)


def test_a_broken_correlation_drifts_no_column_and_fires_the_multivariate_signal():
    reference = _frame(4000, seed=1)
    share, found = _check(reference, _frame(1500, seed=2, broken=True))
    assert share == 0.0  # no per-column test sees it
    assert found["drifted"] and found["error"] > found["threshold"] > found["reference_error"], found
    assert found["components"] < len(NUMERICAL) + 3 and found["rows"] == 1500


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_an_unshifted_window_stays_under_the_threshold_learned_from_the_reference(seed):
    share, found = _check(_frame(4000, seed=1), _frame(1500, seed=seed))
    assert share == 0.0 and not found["drifted"], found


def test_the_threshold_is_learned_from_reference_chunks_and_narrows_with_the_window():
    reference = _frame(4000, seed=1)
    small = reconstruction_drift(reference, _frame(200, seed=6), NUMERICAL, CATEGORICAL)
    large = reconstruction_drift(reference, _frame(3000, seed=6), NUMERICAL, CATEGORICAL)
    assert small.reference_error == pytest.approx(large.reference_error, rel=0.05)
    assert small.threshold - small.reference_error > 2 * (large.threshold - large.reference_error)
    assert reconstruction_drift(reference.head(10), _frame(200, seed=6), NUMERICAL, CATEGORICAL) is None


def test_a_reconstruction_fitted_once_checks_each_window_as_a_fresh_fit_does():
    """The check keeps one fit per champion for a run of days: each window must get what a fit of its own gives."""
    from pipelines.multivariate_drift import fit_reconstruction

    reference = _frame(4000, seed=1)
    fitted = fit_reconstruction(reference, NUMERICAL, CATEGORICAL)
    for window in (_frame(300, seed=7), _frame(1500, seed=8, broken=True), _frame(300, seed=7)):
        fresh = reconstruction_drift(reference, window, NUMERICAL, CATEGORICAL)
        assert fitted.drift(window) == fresh
