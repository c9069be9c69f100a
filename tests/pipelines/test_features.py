from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lakes import write_config

from pipelines.config import Config, load_config
from pipelines.features import extract_features, source_landed
from pipelines.storage import Lake, Table
from pipelines.validation import REASON, DataError

pytestmark = pytest.mark.unit

DAY = date(2026, 10, 2)


@pytest.fixture
def config(tmp_path: Path, raw_data: Path) -> Config:
    """The test config without an MLflow store: extraction never touches one."""
    return load_config(write_config(tmp_path, raw_data, mlflow_store=False))


def _events(n: int = 6, day: date = DAY) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": [f"K{i}" for i in range(n)],
            "event_time": [start + pd.Timedelta(hours=i) for i in range(n)],
            "income": rng.uniform(20_000, 90_000, n),
            "age": rng.uniform(20, 70, n).round(),
            "debt_ratio": rng.uniform(0, 1, n),
            "credit_utilization": rng.uniform(0, 1, n),
            "num_late_payments": rng.integers(0, 3, n).astype(float),
            "loan_amount": rng.uniform(1000, 20000, n),
            "tenure_months": rng.integers(1, 200, n).astype(float),
            "num_accounts": rng.integers(1, 8, n).astype(float),
            "region": ["north"] * n,
            "employment_type": ["salaried"] * n,
            "product": ["auto"] * n,
        }
    )


def _config(tmp_path: Path, source: str, **overrides: dict):
    raw = tmp_path / "src"
    (raw / "labels").mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path, raw, mlflow_store=False, **overrides)
    text = path.read_text().replace(str(raw / "raw" / "*.parquet"), source)
    path.write_text(text)
    return load_config(path)


def test_demo_day_counts_add_up_and_late_rows_are_selected_by_event_time(config, raw_data):
    result = extract_features(config, DAY)
    features = Lake.from_config(config).read(Table.FEATURES, DAY)
    quarantine = Lake.from_config(config).read(Table.QUARANTINE, DAY)
    assert result.rows_in == result.rows_valid + result.rows_quarantined == 600
    assert (len(features), len(quarantine)) == (result.rows_valid, result.rows_quarantined) == (592, 8)
    assert features["event_time"].dt.date.eq(DAY).all()
    assert features["customer_id"].is_unique
    late = pd.read_parquet(raw_data / "raw" / "events-2026-10-03.parquet")
    late_keys = set(late.loc[late["event_time"].dt.date == DAY, "customer_id"].dropna())
    assert late_keys and late_keys <= set(features["customer_id"]) | set(quarantine["customer_id"].dropna())
    reasons = " ".join(quarantine[REASON])
    for expected in (
        "customer_id: missing",
        "customer_id: duplicate key",
        "age: below the minimum 18",
        "credit_utilization: not finite",
    ):
        assert expected in reasons


def test_rerun_replaces_partitions_without_duplicates(config):
    extract_features(config, DAY)
    lake = Lake.from_config(config)
    first, version = lake.read(Table.FEATURES, DAY), lake.version(Table.FEATURES)
    extract_features(config, DAY)
    second = lake.read(Table.FEATURES, DAY)
    pd.testing.assert_frame_equal(first, second)
    assert lake.count_rows(Table.FEATURES, DAY) == len(second) == 592  # replaced, not appended
    assert lake.version(Table.FEATURES) == version + 1  # in one transaction
    pd.testing.assert_frame_equal(lake.read(Table.FEATURES, DAY, version=version), first)  # history kept


def test_csv_source_with_wrong_types_quarantines_those_rows(tmp_path):
    frame = _events(6).astype({"income": object, "age": object})
    frame.loc[1, "income"] = "unknown"
    frame.loc[2, "age"] = "forty"
    frame.loc[3, "credit_utilization"] = np.inf
    frame.loc[4, "credit_utilization"] = np.nan  # missing is allowed, the model imputes it
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv" / "events.csv", index=False)
    config = _config(tmp_path, str(tmp_path / "csv" / "*.csv"), quality={"max_quarantine_share": 0.5})
    result = extract_features(config, DAY)
    quarantine = Lake.from_config(config).read(Table.QUARANTINE, DAY)
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (6, 3, 3)
    assert sorted(quarantine["customer_id"]) == ["K1", "K2", "K3"]
    assert quarantine.set_index("customer_id").loc["K1", REASON] == "income: not a number"


def test_undated_rows_are_quarantined_not_dropped(tmp_path):
    frame = _events(4).astype({"event_time": object})
    frame.loc[0, "event_time"] = "not a time"
    frame.loc[1, "event_time"] = None
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv" / "events.csv", index=False)
    config = _config(tmp_path, str(tmp_path / "csv" / "*.csv"))
    result = extract_features(config, DAY)
    undated = pd.read_parquet(f"{config.storage.root}/{Table.QUARANTINE}/_undated/events.csv.parquet")
    assert (result.rows_in, result.undated, len(undated)) == (2, 2, 2)
    assert result.rows_in + result.undated == len(frame)


