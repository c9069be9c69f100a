"""How drift verdicts are computed cheaply without departing from Evidently: its own test pick, asked on the distinct
values; categorical windows read as pandas categoricals; infinities dropped as Evidently drops them. Milliseconds
each, on small in-memory columns (the agreement with a whole Evidently report is in test_monitoring.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from pipelines.drift_tests import column_drift, select_test
from pipelines.table_format import concat

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)
NUM, CAT = ColumnType.Numerical, ColumnType.Categorical


def _values(n: int, values: list, p: list[float] | None = None) -> pd.Series:
    return pd.Series(RNG.choice(np.array(values, dtype=object if isinstance(values[0], str) else float), n, p=p))


# Each case crosses one of Evidently's boundaries: reference size 1000, and 2 or 5 distinct values over both samples
# (in some only once the current values are counted in).
CASES = {
    "continuous, large reference": (
        pd.Series(RNG.normal(size=3000)),
        pd.Series(RNG.normal(size=9000)),
        NUM,
        "wasserstein",
    ),
    "continuous, small reference": (pd.Series(RNG.normal(size=800)), pd.Series(RNG.normal(size=9000)), NUM, "ks"),
    "5 values, large reference": (_values(3000, [1, 2, 3, 4, 5]), _values(9000, [1, 2, 3, 4, 5]), NUM, "jensenshannon"),
    "4 values + 3 new ones": (_values(3000, [1, 2, 3, 4]), _values(9000, [1, 2, 3, 4, 5, 6, 7]), NUM, "wasserstein"),
    "2 values, small reference": (_values(500, [0, 1]), _values(9000, [0, 1]), NUM, "z"),
    "2 values + 1 new, small reference": (_values(500, [0, 1]), _values(9000, [0, 1, 2]), NUM, "chisquare"),
    "6 values + 1 new, small reference": (_values(900, [1, 2, 3, 4, 5, 6]), _values(900, [1, 7]), NUM, "ks"),
    "categories, large reference": (_values(3000, ["a", "b"]), _values(9000, ["a", "b", "c"]), CAT, "jensenshannon"),
    "2 categories, small reference": (_values(500, ["a", "b"]), _values(9000, ["a", "b"]), CAT, "z"),
    "2 categories + 1 new, small": (_values(500, ["a", "b"]), _values(9000, ["a", "b", "c"]), CAT, "chisquare"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_test_is_the_one_evidently_picks(case):
    reference, current, feature_type, expected = CASES[case]
    picked = select_test(reference, current, feature_type)
    assert picked.name == get_stattest(reference, current, feature_type, None).name == expected


def test_a_categorical_window_gets_the_verdict_of_its_object_values():
    reference = _values(3000, ["a", "b", "c"], [0.4, 0.35, 0.25])
    current = pd.concat([_values(9000, ["a", "b", "c"], [0.2, 0.3, 0.5]), pd.Series([None] * 50)], ignore_index=True)
    as_objects = column_drift(reference, current, "cat")
    as_categories = column_drift(reference, current.astype("category"), "cat")
    assert as_objects["method"] == "Jensen-Shannon distance" and as_objects["drifted"] is True
    assert as_categories == pytest.approx(as_objects)


def test_infinities_and_missing_values_are_dropped_before_the_test_as_evidently_does():
    reference = pd.Series(RNG.normal(size=3000))
    finite = pd.Series(RNG.normal(0.05, 1, size=9000))
    dirty = pd.concat([finite, pd.Series([np.inf, -np.inf, np.nan])], ignore_index=True)
    assert column_drift(reference, dirty, "num") == column_drift(reference, finite, "num")


def test_integer_columns_get_the_verdict_of_their_float_values():
    reference, current = _values(3000, list(range(10))), pd.Series(RNG.normal(3, 2, size=9000)).round()
    as_floats = column_drift(reference, current, "num")
    assert column_drift(reference.astype("int64"), current.astype("int64"), "num") == as_floats
    assert as_floats["method"] == "Wasserstein distance (normed)" and as_floats["drifted"] is True


def test_days_read_as_categoricals_concatenate_as_one_categorical_and_stay_untouched():
    monday = pd.DataFrame({"region": pd.Categorical(["north", "south"]), "income": [1.0, 2.0]})
    tuesday = pd.DataFrame({"region": pd.Categorical(["east"]), "income": [3.0]})
    window = concat([monday, tuesday])
    assert isinstance(window["region"].dtype, pd.CategoricalDtype)
    assert window["region"].tolist() == ["north", "south", "east"] and window["income"].tolist() == [1.0, 2.0, 3.0]
    assert monday["region"].cat.categories.tolist() == ["north", "south"]  # the inputs are not modified
    assert tuesday["region"].cat.categories.tolist() == ["east"]
    assert concat([]).empty
