"""The lake: Delta tables addressed by name and day; a day replaced in one transaction, never seen half-written."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from lakes import append_while_overwriting, rewrite_while_reading

from pipelines.errors import DataError
from pipelines.storage import Lake, Table
from pipelines.table_format import delta_options

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 18)


def test_lake_addresses_tables_by_name_and_day(tmp_path):
    lake = Lake(f"{tmp_path}/lake/")
    assert lake.partition(Table.FEATURES, DAY) == f"{tmp_path}/lake/features/date=2026-10-18"
    with pytest.raises(DataError, match=r"partition .*/lake/features/date=2026-10-18 does not exist"):
        lake.read(Table.FEATURES, DAY)
    assert lake.count_rows(Table.FEATURES, DAY) is None and lake.days(Table.FEATURES) == []
    assert lake.version(Table.FEATURES) is None
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1, 2, 3]}))
    first = lake.version(Table.FEATURES)
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [4, 5]}))  # replaces, never appends
    lake.write(Table.FEATURES, DAY + timedelta(days=1), pd.DataFrame({"k": pd.Series([], dtype="int64")}))
    assert lake.read(Table.FEATURES, DAY)["k"].tolist() == [4, 5] and lake.count_rows(Table.FEATURES, DAY) == 2
    assert lake.days(Table.FEATURES) == [DAY, DAY + timedelta(days=1)]  # a day of no rows is a day written
    assert lake.read(Table.FEATURES, DAY + timedelta(days=1)).empty
    assert lake.count_rows(Table.FEATURES, DAY + timedelta(days=1)) == 0
    assert lake.read_days(Table.FEATURES, [DAY, DAY])["k"].tolist() == [4, 5, 4, 5]
    assert (Path(lake.table_url(Table.FEATURES)) / "_delta_log").is_dir()
    # every version stays readable
    assert lake.read(Table.FEATURES, DAY, version=first)["k"].tolist() == [1, 2, 3]
    assert lake.days(Table.FEATURES, version=first) == [DAY]


def test_types_follow_the_table_and_a_mismatch_names_the_column(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    times = pd.to_datetime(["2026-10-18 01:00:00.123456789"], utc=True)
    first = pd.DataFrame({"k": ["a"], "x": [1.5], "c": pd.Categorical(["u"]), "t": times})
    lake.write(Table.FEATURES, DAY, first)
    lake.write(Table.FEATURES, DAY + timedelta(days=1), pd.DataFrame({"k": ["b"], "x": [2], "extra": [True]}))
    both = lake.read_days(Table.FEATURES, [DAY, DAY + timedelta(days=1)])
    assert both["x"].tolist() == [1.5, 2.0] and both["x"].dtype == "float64"  # the int day takes the table's type
    assert both["c"].tolist()[0] == "u" and both["t"].iloc[0] == pd.Timestamp("2026-10-18 01:00:00.123456", tz="UTC")
    assert both["extra"].isna().tolist() == [True, False]  # a column added later reads as missing on older days
    assert str(lake.read(Table.FEATURES, DAY, categories=["c"])["c"].dtype) == "category"
    with pytest.raises(DataError, match=r"features 2026-10-20: column x holds string, the table holds double"):
        lake.write(Table.FEATURES, DAY + timedelta(days=2), pd.DataFrame({"k": ["c"], "x": ["high"]}))


def test_a_day_of_no_rows_exists_and_sets_no_types(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    nothing = pd.DataFrame({"k": pd.Series([], dtype=object), "prediction": pd.Series([], dtype="float64")})
    lake.write(Table.PREDICTIONS, DAY, nothing)  # pandas' float for no predictions is a guess, not the table's type
    assert lake.days(Table.PREDICTIONS) == [DAY] and lake.count_rows(Table.PREDICTIONS, DAY) == 0
    assert lake.read(Table.PREDICTIONS, DAY, ["k"]).empty  # its text column is the table's from the start
    lake.write(Table.PREDICTIONS, DAY + timedelta(days=1), pd.DataFrame({"k": ["a"], "prediction": [1]}))
    assert lake.schema(Table.PREDICTIONS).field("prediction").type == pa.int64()  # the first rows set it
    lake.commit(Table.PREDICTIONS, DAY + timedelta(days=2), [])  # a day replaced by no rows: empty, typed as the table
    empty = lake.read(Table.PREDICTIONS, DAY + timedelta(days=2))
    assert empty.empty and list(empty.columns) == ["k", "prediction"] and empty["prediction"].dtype == "int64"


def test_history_and_log_times_say_what_was_written_when(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1]}), record={"rows_in": 1})
    lake.write(Table.FEATURES, DAY + timedelta(days=1), pd.DataFrame({"k": [2]}), record={"rows_in": 7})
    first = lake.commits(Table.FEATURES)
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [3, 4]}), record={"rows_in": 2})
    commits = lake.commits(Table.FEATURES)
    assert commits[DAY].record == {"rows_in": 2} and commits[DAY].version > first[DAY].version
    assert commits[DAY + timedelta(days=1)] == first[DAY + timedelta(days=1)]
    written = lake.written_at(Table.FEATURES)
    assert set(written) == {DAY, DAY + timedelta(days=1)} and written[DAY] >= written[DAY + timedelta(days=1)]
    assert written[DAY] == pytest.approx(commits[DAY].at, abs=5)
    assert lake.written_at(Table.PREDICTIONS) == {} and lake.commits(Table.PREDICTIONS) == {}


def test_the_commits_of_some_days_are_those_of_the_whole_history(tmp_path):
    """Looked for in pages of the newest commits: a day written long before is still found, one never written is
    not, and each is its newest commit."""
    lake = Lake(str(tmp_path / "lake"))
    days = [DAY + timedelta(days=k) for k in range(30)]
    for n, day in enumerate(days):
        lake.write(Table.FEATURES, day, pd.DataFrame({"k": [n]}), record={"rows_in": n})
    lake.write(Table.FEATURES, days[3], pd.DataFrame({"k": [99]}), record={"rows_in": 99})
    every = lake.commits(Table.FEATURES)
    wanted = [days[0], days[3], days[-1], DAY - timedelta(days=1)]
    assert lake.commits(Table.FEATURES, wanted) == {d: every[d] for d in wanted[:3]}
    assert lake.commits(Table.FEATURES, [days[3]])[days[3]].record == {"rows_in": 99}
    assert lake.commits(Table.PREDICTIONS, wanted) == {}


def test_a_version_read_is_the_open_table_when_it_is_the_newest(tmp_path):
    """A reader pinning the newest version to read several things from it reuses the table this thread has open
    (a load of its own replays the log); an older version is loaded as it was."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1]}))
    pinned = lake.version(Table.FEATURES)
    assert lake._open(Table.FEATURES, pinned) is lake._open(Table.FEATURES)
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [2, 3]}))
    assert lake.read_days(Table.FEATURES, [DAY], version=pinned)["k"].tolist() == [1]
    assert lake._open(Table.FEATURES, pinned).version() == pinned < lake.version(Table.FEATURES)


