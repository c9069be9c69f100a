"""The declared features' expression language: what it accepts, what it refuses, and that its SQL and its pandas
forms agree on every row (filters run in DuckDB, derived features and the tests' oracle in pandas)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines.expressions import ExpressionError, parse

pytestmark = pytest.mark.unit

FRAME = pd.DataFrame(
    {
        "a": [1.0, 0.0, -2.5, np.nan, 4.0, 9.0],
        "b": [2.0, 0.0, 0.0, 1.0, np.nan, -1.0],
        "s": ["late", "ok", None, "late", "it's", "ok"],
    }
)


@pytest.mark.parametrize(
    "text",
    [
        "a / b",
        "a * 2 + b - 1",
        "-a / (b + 1)",
        "abs(a) + sqrt(b) + log1p(b)",
        "min(a, b) + max(a, 0)",
        "a > 0",
        "a > 0 and s == 'late'",
        "not (a >= 1 or s != 'ok')",
        "0 < a <= 4",
        "s == 'it''s'",
    ],
)
def test_sql_and_pandas_agree_on_every_row(text):
    expression = parse(text)
    expected = expression.evaluate(FRAME)
    with duckdb.connect() as con:
        con.register("f", FRAME)
        found = con.sql(f"SELECT {expression.sql()} AS v FROM f").df()["v"]
    if expected.dtype == bool:
        assert found.fillna(False).astype(bool).tolist() == expected.tolist()
    else:
        np.testing.assert_allclose(found.astype(float), expected.astype(float), equal_nan=True)


def test_a_division_by_zero_is_missing_and_names_are_reported():
    expression = parse("a / b")
    assert expression.names == {"a", "b"}
    assert expression.evaluate(FRAME).isna().tolist() == [False, True, True, True, True, False]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("__import__('os').system('rm -rf /')", "not an allowed call"),
        ("a.__class__", "Attribute"),
        ("a[0]", "Subscript"),
        ("(lambda: 1)()", "not an allowed call"),
        ("a ** 2", "operator Pow"),
        ("a if b else 1", "IfExp"),
        ("True", "only numbers and strings"),
        ("a +", "cannot parse"),
        ("open('x')", "not an allowed call"),
    ],
)
def test_anything_outside_the_grammar_is_refused(text, refused):
    with pytest.raises(ExpressionError, match=refused):
        parse(text)