def test_empty_day_fails_with_the_numbers_and_publishes_nothing(config):
    with pytest.raises(DataError, match=r"0 source rows, fewer than quality.min_rows 1.*span 2026-10-01\.\.2026-10-10"):
        extract_features(config, date(2030, 1, 1))
    assert not Lake.from_config(config).exists(Table.FEATURES, date(2030, 1, 1))


def test_a_day_the_source_has_not_reached_is_waited_for_then_overdue(config):
    day_end = datetime(2026, 10, 21, tzinfo=UTC)  # the demo source holds 2026-10-01..10
    assert source_landed(config, date(2026, 10, 10), day_end) is True
    assert source_landed(config, date(2026, 10, 20), day_end + timedelta(hours=11)) is False
    with pytest.raises(
        DataError,
        match=r"no source data for 2026-10-20 in .*raw/\*\.parquet \(events 2026-10-01\.\.2026-10-10, 10 file\(s\)\);"
        r" it was due within schedule.source_wait_minutes=720 after the day ended",
    ):
        source_landed(config, date(2026, 10, 20), day_end + timedelta(hours=13))


def test_empty_day_is_published_when_the_config_allows_it(tmp_path, raw_data):
    config = load_config(write_config(tmp_path, raw_data, quality={"min_rows": 0}))
    result = extract_features(config, date(2030, 1, 1))
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (0, 0, 0)
    assert Lake.from_config(config).read(Table.FEATURES, date(2030, 1, 1)).empty


def test_missing_column_names_file_and_column(tmp_path):
    (tmp_path / "pq").mkdir()
    _events(5).drop(columns=["region"]).to_parquet(tmp_path / "pq" / "events.parquet")
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    with pytest.raises(DataError, match=r"events.parquet: configured column\(s\) \['region'\] not found \(5 rows"):
        extract_features(config, DAY)