def test_several_days_replaced_in_one_commit(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    days = [DAY + timedelta(days=k) for k in range(3)]
    lake.write(Table.PERFORMANCE, days[0], pd.DataFrame({"v": [0.1]}))
    lake.write(Table.PERFORMANCE, days[2], pd.DataFrame({"v": [0.3]}))
    before = lake.version(Table.PERFORMANCE)
    lake.write_days(Table.PERFORMANCE, {days[1]: pd.DataFrame({"v": [0.2, 0.25]}), days[0]: pd.DataFrame({"v": [1.0]})})
    assert lake.version(Table.PERFORMANCE) == before + 1  # one transaction for both days
    assert lake.read_days(Table.PERFORMANCE, days)["v"].tolist() == [1.0, 0.2, 0.25, 0.3]  # the third day untouched
    commits = lake.commits(Table.PERFORMANCE)
    assert commits[days[0]].version == commits[days[1]].version == before + 1 and commits[days[2]].version == before
    with pytest.raises(DataError, match="dated other than"):
        lake.write_days(Table.PERFORMANCE, {days[0]: pd.DataFrame({"v": [2.0], "date": [days[1].isoformat()]})})
    with pytest.raises(ValueError, match="one at a time"):
        lake.write_days(Table.PREDICTION_LOG, {days[0]: pd.DataFrame({"v": [2.0]})})


def test_uncommitted_files_are_in_no_version(tmp_path):
    """Files written and never committed (a failed scoring run) are not read, counted or listed; only a commit
    publishes them, and replacing the day removes the day's previous files from the newest version."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write(Table.PREDICTIONS, DAY, pd.DataFrame({"k": ["a", "b"]}))
    orphan = lake.write_file(Table.PREDICTIONS, DAY, "failed-00000.parquet", pd.DataFrame({"k": ["x", "y", "z"]}))
    assert Path(lake.table_url(Table.PREDICTIONS), orphan.path).exists()
    assert (
        lake.read(Table.PREDICTIONS, DAY)["k"].tolist() == ["a", "b"] and lake.count_rows(Table.PREDICTIONS, DAY) == 2
    )
    assert len(lake.files(Table.PREDICTIONS, DAY)) == 1
    parts = [
        lake.write_file(Table.PREDICTIONS, DAY, f"run-{i:05d}.parquet", pd.DataFrame({"k": [f"n{i}"]})) for i in (0, 1)
    ]
    lake.commit(Table.PREDICTIONS, DAY, parts)
    assert lake.read(Table.PREDICTIONS, DAY)["k"].tolist() == ["n0", "n1"]
    assert [u.rsplit("/", 1)[-1] for u in lake.files(Table.PREDICTIONS, DAY)] == [
        "run-00000.parquet",
        "run-00001.parquet",
    ]


def test_an_opened_table_is_read_at_its_newest_version_and_a_table_made_again_afresh(tmp_path):
    """Tables stay open per thread between reads: commits made elsewhere (another process's writer) are seen on the
    next read, and a table deleted and made again at the same place is loaded afresh, not updated from the old."""
    import shutil

    from deltalake import write_deltalake

    lake = Lake(str(tmp_path / "lake"))
    lake.write(Table.FEATURES, DAY, pd.DataFrame({"k": [1, 2]}))
    assert lake.read(Table.FEATURES, DAY)["k"].tolist() == [1, 2]
    other = pa.table({"k": [7], "date": [(DAY + timedelta(days=1)).isoformat()]})
    write_deltalake(lake.table_url(Table.FEATURES), other, mode="append", partition_by=["date"])
    assert lake.days(Table.FEATURES) == [DAY, DAY + timedelta(days=1)]
    shutil.rmtree(lake.table_url(Table.FEATURES))
    for k in range(3):  # the new table reaches versions the old one held, with other files in them
        lake.write(Table.FEATURES, DAY + timedelta(days=k + 5), pd.DataFrame({"k": [10 + k]}))
    assert lake.days(Table.FEATURES) == [DAY + timedelta(days=k + 5) for k in range(3)]
    assert lake.read(Table.FEATURES, DAY + timedelta(days=6))["k"].tolist() == [11]
    shutil.rmtree(lake.table_url(Table.FEATURES))
    assert lake.version(Table.FEATURES) is None and lake.days(Table.FEATURES) == []


def test_a_reader_sees_the_old_day_or_the_new_one_never_a_mix(tmp_path):
    reads, seen = rewrite_while_reading(Lake(str(tmp_path / "lake")), DAY)
    assert reads > 0 and seen >= 2  # the reader overlapped the rewrites, and every read was one whole version


def test_online_appends_and_a_batch_rerun_keep_each_others_rows(tmp_path):
    append_while_overwriting(Lake(str(tmp_path / "lake")), DAY)


def test_duckdb_reads_the_lake_as_it_is(tmp_path):
    """DuckDB's SQL over a lake table, through the table's pyarrow dataset (DuckDB's own delta extension is a
    download): the newest version only, so a rewritten day is not counted twice although its old file remains."""
    import duckdb
    from deltalake import DeltaTable

    lake = Lake(str(tmp_path / "lake"))
    days = [DAY + timedelta(days=i) for i in range(3)]
    for i, day in enumerate(days):
        lake.write(Table.FEATURES, day, pd.DataFrame({"customer_id": [f"c{i}-{j}" for j in range(10 * (i + 1))]}))
    lake.write(Table.FEATURES, days[0], pd.DataFrame({"customer_id": ["again"]}))
    features = DeltaTable(lake.table_url(Table.FEATURES)).to_pyarrow_dataset()  # noqa: F841 (DuckDB finds it by name)
    counts = duckdb.sql("SELECT date, count(*) FROM features GROUP BY date ORDER BY date").fetchall()
    assert (
        counts
        == [(d.isoformat(), lake.count_rows(Table.FEATURES, d)) for d in days]
        == [
            ("2026-10-18", 1),
            ("2026-10-19", 20),
            ("2026-10-20", 30),
        ]
    )


def test_storage_options_for_delta_rs():
    options = {
        "endpoint_url": "http://127.0.0.1:9000",
        "key": "k",
        "secret": "s",
        "client_kwargs": {"region_name": "eu"},
    }
    assert delta_options(options) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu",
        "AWS_ALLOW_HTTP": "true",
    }
    assert delta_options({"endpoint_url": "https://s3.example", "AWS_S3_ADDRESSING_STYLE": "path"}) == {
        "AWS_ENDPOINT_URL": "https://s3.example",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }
    assert delta_options({}) == {}


def test_reports_are_files_replaced_whole(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first, second, back = (tmp_path / n for n in ("first", "second", "back"))
    for folder, names in ((first, ["a.html", "old.json"]), (second, ["a.html"]), (back, [])):
        folder.mkdir()
        for name in names:
            (folder / name).write_text(f"{folder.name}:{name}")
    lake.put_files(Table.REPORTS, DAY, first)
    url = lake.put_files(Table.REPORTS, DAY, second)
    assert sorted(p.name for p in Path(url).iterdir()) == ["a.html"]
    assert [p.read_text() for p in lake.get_files(Table.REPORTS, DAY, back)] == ["second:a.html"]
