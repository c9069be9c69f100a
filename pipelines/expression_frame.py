"""Parsed expressions (:mod:`pipelines.expressions`) computed over pandas columns, with SQL's meaning: a missing
value stays missing through arithmetic, a comparison with it is false, a division by zero is missing."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd

from pipelines.expressions import ARITHMETIC, COMPARE, FUNCTIONS, ExpressionError


def evaluate(tree: ast.expr, frame: pd.DataFrame) -> pd.Series:
    """A checked expression tree over ``frame``'s columns: numbers as float (missing: NaN), conditions as bool."""
    value = _evaluate(tree, frame)
    if not isinstance(value, pd.Series):
        value = pd.Series(value, index=frame.index)
    return value


def _number(value: Any) -> Any:
    """A column or constant as float (a text column stays text, for comparisons with strings)."""
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value) or pd.api.types.is_numeric_dtype(value):
            return value.astype("float64")
        return value
    return value


def _evaluate(node: ast.expr, frame: pd.DataFrame) -> Any:
    if isinstance(node, ast.Name):
        return _number(frame[node.id])
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else float(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, frame), _evaluate(node.right, frame)
        with np.errstate(divide="ignore", invalid="ignore"):
            if isinstance(node.op, ast.Div):
                denominator = right.where(right != 0) if isinstance(right, pd.Series) else (right or np.nan)
                return left / denominator
            return ARITHMETIC[type(node.op)][1](left, right)
    if isinstance(node, ast.UnaryOp):
        inner = _evaluate(node.operand, frame)
        return ~_truth(inner, frame) if isinstance(node.op, ast.Not) else -inner
    if isinstance(node, ast.Compare):
        result = pd.Series(True, index=frame.index)
        left = _evaluate(node.left, frame)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, frame)
            result &= _truth(COMPARE[type(op)][1](left, right), frame) & _present(left, frame) & _present(right, frame)
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        values = [_truth(_evaluate(v, frame), frame) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = (result & value) if isinstance(node.op, ast.And) else (result | value)
        return result
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        function = FUNCTIONS[node.func.id][1]
        args = [_evaluate(a, frame) for a in node.args]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = function(*args)
        if node.func.id == "log1p":  # log1p(-1) is -inf in numpy, missing in SQL
            value = value.where(args[0] > -1) if isinstance(value, pd.Series) else value
        return value
    raise ExpressionError(f"cannot compute {ast.unparse(node)!r}")  # unreachable after parse()


def _present(value: Any, frame: pd.DataFrame) -> pd.Series:
    """Where a value is not missing (a comparison with a missing value is false, as in SQL)."""
    if isinstance(value, pd.Series):
        return value.notna()
    return pd.Series(value is not None and not (isinstance(value, float) and np.isnan(value)), index=frame.index)


def _truth(value: Any, frame: pd.DataFrame) -> pd.Series:
    """A condition as booleans, missing as false."""
    if isinstance(value, pd.Series):
        return value.fillna(False).astype(bool) if value.dtype != bool else value
    return pd.Series(bool(value), index=frame.index)
