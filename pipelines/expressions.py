"""The small expression language of declared features: row filters (``amount > 0 and status == 'late'``) and
derived features (``loan_amount / income``).

A user's text is never evaluated as code. It is parsed by Python's own parser into a syntax tree (``ast.parse``,
which runs nothing), and only a whitelist of node kinds is accepted: names, numbers and strings, ``+ - * /``,
unary minus, comparisons, ``and``/``or``/``not`` and the functions in :data:`FUNCTIONS`. Anything else (an
attribute, a subscript, a lambda, a call of any other name) is an :class:`ExpressionError` naming what is refused.
The accepted tree is then turned into a DuckDB SQL expression (filters run inside the aggregation query) or
computed over pandas columns (derived features, and the brute-force oracle of the tests; in
:mod:`pipelines.expression_frame`, so that checking a config's expressions, which every DAG file does when it
parses, loads no pandas), with the same meaning: a missing value stays missing through arithmetic, a comparison
with it is false, and a division by zero is missing.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# name -> (arguments, numpy function, SQL function)
FUNCTIONS: dict[str, tuple[int, Callable[..., Any], str]] = {
    "abs": (1, np.abs, "abs"),
    "sqrt": (1, np.sqrt, "sqrt"),
    "log1p": (1, np.log1p, "ln"),
    "min": (2, np.fmin, "least"),
    "max": (2, np.fmax, "greatest"),
}
ARITHMETIC = {ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul)}
COMPARE = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("=", operator.eq),
    ast.NotEq: ("<>", operator.ne),
}


class ExpressionError(ValueError):
    """The text is not an expression of the language (the message says what was refused)."""


@dataclass(frozen=True)
class Expression:
    """A parsed, whitelisted expression."""

    text: str
    tree: ast.expr

    @property
    def names(self) -> set[str]:
        """The columns it reads."""
        return {node.id for node in ast.walk(self.tree) if isinstance(node, ast.Name)}

    def sql(self, quote: Callable[[str], str] = lambda name: f'"{name}"') -> str:
        """The same expression in DuckDB SQL; ``quote`` renders a column name (e.g. with a table alias)."""
        return _sql(self.tree, quote)

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """The expression over ``frame``'s columns: numbers as float (missing: NaN), conditions as bool."""
        from pipelines.expression_frame import evaluate

        return evaluate(self.tree, frame)


def parse(text: str) -> Expression:
    """Parse and check ``text``; an :class:`ExpressionError` says what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {text!r}: {exc.msg}") from exc
    for node in ast.walk(tree):
        _allowed(node, text)
    return Expression(text, tree)


def _allowed(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float | str):
            raise ExpressionError(f"{text!r}: only numbers and strings are allowed as constants, not {node.value!r}")
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords or len(node.args) != FUNCTIONS[name][0]:
            allowed = ", ".join(f"{n}({', '.join('x' * a)})" for n, (a, _, _) in FUNCTIONS.items())
            raise ExpressionError(f"{text!r}: {ast.unparse(node)} is not an allowed call; allowed: {allowed}")
        return
    kinds = (ast.Name, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Load, ast.And, ast.Or, ast.Not, ast.USub)
    operators = (*ARITHMETIC, ast.Div, *COMPARE)
    if isinstance(node, kinds) or isinstance(node, operators):
        if isinstance(node, ast.BinOp) and type(node.op) not in (*ARITHMETIC, ast.Div):
            raise ExpressionError(f"{text!r}: operator {type(node.op).__name__} is not allowed (use + - * /)")
        return
    raise ExpressionError(f"{text!r}: {type(node).__name__} ({ast.unparse(node)!r}) is not allowed")


def _sql(node: ast.expr, quote: Callable[[str], str]) -> str:
    if isinstance(node, ast.Name):
        return quote(node.id)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return "'" + node.value.replace("'", "''") + "'"
        return repr(float(node.value))
    if isinstance(node, ast.BinOp):
        left, right = _sql(node.left, quote), _sql(node.right, quote)
        if isinstance(node.op, ast.Div):
            return f"(CAST({left} AS DOUBLE) / NULLIF(CAST({right} AS DOUBLE), 0))"
        return f"({left} {ARITHMETIC[type(node.op)][0]} {right})"
    if isinstance(node, ast.UnaryOp):
        inner = _sql(node.operand, quote)
        return f"(NOT coalesce({inner}, false))" if isinstance(node.op, ast.Not) else f"(-{inner})"
    if isinstance(node, ast.Compare):
        parts, left = [], node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(f"coalesce({_sql(left, quote)} {COMPARE[type(op)][0]} {_sql(right, quote)}, false)")
            left = right
        return "(" + " AND ".join(parts) + ")"
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return "(" + joiner.join(f"coalesce({_sql(v, quote)}, false)" for v in node.values) + ")"
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        name = FUNCTIONS[node.func.id][2]
        args = ", ".join(f"CAST({_sql(a, quote)} AS DOUBLE)" for a in node.args)
        if name in ("least", "greatest"):  # SQL's skip nulls; numpy's fmin/fmax too: the same
            return f"{name}({args})"
        if name == "sqrt":  # out of domain: missing, as numpy's NaN
            return f"(CASE WHEN {args} < 0 THEN NULL ELSE sqrt({args}) END)"
        if name == "ln":  # log1p(x) = ln(1 + x); missing at x <= -1
            return f"(CASE WHEN {args} <= -1 THEN NULL ELSE ln(1 + {args}) END)"
        return f"{name}({args})"
    raise ExpressionError(f"cannot render {ast.unparse(node)!r}")  # unreachable after parse()
