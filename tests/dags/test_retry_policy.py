"""The DAGs' retry policy: every error type a retry cannot fix fails at once; anything else keeps its retries."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
from airflow.sdk import RetryAction

from pipelines import errors

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dags"))
from _support import DEFAULT_ARGS

pytestmark = pytest.mark.unit

ERRORS = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__]
RETRYABLE = [errors.StageLost]  # a sharded model's worker gone: the next try rebuilds the stage
NOT_RETRYABLE = [cls for cls in ERRORS if cls not in RETRYABLE]


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=lambda cls: cls.__name__)
def test_errors_a_retry_cannot_fix_fail_at_once(error):
    decision = DEFAULT_ARGS["retry_policy"].evaluate(error("boom"), try_number=1, max_tries=3)
    assert decision.action == RetryAction.FAIL


@pytest.mark.parametrize("error", [ConnectionError, TimeoutError, OSError, RuntimeError, *RETRYABLE])
def test_transient_errors_keep_their_retries(error):
    decision = DEFAULT_ARGS["retry_policy"].evaluate(error("boom"), try_number=1, max_tries=3)
    assert decision.action == RetryAction.DEFAULT


def test_every_error_type_is_listed():
    assert {cls.__name__ for cls in NOT_RETRYABLE} == {
        "ConfigError",
        "DataError",
        "QualityGateError",  # a DataError: the policy's DataError rule covers it
        "RegistryError",
        "DefinitionMismatch",  # a RegistryError: the champion was trained with other feature definitions
        "InvariantError",
        "TooFewWorkers",  # a ConfigError: more shards than the cluster has workers (a rebuild waited 120 s for them)
    }