def test_source_without_files_is_an_error(tmp_path):
    config = _config(tmp_path, str(tmp_path / "nothing" / "*.parquet"))
    with pytest.raises(DataError, match="matches no files"):
        extract_features(config, DAY)


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "pq").mkdir()
    (tmp_path / "pq" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    with pytest.raises(DataError, match=r"cannot read source file .*broken\.parquet"):
        extract_features(config, DAY)
    assert not Lake.from_config(config).exists(Table.FEATURES, DAY)


# --- history: the files a day reads, late files, volume ------------------------------------------------------


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every source file extraction opens for its rows."""
    import pipelines.features as features

    opened: list[str] = []
    original = features.read_source

    def recording(url, *args, **kwargs):
        opened.append(url.rsplit("/", 1)[-1])
        return original(url, *args, **kwargs)

    monkeypatch.setattr(features, "read_source", recording)
    return opened


def _day_file(directory: Path, name: str, day: date, n: int, first_key: int = 0) -> None:
    frame = _events(n, day).assign(customer_id=[f"K{first_key + i}" for i in range(n)])
    frame.to_parquet(directory / name, index=False)


@pytest.mark.unit
def test_a_day_reads_only_the_files_that_can_hold_it_and_indexes_each_file_once(config, monkeypatch):
    import pipelines.sources as sources

    footers: list[str] = []
    original = sources.footer_range
    monkeypatch.setattr(sources, "footer_range", lambda url, *a, **k: footers.append(url) or original(url, *a, **k))
    opened = _reads(monkeypatch)
    first = extract_features(config, DAY)
    # the day's own file and the next day's, which carries the day's late events; none of the other 8
    assert sorted(opened) == ["events-2026-10-02.parquet", "events-2026-10-03.parquet"]
    assert len(footers) == 10  # every file indexed once, from its footer alone
    opened.clear()
    footers.clear()
    second = extract_features(config, DAY + pd.Timedelta(days=1))
    assert sorted(opened) == ["events-2026-10-03.parquet", "events-2026-10-04.parquet"]
    assert footers == []  # the index already knows every file's version
    assert first.rows_in == 600 and second.rows_in > 0


@pytest.mark.unit
def test_a_late_file_makes_the_extracted_day_stale_until_it_is_extracted_again(tmp_path):
    from pipelines.features import late_days

    (tmp_path / "pq").mkdir()
    _day_file(tmp_path / "pq", "a.parquet", DAY, 6)
    _day_file(tmp_path / "pq", "b.parquet", DAY + pd.Timedelta(days=1), 6, first_key=100)
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    for day in (DAY, DAY + pd.Timedelta(days=1)):
        extract_features(config, day)
    assert late_days(config, DAY + pd.Timedelta(days=2)) == []

    _day_file(tmp_path / "pq", "c-late.parquet", DAY, 3, first_key=200)  # arrives after DAY was extracted
    assert late_days(config, DAY + pd.Timedelta(days=2)) == [DAY]
    assert late_days(config, DAY + pd.Timedelta(days=2)) == [DAY]  # not forgotten until DAY is extracted again
    result = extract_features(config, DAY)
    features = Lake.from_config(config).read(Table.FEATURES, DAY)
    assert result.rows_in == 9 and {"K200", "K201", "K202"} <= set(features["customer_id"])
    assert late_days(config, DAY + pd.Timedelta(days=2)) == []

    _day_file(tmp_path / "pq", "a.parquet", DAY, 7)  # a file rewritten in place is a new version
    assert late_days(config, DAY + pd.Timedelta(days=2)) == [DAY]


@pytest.mark.unit
def test_a_day_far_below_the_usual_volume_fails_with_the_numbers(tmp_path):
    (tmp_path / "pq").mkdir()
    for offset, rows in ((0, 20), (1, 24), (2, 3)):
        _day_file(tmp_path / "pq", f"d{offset}.parquet", DAY + pd.Timedelta(days=offset), rows, first_key=100 * offset)
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    extract_features(config, DAY)
    extract_features(config, DAY + pd.Timedelta(days=1))
    thin = DAY + pd.Timedelta(days=2)
    with pytest.raises(
        DataError, match=r"3 source rows, below quality.min_volume_ratio 0.2 of the median 22 over the 2"
    ):
        extract_features(config, thin)
    assert not Lake.from_config(config).exists(Table.FEATURES, thin)


@pytest.mark.unit
def test_a_quarantine_share_above_the_limit_fails_and_publishes_nothing(tmp_path):
    frame = _events(10)
    frame.loc[:3, "age"] = -1.0
    (tmp_path / "pq").mkdir()
    frame.to_parquet(tmp_path / "pq" / "events.parquet", index=False)
    config = _config(tmp_path, str(tmp_path / "pq" / "*.parquet"))
    with pytest.raises(
        DataError, match=r"4 of 10 rows quarantined \(40.0%\), above quality.max_quarantine_share 10.0%"
    ):
        extract_features(config, DAY)
    assert not Lake.from_config(config).exists(Table.QUARANTINE, DAY)


@pytest.mark.unit
def test_a_day_before_the_configured_start_is_refused(config):
    from pipelines.errors import ConfigError

    with pytest.raises(ConfigError, match=r"2026-09-30 is before schedule.start_date 2026-10-01"):
        extract_features(config, date(2026, 9, 30))


@pytest.mark.unit
def test_an_unreadable_source_index_is_rebuilt(config):
    first = extract_features(config, DAY)
    (Path(config.storage.root) / "_sources" / "events.json").write_text('{"truncated')
    assert extract_features(config, DAY) == first


@pytest.fixture
def declared(tmp_path: Path, raw_data: Path) -> Config:
    """The test config with a payments history and features declared over it."""
    from lakes import declared_features, write_payments

    payments = write_payments(raw_data, tmp_path / "payments")
    return load_config(write_config(tmp_path, raw_data, mlflow_store=False, dataset=declared_features(payments)))


@pytest.mark.unit
def test_declared_features_are_published_with_the_day_and_equal_a_set_built_from_history_at_once(declared):
    from pipelines.aggregates import add_declared

    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    results = [extract_features(declared, day) for day in days]
    assert all(r.rows_in == r.rows_valid + r.rows_quarantined for r in results)
    published = Lake.from_config(declared).read_days(Table.FEATURES, days)
    computed = declared.dataset.features.computed
    assert set(computed) <= set(published.columns) and len(published) == sum(r.rows_valid for r in results)
    assert published["paid_sum_30d"].gt(0).mean() > 0.5 and published["paid_sum_30d"].eq(0).any()  # some are new
    assert published["late_count_30d"].gt(0).any() and published["paid_mean_7d"].isna().any()

    # A training set built from the history in one pass (every row of the three days together): the same values.
    raw = published.drop(columns=computed)
    at_once = add_declared(declared, raw.sample(frac=1, random_state=1)).sort_index()
    pd.testing.assert_frame_equal(at_once[computed], published[computed])


@pytest.mark.unit
def test_a_history_file_without_a_declared_column_is_named(declared, tmp_path):
    frame = pd.DataFrame({"customer": ["C1"], "paid_at": [pd.Timestamp(DAY, tz="UTC")], "amount": [1.0]})
    frame.to_parquet(tmp_path / "payments" / f"payments-{DAY}.parquet", index=False)
    with pytest.raises(DataError, match=rf"payments-{DAY}\.parquet: declared column\(s\) \['days_late', 'channel'\]"):
        extract_features(declared, DAY)


def _payments(folder: Path, name: str, rows: list[tuple]) -> None:
    """A payments file of ``(customer, paid_at, amount)`` rows (days_late 0, channel card); a None is missing."""
    frame = pd.DataFrame(rows, columns=["customer", "paid_at", "amount"])
    frame["paid_at"] = pd.to_datetime(frame["paid_at"], utc=True)
    frame.assign(days_late=0, channel="card").to_parquet(folder / name, index=False)


@pytest.mark.unit
def test_history_rows_without_key_or_time_are_quarantined_per_table_once(declared, tmp_path):
    from pipelines.history import QUARANTINE_FOLDER, accounting, index

    folder, noon = tmp_path / "payments", pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(hours=12)
    rows = [("C1", noon, 10.0), (None, noon, 20.0), ("C2", None, 30.0), (None, None, 40.0), ("C3", noon, 50.0)]
    _payments(folder, "payments-bad.parquet", rows)  # nulls in the time column: the footer cannot settle it
    written = sum(len(pd.read_parquet(f)) for f in folder.glob("*.parquet"))

    first = extract_features(declared, DAY)
    table = accounting(index(declared, "payments").values())
    assert table == {"rows_in": written, "rows_valid": written - 3, "rows_quarantined": 3}
    seen = first.history["payments"]  # the files inside the day's windows, the bad one among them
    assert seen["rows_in"] == seen["rows_valid"] + seen["rows_quarantined"] and seen["rows_quarantined"] == 3
    quarantined = pd.read_parquet(
        f"{declared.storage.root}/{Table.QUARANTINE}/{QUARANTINE_FOLDER}/payments/payments-bad.parquet.parquet"
    )
    assert sorted(quarantined["amount"].astype(float)) == [20.0, 30.0, 40.0]
    assert sorted(quarantined[REASON]) == ["customer: missing key", *["paid_at: missing or unparseable"] * 2]
    assert extract_features(declared, DAY).history == first.history  # a rerun: the same rows, quarantined once

    _payments(folder, "payments-bad.parquet", rows[:1])  # the file fixed in place: its quarantine goes with it
    extract_features(declared, DAY)
    assert accounting(index(declared, "payments").values())["rows_quarantined"] == 0
    assert not list((Path(declared.storage.root) / Table.QUARANTINE / QUARANTINE_FOLDER / "payments").iterdir())


@pytest.mark.unit
def test_a_late_history_file_makes_the_days_whose_windows_it_reaches_due_again(declared, tmp_path):
    from pipelines.features import late_days

    days = [DAY, DAY + timedelta(days=1)]
    for day in days:
        extract_features(declared, day)
    today = DAY + timedelta(days=2)
    assert late_days(declared, today) == []
    before = Lake.from_config(declared).read(Table.FEATURES, DAY)
    row = before[before["event_time"] > pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(hours=2)].iloc[0]

    # A payment of the row's customer before the day, landing after both days were extracted: both see it.
    _payments(tmp_path / "payments", "payments-late.parquet", [(row["customer_id"], pd.Timestamp(DAY, tz="UTC"), 1e4)])
    _payments(tmp_path / "payments", "payments-future.parquet", [("C1", pd.Timestamp(today, tz="UTC"), 1.0)])
    assert late_days(declared, today) == days  # the future payment reaches no extracted day
    assert late_days(declared, today) == days  # not forgotten until the days are extracted again
    for day in days:
        extract_features(declared, day)
    assert late_days(declared, today) == []
    after = Lake.from_config(declared).read(Table.FEATURES, DAY).set_index("customer_id").loc[row["customer_id"]]
    assert after["paid_sum_30d"] == row["paid_sum_30d"] + 1e4


@pytest.mark.unit
def test_training_computes_again_the_days_extracted_with_other_definitions(declared, tmp_path):
    import yaml

    from pipelines.training import window_features

    days = [DAY, DAY + timedelta(days=1)]
    for day in days:
        extract_features(declared, day)
    stored, used = window_features(declared, days)
    assert used.recomputed == [] and set(used.history) == {"payments"} and used.history["payments"]

    raw = yaml.safe_load((tmp_path / "config.yaml").read_text())
    raw["dataset"]["features"]["aggregates"][0]["windows"] = [7, 30, 90]  # a definition changed
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(raw))
    changed = load_config(tmp_path / "changed.yaml")
    recomputed, used = window_features(changed, days)
    assert used.recomputed == days and "paid_sum_90d" in recomputed.columns and "paid_sum_90d" not in stored
    pd.testing.assert_frame_equal(recomputed[stored.columns], stored, check_dtype=False)  # the rest is unchanged

    for day in days:  # extracted again with the new definitions: read, not computed
        extract_features(changed, day)
    published, used = window_features(changed, days)
    assert used.recomputed == []
    pd.testing.assert_frame_equal(published[recomputed.columns], recomputed, check_dtype=False)
