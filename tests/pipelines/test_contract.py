"""One row contract: a corpus of bad rows through extraction, batch scoring's input check and the server's body
check; each path rejects the same rows, for the same columns (extraction and batch in the same words)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipelines.config import ColumnCheck, Config
from pipelines.contract import RowContract
from pipelines.predict import checked_input
from pipelines.serving.schema import BodyError, check_rows
from pipelines.validation import REASON, split_valid

pytestmark = pytest.mark.unit

# key -> (column, reason) of the one rule each bad row breaks; None: a valid row.
CORPUS: dict[str, tuple[str, str] | None] = {
    "ok-1": None,
    "ok-null-features": None,  # missing values are not errors: the model imputes them
    "ok-2": None,
    "dup": ("customer_id", "customer_id: duplicate key"),  # the second row with key "ok-2"
    "no-key": ("customer_id", "customer_id: missing"),
    "text-income": ("income", "income: not a number"),
    "inf-utilization": ("credit_utilization", "credit_utilization: not finite"),
    "young": ("age", "age: below the minimum 18"),
    "old": ("age", "age: above the maximum 100"),
    "atlantis": ("region", "region: not an allowed value"),
}


@pytest.fixture
def config(demo: Config) -> Config:
    checks = {**demo.dataset.checks, "region": ColumnCheck(allowed=["north", "south", "east", "west"])}
    return demo.model_copy(update={"dataset": demo.dataset.model_copy(update={"checks": checks})})


def _rows(config: Config) -> list[dict]:
    """The corpus as JSON-like rows: key, event time and every feature (valid values unless the row says)."""
    dataset = config.dataset
    base = {c: 1.0 for c in dataset.features.numerical} | {c: "north" for c in dataset.features.categorical}
    base |= {"age": 40.0, "event_time": "2026-10-18T12:00:00+00:00"}
    rows = []
    for name in CORPUS:
        row = {dataset.key: name, **base}
        match name:
            case "ok-null-features":
                row |= {"income": None, "region": None}
            case "dup":
                row[dataset.key] = "ok-2"
            case "no-key":
                row[dataset.key] = None
            case "text-income":
                row["income"] = "lots"
            case "inf-utilization":
                row["credit_utilization"] = math.inf
            case "young":
                row["age"] = 10.0
            case "old":
                row["age"] = 101.0
            case "atlantis":
                row["region"] = "atlantis"
        rows.append(row)
    return rows


def _expected(config: Config) -> dict[int, str]:
    return {i: rule[1] for i, rule in enumerate(CORPUS.values()) if rule is not None}


def test_extraction_quarantines_the_bad_rows_with_the_contract_reasons(config):
    frame = pd.DataFrame(_rows(config)).astype({"income": object})
    frame["event_time"] = pd.to_datetime(frame["event_time"])
    split = split_valid(frame.assign(position=range(len(frame))), config.dataset, "corpus")
    found = dict(zip(split.quarantined["position"].astype(int), split.quarantined[REASON], strict=True))
    assert found == _expected(config)
    assert len(split.valid) + len(split.quarantined) == len(frame)


def test_batch_scoring_sets_aside_the_same_rows_for_the_same_reasons(config):
    frame = pd.DataFrame(_rows(config)).astype({"income": object})
    x, reasons = checked_input(frame, config)
    assert reasons.to_dict() == _expected(config)
    assert len(x) == len(frame) and x["income"].dtype == np.float64


def test_the_server_refuses_the_same_rows_naming_the_same_columns(config):
    body = json.dumps(_rows(config)).encode()  # inf is written as Infinity, which the server parses and refuses
    with pytest.raises(BodyError) as refused:
        check_rows(body, config, max_rows=100)
    named = {(d["loc"][1], d["loc"][2]) for d in refused.value.detail}
    assert named == {(i, rule[0]) for i, rule in enumerate(CORPUS.values()) if rule is not None}


def test_the_contract_reads_every_rule_from_the_config(config):
    contract = RowContract.of(config.dataset)
    assert contract.required == [config.dataset.key, *config.dataset.features.all]
    age = contract.columns["age"]
    assert (age.min, age.max) == (18, 100)
    assert contract.columns["region"].allowed == {"north", "south", "east", "west"}
    assert age.value_problem(17.5) == ("greater_than_equal", "below the minimum 18")
    assert age.value_problem(None) is None and age.value_problem(math.nan)[0] == "finite_number"


@pytest.mark.parametrize("coercible", [True, False])
def test_extraction_keeps_the_valid_rows_as_a_validation_of_them_alone_gives_them(config, coercible):
    """One pass when no value fails its type, several when one does: either way the valid rows and their types are
    what validating the valid rows alone returns."""
    from pipelines.validation import build_schema

    rows = [r for r in _rows(config) if coercible is False or r["customer_id"] != "text-income"]
    frame = pd.DataFrame(rows)
    split = split_valid(frame, config.dataset, "corpus.parquet")
    valid_rows = frame[frame["customer_id"].isin(["ok-1", "ok-null-features", "ok-2"])].drop_duplicates("customer_id")
    expected = build_schema(config.dataset).validate(valid_rows.reset_index(drop=True))
    pd.testing.assert_frame_equal(split.valid, expected)
    assert len(split.valid) + len(split.quarantined) == len(frame)
