"""History at constant cost: the schedule and quality sections, the source index's choices, labels by key range."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipelines import sources
from pipelines.config import QualityConfig, ScheduleConfig
from pipelines.errors import ConfigError
from pipelines.features import extract_features
from pipelines.quality import volume_problems
from pipelines.training import read_labels

DAY = date(2026, 10, 2)


@pytest.mark.unit
def test_volume_problems_name_their_numbers():
    quality = QualityConfig()
    assert volume_problems(5000, 12, [4900, 5100, 5000], quality) == []
    assert volume_problems(0, 0, [], quality) == ["0 source rows, fewer than quality.min_rows 1"]
    assert volume_problems(900, 0, [5000, 4000, 6000], quality) == [
        "900 source rows, below quality.min_volume_ratio 0.2 of the median 5000 over the 3 preceding extracted day(s)"
    ]
    assert volume_problems(100, 11, [], quality) == [
        "11 of 100 rows quarantined (11.0%), above quality.max_quarantine_share 10.0%"
    ]
    assert volume_problems(0, 0, [10], QualityConfig(min_rows=0, min_volume_ratio=0)) == []


@pytest.mark.unit
def test_schedule_section_validates_crons_and_refuses_days_before_the_start():
    schedule = ScheduleConfig(start_date=date(2018, 3, 1), retraining_cron=None)
    schedule.require_day(date(2018, 3, 1))
    with pytest.raises(ConfigError, match=r"2018-02-28 is before schedule.start_date 2018-03-01"):
        schedule.require_day(date(2018, 2, 28))
    ScheduleConfig().require_day(date(1990, 1, 1))  # no start: any day
    with pytest.raises(ValueError, match="5-field cron"):
        ScheduleConfig(retraining_cron="weekly")
    with pytest.raises(ValueError, match="once per day"):
        ScheduleConfig(extraction_cron="0 0 * * 1")


@pytest.mark.unit
def test_file_choice_by_range():
    hour = 3_600 * 10**9
    start = pd.Timestamp(DAY, tz="UTC").value
    entries = [
        sources.FileEntry("a", "1", 5, start - 2 * hour, start - hour),  # the day before
        sources.FileEntry("b", "1", 5, start - hour, start),  # ends at the day's first instant
        sources.FileEntry("c", "1", 5, start + 24 * hour, start + 30 * hour),  # starts at the next day
        sources.FileEntry("d", "1", 5, None, None),  # only undated rows
    ]
    assert [e.url for e in sources.overlapping(entries, DAY)] == ["b"]
    assert sources.landed(entries[:1], DAY - pd.Timedelta(days=1)), "events on the day"
    assert sources.landed(entries[:1], DAY - pd.Timedelta(days=5)), "events after the day: a gap, not yet to come"
    assert not sources.landed(entries[:1], DAY), "the source has not reached the day yet"
    assert not sources.landed(entries[3:], DAY), "undated rows say nothing about the day"
    keyed = [
        sources.FileEntry("k1", "1", 5, "C001000000", "C001004999"),
        sources.FileEntry("k2", "1", 5, "C002000000", "C002004999"),
        sources.FileEntry("k3", "1", 5, None, None),  # no range: always read
    ]
    assert [e.url for e in sources.holding_keys(keyed, ["C002000007", "C009"])] == ["k2", "k3"]


@pytest.mark.unit
def test_footer_ranges_only_when_the_statistics_settle_it(tmp_path):
    times = pd.to_datetime(["2026-10-01 05:00", "2026-10-02 07:00"])
    pd.DataFrame({"t": times, "k": ["b", "a"]}).to_parquet(tmp_path / "naive.parquet")
    entry = sources.footer_range(str(tmp_path / "naive.parquet"), "t", "time")
    assert (entry.rows, entry.low, entry.high) == (
        2,
        times[0].tz_localize("UTC").value,
        times[1].tz_localize("UTC").value,
    )
    assert sources.footer_range(str(tmp_path / "naive.parquet"), "k", "key").low == "a"
    pd.DataFrame({"t": [times[0], None]}).to_parquet(tmp_path / "nulls.parquet")  # undated rows need a read
    assert sources.footer_range(str(tmp_path / "nulls.parquet"), "t", "time") is None
    pd.DataFrame({"t": ["2026-10-01"]}).to_parquet(tmp_path / "text.parquet")  # strings: parsed, not compared
    assert sources.footer_range(str(tmp_path / "text.parquet"), "t", "time") is None


@pytest.mark.unit
def test_labels_for_a_day_read_only_the_label_files_that_can_hold_its_keys(config, monkeypatch):
    import pipelines.training as training

    extract_features(config, DAY)
    keys = pd.read_parquet(f"{config.storage.root}/features/date={DAY}")["customer_id"]
    everything = read_labels(config)
    opened: list[str] = []
    original = training.read_source
    monkeypatch.setattr(
        training, "read_source", lambda url, *a, **k: opened.append(url.rsplit("/", 1)[-1]) or original(url, *a, **k)
    )
    training._LABEL_FILES.clear()  # a new process: nothing parsed yet
    labels = read_labels(config, keys)
    # of 12 label files (one per arrival day): the day's labels arrive 1 to 3 days after it
    assert opened == ["labels-2026-10-03.parquet", "labels-2026-10-04.parquet", "labels-2026-10-05.parquet"]
    expected = everything[everything["customer_id"].isin(set(keys))]
    pd.testing.assert_frame_equal(labels.reset_index(drop=True), expected.reset_index(drop=True))
    assert len(labels) == len(keys)

    # The files are kept parsed for the process (a run of days asks for them several times a day) until they change.
    pd.testing.assert_frame_equal(read_labels(config, keys), labels)
    assert len(opened) == 3
    changed = Path(config.dataset.labels).parent / "labels-2026-10-04.parquet"
    rows = pd.read_parquet(changed)
    rows.assign(defaulted=1 - rows["defaulted"]).to_parquet(changed, index=False)
    os.utime(changed, (time.time() + 5, time.time() + 5))  # a new version, whatever the clock's resolution
    again = read_labels(config, keys)
    assert opened[3:] == ["labels-2026-10-04.parquet"]
    flipped = again.merge(labels, on="customer_id", suffixes=("", "_before"))
    assert (flipped["defaulted"] != flipped["defaulted_before"]).sum() == len(rows[rows["customer_id"].isin(keys)])
