"""Every result a task returns is JSON that Airflow's XCom accepts: an undefined number is null, never NaN or inf.

Airflow's API refuses NaN and infinity (``Out of range float values are not JSON compliant``) after the task has done
its work; ``json.dumps(..., allow_nan=False)`` refuses them the same way, so it stands in for the API here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from pipelines.drift_run import DaysChecked
from pipelines.features import ExtractResult
from pipelines.monitoring import DriftResult
from pipelines.multivariate_drift import MultivariateDrift
from pipelines.performance import DayPerformance
from pipelines.promotion import Rollback
from pipelines.promotion_record import Decision
from pipelines.promotion_rules import SegmentGain
from pipelines.records import defined, jsonable
from pipelines.retrain_rules import RetrainDecision
from pipelines.scoring import ScoreResult
from pipelines.training import TrainResult

pytestmark = pytest.mark.unit

# Every dataclass whose as_dict (as_json for the performance rows) a DAG task returns, or that a result holds.
TASK_RESULTS = [
    ExtractResult,
    ScoreResult,
    DriftResult,
    DaysChecked,
    TrainResult,
    Decision,
    Rollback,
    RetrainDecision,
    MultivariateDrift,
    SegmentGain,
]


def _filled(cls: type, bad: float) -> Any:
    """An instance with every number field (and every number inside a dict field) set to ``bad``."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = str(field.type)
        if "float" in kind:
            values[field.name] = bad
        elif kind.startswith("dict"):
            values[field.name] = {"score": bad, "threshold": bad, "method": "psi", "drifted": True}
        elif kind.startswith("list"):
            values[field.name] = ["a"]
        elif kind.startswith("bool"):
            values[field.name] = True
        elif kind.startswith("int"):
            values[field.name] = 3
        else:
            values[field.name] = "x"
    return cls(**values)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan")])
@pytest.mark.parametrize("cls", TASK_RESULTS, ids=lambda c: c.__name__)
def test_every_task_result_with_undefined_numbers_is_json_xcom_accepts(cls, bad):
    result = _filled(cls, bad).as_dict()
    json.dumps(result, allow_nan=False)  # raises ValueError on NaN or inf, as Airflow's API does
    for field in dataclasses.fields(cls):
        if "float" in str(field.type):
            assert result[field.name] is None, field.name
    assert json.loads(json.dumps(result)) == result


def test_the_list_holds_every_result_type_of_the_library():
    """A new result type with ``as_dict`` must join the list above (and so be tested with NaN and inf)."""
    import importlib
    import pkgutil

    import pipelines

    found = set()
    for module in pkgutil.iter_modules(pipelines.__path__):
        for value in vars(importlib.import_module(f"pipelines.{module.name}")).values():
            if dataclasses.is_dataclass(value) and isinstance(value, type) and hasattr(value, "as_dict"):
                found.add(value)
    assert found == {*TASK_RESULTS, DayPerformance}


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_performance_row_keeps_nan_for_the_table_and_gives_null_to_xcom(bad):
    row = _filled(DayPerformance, bad)
    assert math.isnan(row.as_dict()["value"]) or math.isinf(row.as_dict()["value"])  # the lake's table keeps NaN
    payload = row.as_json()
    json.dumps(payload, allow_nan=False)
    assert payload["value"] is payload["ci_low"] is payload["ci_high"] is None


def test_jsonable_reaches_into_nested_values_and_numpy_scalars():
    value = {"a": [np.float32("inf"), (1, np.int64(2))], "b": {"c": np.nan, "d": np.bool_(True)}, "e": 0.5}
    assert jsonable(value) == {"a": [None, [1, 2]], "b": {"c": None, "d": True}, "e": 0.5}
    assert type(jsonable(np.int64(2))) is int and type(jsonable(np.bool_(False))) is bool
    assert (defined(None), defined(math.nan), defined(-math.inf), defined(np.float64(0.25))) == (None, None, None, 0.25)
