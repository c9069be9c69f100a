"""Row-level validation with a pandera schema derived from the config.

Whole-file problems (a configured column missing) raise :class:`DataError` naming the file and column. Row
problems (a missing key, a duplicated key, a value out of range or not finite, a value of the wrong type) split the
frame into valid rows and quarantined rows, each quarantined row carrying the reasons it failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipelines.config import DatasetConfig
from pipelines.errors import DataError

log = logging.getLogger(__name__)

REASON = "quarantine_reason"


@dataclass(frozen=True)
class Split:
    valid: pd.DataFrame
    quarantined: pd.DataFrame  # original values as text, plus REASON


def build_schema(dataset: DatasetConfig) -> pa.DataFrameSchema:
    """Valid feature rows: a present, unique key; finite numbers within the configured bounds; known categories."""
    columns: dict[str, pa.Column] = {
        dataset.key: pa.Column(str, nullable=False, unique=True, report_duplicates="exclude_first", coerce=True),
        dataset.event_time: pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=False, coerce=True),
    }
    for name in dataset.features.numerical:
        check = dataset.checks.get(name)
        checks = [pa.Check(lambda s: ~np.isinf(s), element_wise=False, error="finite")]
        if check and check.min is not None:
            checks.append(pa.Check.ge(check.min))
        if check and check.max is not None:
            checks.append(pa.Check.le(check.max))
        columns[name] = pa.Column(float, checks=checks, nullable=True, coerce=True)
    for name in dataset.features.categorical:
        check = dataset.checks.get(name)
        checks = [pa.Check.isin(check.allowed)] if check and check.allowed else []
        columns[name] = pa.Column(pd.StringDtype(), checks=checks, nullable=True, coerce=True)
    return pa.DataFrameSchema(columns, strict=False, name="features")


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: configured column(s) {missing} not found ({len(frame)} rows; has {list(frame.columns)})"
        )


def _row_reasons(errors: SchemaErrors) -> pd.Series:
    """One reason string per failing row index (failures not tied to a row are left out)."""
    cases = errors.failure_cases.dropna(subset=["index"])
    labels = cases["column"].astype(str) + ": " + cases["check"].astype(str)
    return labels.groupby(cases["index"].astype(int)).agg(lambda s: "; ".join(sorted(set(s))))


def split_valid(frame: pd.DataFrame, dataset: DatasetConfig, source: str) -> Split:
    """Validate ``frame`` (already restricted to one day); rows in == valid rows + quarantined rows.

    A value that cannot be coerced hides the column's other checks (pandera cannot run them on the raw column),
    so validation repeats on the remaining rows until it passes, collecting each pass's failing rows.
    """
    columns = [dataset.key, dataset.event_time, *dataset.features.all]
    require_columns(frame, columns, source)
    frame = frame.reset_index(drop=True)
    schema = build_schema(dataset)
    reasons = pd.Series(dtype=str)
    while True:
        try:
            valid = schema.validate(frame.drop(index=reasons.index), lazy=True)
            break
        except SchemaErrors as errors:
            found = _row_reasons(errors)
            if found.empty:
                cases = errors.failure_cases[["column", "check"]].drop_duplicates().to_dict("records")
                raise DataError(f"{source}: {len(frame)} rows fail the schema as a whole: {cases}") from errors
            reasons = pd.concat([reasons, found])
    quarantined = frame.loc[reasons.index].astype("string").assign(**{REASON: reasons.to_numpy()})
    if len(quarantined):
        log.warning("%s: %d of %d rows quarantined (%s)", source, len(quarantined), len(frame), _summary(reasons))
    assert len(valid) + len(quarantined) == len(frame), "validation lost rows"
    return Split(valid=valid.reset_index(drop=True), quarantined=quarantined.reset_index(drop=True))


def _summary(reasons: pd.Series) -> str:
    return ", ".join(f"{reason} x{count}" for reason, count in reasons.value_counts().items())
