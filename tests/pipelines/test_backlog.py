"""What is due for scoring or a drift check: the pure rule, and the modification times it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipelines.backlog import _modified_at, stale

D1, D2, D3, D4 = (date(2026, 10, d) for d in (1, 2, 3, 4))


@pytest.mark.unit
def test_stale_days_are_new_or_rewritten_after_their_output():
    written = {D3: 30.0, D1: 10.0, D2: 20.0, D4: None}
    done = {D1: 15.0, D2: 5.0, D4: 1.0}  # D1 done after its input; D2 before; D3 never; D4's time is unknown
    assert stale(written, done) == [D2, D3]


@pytest.mark.unit
def test_a_day_processed_once_is_not_due_again():
    assert stale({D1: 10.0}, {D1: 10.5}) == []
    assert stale({D1: 11.0}, {D1: 10.5}) == [D1]  # rewritten (re-extracted, rescored) after: due again


@pytest.mark.unit
def test_modification_time_from_local_and_s3_listings():
    assert _modified_at({"name": "x", "mtime": 1700000000.5}) == 1700000000.5
    s3 = datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert _modified_at({"name": "x", "LastModified": s3}) == s3.timestamp()
    assert _modified_at({"name": "x"}) is None
