"""The lake: one object knows where a table lives; a missing partition is bad input, named."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.storage import Lake, Table

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 18)


def test_lake_addresses_tables_by_name_and_day(tmp_path):
    lake = Lake(f"{tmp_path}/lake/")
    assert lake.partition(Table.FEATURES, DAY) == f"{tmp_path}/lake/features/date=2026-10-18"
    with pytest.raises(DataError, match=r"partition .*/lake/features/date=2026-10-18 does not exist"):
        lake.read(Table.FEATURES, DAY)
    assert lake.count_rows(Table.FEATURES, DAY) is None and lake.days(Table.FEATURES) == []
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1, 2, 3]}))
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [4, 5]}))  # replaces, never appends
    staging = lake.new_staging(Table.FEATURES, date(2026, 10, 19))  # staged, not published: not a day of the table
    assert lake.read(Table.FEATURES, DAY)["k"].tolist() == [4, 5] and lake.count_rows(Table.FEATURES, DAY) == 2
    assert lake.days(Table.FEATURES) == [DAY]
    lake.discard(staging)
    assert lake.read_days(Table.FEATURES, [DAY, DAY])["k"].tolist() == [4, 5, 4, 5]
