"""Row-level validation at extraction: the row contract (:mod:`pipelines.contract`) as a pandera schema.

Whole-file problems (a configured column missing) raise :class:`DataError` naming the file and column. Row
problems (a missing key, a duplicated key, a value out of range or not finite, a value of the wrong type) split the
frame into valid rows and quarantined rows, each quarantined row carrying the reasons it failed, in the contract's
words (``income: not finite``): the same words batch scoring dead-letters such a row with.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipelines.config import DatasetConfig
from pipelines.contract import DUPLICATE, MISSING, NOT_A_NUMBER, NOT_A_TIME, NOT_ALLOWED, NOT_FINITE, RowContract
from pipelines.errors import DataError

log = logging.getLogger(__name__)

REASON = "quarantine_reason"
COERCION = ("coerce_dtype(", "dtype(")  # pandera's checks of a column's type: failing, they hide its other checks


@dataclass(frozen=True)
class Split:
    valid: pd.DataFrame
    quarantined: pd.DataFrame  # original values as text, plus REASON


def build_schema(dataset: DatasetConfig) -> pa.DataFrameSchema:
    """The row contract (:mod:`pipelines.contract`) as a pandera schema, each check named by the contract's reason."""
    contract = RowContract.of(dataset, declared=False)
    columns: dict[str, pa.Column] = {
        contract.key: pa.Column(str, nullable=False, unique=True, report_duplicates="exclude_first", coerce=True),
        contract.event_time: pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=False, coerce=True),
    }
    for column in contract.numbers:
        checks = [pa.Check(lambda s: ~np.isinf(s), element_wise=False, error=NOT_FINITE)]
        if column.min is not None:  # bounds are for finite values: an infinity is "not finite" alone
            checks.append(pa.Check(functools.partial(_at_least, column.min), error=column.below_min))
        if column.max is not None:
            checks.append(pa.Check(functools.partial(_at_most, column.max), error=column.above_max))
        columns[column.name] = pa.Column(float, checks=checks, nullable=True, coerce=True)
    for column in contract.categories:
        checks = [pa.Check.isin(sorted(column.allowed), error=NOT_ALLOWED)] if column.allowed is not None else []
        columns[column.name] = pa.Column(pd.StringDtype(), checks=checks, nullable=True, coerce=True)
    return pa.DataFrameSchema(columns, strict=False, name="features")


def _at_least(bound: float, values: pd.Series) -> pd.Series:
    return ~np.isfinite(values) | (values >= bound)


def _at_most(bound: float, values: pd.Series) -> pd.Series:
    return ~np.isfinite(values) | (values <= bound)


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: configured column(s) {missing} not found ({len(frame)} rows; has {list(frame.columns)})"
        )


def _reason(column: str, check: str, contract: RowContract) -> str:
    """pandera's own names for its built-in checks in the contract's words; the rest are named by the contract."""
    if check == "not_nullable":
        return f"{column}: {MISSING}"
    if check == "field_uniqueness":
        return f"{column}: {DUPLICATE}"
    if check.startswith(COERCION):
        return f"{column}: {NOT_A_TIME if column == contract.event_time else NOT_A_NUMBER}"
    return f"{column}: {check}"


def _row_reasons(errors: SchemaErrors, contract: RowContract) -> pd.Series:
    """One reason string per failing row index (failures not tied to a row are left out)."""
    cases = errors.failure_cases.dropna(subset=["index"])
    labels = [_reason(str(c), str(k), contract) for c, k in zip(cases["column"], cases["check"], strict=True)]
    return (
        pd.Series(labels, index=cases.index)
        .groupby(cases["index"].astype(int))
        .agg(lambda s: "; ".join(sorted(set(s))))
    )


def split_valid(frame: pd.DataFrame, dataset: DatasetConfig, source: str) -> Split:
    """Validate ``frame`` (already restricted to one day); rows in == valid rows + quarantined rows.

    A value that cannot be coerced hides the column's other checks (pandera cannot run them on the raw column),
    so validation repeats on the remaining rows until it passes, collecting each pass's failing rows. A pass whose
    failures include no coercion ran every check on every row: the rest are valid as it coerced them, with no pass
    again (the usual day, a few bad rows, is validated once).
    """
    columns = [dataset.key, dataset.event_time, *dataset.features.raw]
    require_columns(frame, columns, source)
    frame = frame.reset_index(drop=True)
    schema = build_schema(dataset)
    reasons = pd.Series(dtype=str)
    while True:
        try:
            valid = schema.validate(frame.drop(index=reasons.index), lazy=True)
            break
        except SchemaErrors as errors:
            found = _row_reasons(errors, RowContract.of(dataset, declared=False))
            if found.empty:
                cases = errors.failure_cases[["column", "check"]].drop_duplicates().to_dict("records")
                raise DataError(f"{source}: {len(frame)} rows fail the schema as a whole: {cases}") from errors
            reasons = pd.concat([reasons, found])
            if not errors.failure_cases["check"].astype(str).str.startswith(COERCION).any():
                valid = errors.data.drop(index=found.index)
                break
    quarantined = frame.loc[reasons.index].astype("string").assign(**{REASON: reasons.to_numpy()})
    if len(quarantined):
        log.warning("%s: %d of %d rows quarantined (%s)", source, len(quarantined), len(frame), _summary(reasons))
    assert len(valid) + len(quarantined) == len(frame), "validation lost rows"
    return Split(valid=valid.reset_index(drop=True), quarantined=quarantined.reset_index(drop=True))


def _summary(reasons: pd.Series) -> str:
    return ", ".join(f"{reason} x{count}" for reason, count in reasons.value_counts().items())
