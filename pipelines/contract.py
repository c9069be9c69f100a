"""The row contract: what a row must be to reach a model, stated once, from the config's ``dataset`` section.

Three paths check rows, each in the form it holds them: extraction validates a day's raw frame (the failing rows
are quarantined), batch scoring checks a frame of feature rows before the model (they are dead-lettered), and the
model server checks each JSON body before queueing it (answered 422). They share one set of rules and one
vocabulary of reasons, taken from :class:`RowContract`: the key is present and unique; a numerical feature is a
finite number (or null) within its configured bounds; a categorical feature is text (or null) among its allowed
values. So a row quarantined at extraction for ``income: not finite`` is dead-lettered for the same words when a
feature table written elsewhere reaches batch scoring, and refused by the server with a 422 on that field.

Pure numpy and pandas (the server's scoring child imports it); :mod:`pipelines.validation` builds its pandera
schema from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import DatasetConfig


class Kind(StrEnum):
    KEY = "key"
    TIME = "event time"
    NUMBER = "number"
    CATEGORY = "category"


# The reasons every path gives, after the column's name ("income: not finite").
MISSING = "missing"
DUPLICATE = "duplicate key"
NOT_A_NUMBER = "not a number"
NOT_A_TIME = "not a timestamp"
NOT_FINITE = "not finite"
NOT_ALLOWED = "not an allowed value"


@dataclass(frozen=True)
class Column:
    """One column of the contract: its kind and the checks on its values (bounds for numbers, a set for text)."""

    name: str
    kind: Kind
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None

    @property
    def below_min(self) -> str:
        return f"below the minimum {self.min:g}"

    @property
    def above_max(self) -> str:
        return f"above the maximum {self.max:g}"

    def value_problem(self, value: Any) -> tuple[str, str] | None:
        """(type, message) when one JSON value breaks this column's rules; None when it keeps them (null does)."""
        if value is None:
            return None
        if self.kind is Kind.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "float_type", f"expected a number or null, got {type(value).__name__}"
            if not math.isfinite(value):
                return "finite_number", "expected a finite number"
            if self.min is not None and value < self.min:
                return "greater_than_equal", self.below_min
            if self.max is not None and value > self.max:
                return "less_than_equal", self.above_max
            return None
        if self.kind is Kind.CATEGORY:
            if not isinstance(value, str):
                return "string_type", f"expected a string or null, got {type(value).__name__}"
            if self.allowed is not None and value not in self.allowed:
                return "enum", f"{NOT_ALLOWED}: expected one of {sorted(self.allowed)}"
        return None


@dataclass(frozen=True)
class RowContract:
    """The columns a row carries and the rules on them; built once per dataset (:meth:`of`)."""

    key: str
    event_time: str
    numbers: tuple[Column, ...]
    categories: tuple[Column, ...]

    @staticmethod
    def of(dataset: DatasetConfig, declared: bool = True) -> RowContract:
        """The contract of a dataset: a few small objects, cheap enough to build wherever it is needed.

        ``declared``: with the features the pipeline computes (aggregates, derived: numbers without bounds), as a
        model input is checked; without them, as extraction validates the raw rows they are computed from."""

        def column(name: str, kind: Kind) -> Column:
            check = dataset.checks.get(name)
            if check is None:
                return Column(name, kind)
            allowed = frozenset(check.allowed) if check.allowed is not None else None
            return Column(name, kind, min=check.min, max=check.max, allowed=allowed)

        return RowContract(
            key=dataset.key,
            event_time=dataset.event_time,
            numbers=tuple(
                column(name, Kind.NUMBER)
                for name in (dataset.features.numbers if declared else dataset.features.numerical)
            ),
            categories=tuple(column(name, Kind.CATEGORY) for name in dataset.features.categorical),
        )

    @property
    def features(self) -> tuple[Column, ...]:
        return self.numbers + self.categories

    @property
    def required(self) -> list[str]:
        """The fields every row must carry (the event time may be absent online: the request time stands in)."""
        return [self.key, *(c.name for c in self.features)]

    @property
    def columns(self) -> Mapping[str, Column]:
        return {c.name: c for c in self.features}

    def model_input(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """A frame's model input (numbers as float64, text as objects) and, per reason, which rows break a rule.

        Vectorised: one boolean array per (column, reason); the batch path names reasons for failing rows only.
        """
        problems: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        for column in self.numbers:
            raw = frame[column.name]
            numbers = raw.to_numpy(dtype=np.float64) if pd.api.types.is_float_dtype(raw) else None
            if numbers is None:
                numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
                problems[f"{column.name}: {NOT_A_NUMBER}"] = raw.notna().to_numpy() & np.isnan(numbers)
            problems[f"{column.name}: {NOT_FINITE}"] = np.isinf(numbers)
            finite = np.isfinite(numbers)  # bounds are for finite values: an infinity is "not finite" alone
            if column.min is not None:
                problems[f"{column.name}: {column.below_min}"] = finite & (numbers < column.min)
            if column.max is not None:
                problems[f"{column.name}: {column.above_max}"] = finite & (numbers > column.max)
            values[column.name] = numbers
        for column in self.categories:
            raw = frame[column.name]
            text = raw.map(str, na_action="ignore") if raw.dtype != object else raw
            text = text.astype(object).where(raw.notna(), np.nan)
            if column.allowed is not None:
                problems[f"{column.name}: {NOT_ALLOWED}"] = (text.notna() & ~text.isin(column.allowed)).to_numpy()
            values[column.name] = text
        key = frame[self.key]
        problems[f"{self.key}: {MISSING}"] = key.isna().to_numpy()
        problems[f"{self.key}: {DUPLICATE}"] = (key.duplicated() & key.notna()).to_numpy()
        x = pd.DataFrame(values, index=frame.index)[[c.name for c in self.features]]
        return x, problems
