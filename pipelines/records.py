"""Results as JSON values: what Airflow's XCom and an MLflow record can carry.

XCom is JSON, and JSON has no word for NaN or infinity: Python's ``json`` writes them anyway, and Airflow's API
then refuses the value (``Out of range float values are not JSON compliant``) after the task has done its work, so
the task fails and its retries repeat that work. An undefined number (a metric on one class, an interval no
resample supports) is ``null`` there instead: every result a task returns goes through :func:`jsonable`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def defined(value: float | None) -> float | None:
    """``value`` as a float when it is a finite number, else None (NaN, infinity and None are all undefined)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float as None and numpy scalars as Python ones, through dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return defined(value)
    return value
