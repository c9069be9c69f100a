"""Declared features against a brute-force oracle: every row's aggregates recomputed one row at a time in plain
Python, from the definition (events of the entity with ``cutoff - window <= time < cutoff``)."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from lakes import write_config

from pipelines import aggregates, history
from pipelines.config import Aggregate, Config, load_config

pytestmark = pytest.mark.unit

START = pd.Timestamp("2026-09-01", tz="UTC")
DAYS = 40
WINDOWS = [1, 7, 30]
DELAY_HOURS = 6.0


def _features() -> dict:
    """Every function over two tables (one with an availability delay), a filter, defaults and derived features."""
    functions = ["count", "sum", "mean", "min", "max", "std", "last", "days_since_last"]
    return {
        "numerical": ["income", "loan_amount"],
        "categorical": ["region"],
        "aggregates": [
            {"name": "paid", "table": "payments", "column": "amount", "functions": functions, "windows": WINDOWS},
            {
                "name": "late",
                "table": "payments",
                "column": "amount",
                "functions": ["count", "sum", "mean"],
                "windows": [7, 30],
                "where": "amount > 0 and status == 'late'",
                "default": -1,
            },
            {
                "name": "status",
                "table": "payments",
                "column": "status",
                "functions": ["distinct_count"],
                "windows": [9],
            },
            {"name": "login", "table": "logins", "functions": ["count", "days_since_last"], "windows": [1, 7]},
        ],
        "derived": {"paid_share": "paid_sum_30d / income", "logins_per_late": "login_count_7d / (late_count_30d + 2)"},
    }


def _history() -> dict:
    payments = {"entity": "customer", "event_time": "paid_at", "join_key": "customer_id"}
    payments |= {"numerical": ["amount"], "categorical": ["status"]}
    logins = {"entity": "customer_id", "event_time": "at", "delay_hours": DELAY_HOURS}
    return {"payments": payments, "logins": logins}


def _write_daily(frame: pd.DataFrame, time: str, folder: Path) -> None:
    """One Parquet file per event day, as a feed delivers them (so a range reads only its days' files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for day, part in frame.groupby(frame[time].dt.date):
        part.to_parquet(folder / f"{day}.parquet", index=False)


def _random_history(rng: np.random.Generator, entities: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    seconds = rng.integers(0, DAYS * 86400, n)
    amounts = rng.integers(-20, 80, n) * 0.25  # quarters add exactly in any order: sums and means compare exactly
    payments = pd.DataFrame(
        {
            "customer": [f"C{i}" for i in rng.integers(0, entities, n)],
            "paid_at": START + pd.to_timedelta(seconds, unit="s"),
            "amount": np.where(rng.random(n) < 0.1, np.nan, amounts),
            "status": rng.choice(["ok", "late", "missed"], n),
        }
    )
    m = n // 2
    logins = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in rng.integers(0, entities, m)],
            "at": START + pd.to_timedelta(rng.integers(0, DAYS * 86400, m), unit="s"),
        }
    )
    return payments, logins


def _config(tmp_path: Path) -> Config:
    dataset = {"history": _history(), "features": _features(), "checks": {}}
    dataset["history"]["payments"]["source"] = str(tmp_path / "payments" / "*.parquet")
    dataset["history"]["logins"]["source"] = str(tmp_path / "logins" / "*.parquet")
    return load_config(write_config(tmp_path, tmp_path / "raw", mlflow_store=False, dataset=dataset))


def _rows(rng: np.random.Generator, entities: int, n: int) -> pd.DataFrame:
    """Rows on the last ten days; a few entities have no history at all."""
    seconds = rng.integers((DAYS - 10) * 86400, DAYS * 86400, n)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in rng.integers(0, entities + 5, n)],
            "event_time": START + pd.to_timedelta(seconds, unit="s"),
            "income": rng.integers(0, 5, n) * 1000.0,  # some zero incomes: a division by zero is missing
            "loan_amount": rng.integers(1, 20, n) * 500.0,
            "region": "north",
        }
    )


def _oracle_value(function: str, events: pd.DataFrame, t: pd.Timestamp, column: str | None) -> float | None:
    if function == "count":
        return float(len(events))
    if function == "days_since_last":
        if events.empty:
            return None
        last = events.iloc[:, 1].max()
        return (t.value // 1000 - last.value // 1000) / 86_400_000_000
    values = events.dropna(subset=[column])
    if function == "distinct_count":
        return float(values[column].nunique())
    numbers = values[column].tolist()
    if not numbers:
        return None
    if function == "sum":
        return float(sum(numbers))
    if function == "mean":
        return float(sum(numbers)) / len(numbers)
    if function == "min":
        return float(min(numbers))
    if function == "max":
        return float(max(numbers))
    if function == "std":
        return float(np.std(numbers, ddof=1)) if len(numbers) > 1 else None
    if function == "last":  # the latest event; at equal times the largest value
        time = values.columns[1]
        return float(values.sort_values([time, column]).iloc[-1][column])
    raise AssertionError(function)


def _oracle(config: Config, rows: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each row's features computed alone, from the definition, by filtering the whole history in Python."""
    spec, out = config.dataset.features, []
    filters = {"late": lambda e: (e["amount"] > 0) & (e["status"] == "late")}
    for _, row in rows.iterrows():
        t, values = row["event_time"], {}
        for aggregate in spec.aggregates:
            table = config.dataset.history[aggregate.table]
            events = tables[aggregate.table]
            cutoff = t - pd.Timedelta(hours=table.delay_hours)
            mine = events[events[table.entity] == row[table.on]]
            if aggregate.name in filters:
                mine = mine[filters[aggregate.name](mine)]
            for function in aggregate.functions:
                for window in aggregate.windows:
                    times = mine[table.event_time]
                    inside = mine[(times >= cutoff - pd.Timedelta(days=window)) & (times < cutoff)]
                    value = _oracle_value(function, inside, t, aggregate.column)
                    default = aggregate.default_of(function)
                    values[aggregate.feature(function, window)] = default if value is None else value
        paid = values["paid_sum_30d"] / row["income"] if row["income"] else None
        values["paid_share"] = paid
        values["logins_per_late"] = values["login_count_7d"] / (values["late_count_30d"] + 2)
        out.append(values)
    return pd.DataFrame(out, columns=spec.computed).astype("float64")


def _assert_same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    for column in expected.columns:
        a, b = found[column].to_numpy(), expected[column].to_numpy()
        if column.endswith(("_std_1d", "_std_7d", "_std_30d")):  # DuckDB's one-pass variance differs in the last bits
            np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True, err_msg=column)
        else:
            np.testing.assert_array_equal(a, b, err_msg=column)


@pytest.mark.parametrize("seed", [0, 1])
def test_declared_features_equal_a_brute_force_per_row_computation(tmp_path, seed):
    rng = np.random.default_rng(seed)
    payments, logins = _random_history(rng, entities=15, n=1200)
    _write_daily(payments, "paid_at", tmp_path / "payments")
    _write_daily(logins, "at", tmp_path / "logins")
    config = _config(tmp_path)
    rows = _rows(rng, entities=15, n=80)

    found = aggregates.add_declared(config, rows)

    assert list(found.columns) == [*rows.columns, *config.dataset.features.computed]
    pd.testing.assert_frame_equal(found[rows.columns], rows)
    expected = _oracle(config, rows, {"payments": payments, "logins": logins})
    _assert_same(found[expected.columns], expected)
    assert (found["paid_count_30d"] > 0).any() and (found["paid_count_30d"] == 0).any()
    assert (found["late_mean_7d"] == -1).any(), "the declared default stands for an empty window"


def test_events_at_or_after_the_row_time_change_nothing(tmp_path):
    rng = np.random.default_rng(7)
    payments, logins = _random_history(rng, entities=10, n=800)
    _write_daily(payments, "paid_at", tmp_path / "payments")
    _write_daily(logins, "at", tmp_path / "logins")
    config = _config(tmp_path)
    rows = _rows(rng, entities=10, n=80).drop_duplicates("customer_id", ignore_index=True)  # one row per entity
    before = aggregates.add_declared(config, rows)

    # Events exactly at each row's time (not before it: excluded), and later ones, of the same entities.
    at_row = pd.DataFrame(
        {"customer": rows["customer_id"], "paid_at": rows["event_time"], "amount": 5.0, "status": "late"}
    )
    later = at_row.assign(paid_at=at_row["paid_at"] + pd.Timedelta(minutes=1))
    future = pd.concat([at_row, later], ignore_index=True)
    future.to_parquet(tmp_path / "payments" / "late-arrivals.parquet", index=False)
    logins_at = pd.DataFrame({"customer_id": rows["customer_id"], "at": rows["event_time"] - pd.Timedelta(hours=5)})
    logins_at.to_parquet(tmp_path / "logins" / "within-the-delay.parquet", index=False)

    after = aggregates.add_declared(config, rows)
    pd.testing.assert_frame_equal(after, before)
    # ... while an event just before the cut-off does count.
    just_before = at_row.assign(paid_at=at_row["paid_at"] - pd.Timedelta(seconds=1))
    just_before.to_parquet(tmp_path / "payments" / "just-before.parquet", index=False)
    changed = aggregates.add_declared(config, rows)
    assert (changed["paid_count_1d"] == before["paid_count_1d"] + 1).all()


def test_a_day_reads_only_the_history_files_inside_the_longest_window(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    payments, logins = _random_history(rng, entities=10, n=2000)
    _write_daily(payments, "paid_at", tmp_path / "payments")
    _write_daily(logins, "at", tmp_path / "logins")
    config = _config(tmp_path)
    day = date(2026, 10, 10)
    rows = _rows(rng, entities=10, n=50)
    rows = rows.assign(event_time=pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86400, 50), unit="s"))
    read: list[str] = []
    original = history._read_file
    monkeypatch.setattr(history, "_read_file", lambda url, *a: read.append(url) or original(url, *a))
    aggregates.add_declared(config, rows)
    payment_days = sorted(Path(u).stem for u in read if "/payments/" in u)
    # The longest payments window is 30 days: the day and the 30 before it, of the 40 days held.
    assert len(list((tmp_path / "payments").glob("*.parquet"))) == DAYS
    assert payment_days[0] == "2026-09-10" and payment_days[-1] == "2026-10-10" and len(payment_days) == 31
    login_days = sorted(Path(u).stem for u in read if "/logins/" in u)
    assert login_days == [f"2026-10-{d:02d}" for d in range(2, 11)]  # 7 days + the 6-hour delay


def test_an_empty_frame_gets_the_columns_and_no_history_is_read(tmp_path):
    (tmp_path / "payments").mkdir()
    (tmp_path / "logins").mkdir()
    config = _config(tmp_path)
    rows = _rows(np.random.default_rng(0), entities=3, n=0)
    found = aggregates.add_declared(config, rows)
    assert list(found.columns) == [*rows.columns, *config.dataset.features.computed] and found.empty


def test_the_defaults_of_an_entity_without_events(tmp_path):
    config = _config(tmp_path)
    found = aggregates.defaults(config.dataset.features)
    assert found["paid_count_7d"] == 0 and found["paid_sum_30d"] == 0 and found["late_mean_7d"] == -1
    assert found["paid_mean_30d"] is None and found["login_days_since_last_7d"] is None


def test_the_oracle_catches_a_cut_off_that_includes_the_row_time(tmp_path, monkeypatch):
    """The oracle can fail: an engine whose cut-off includes the row's own time is caught by it."""
    rng = np.random.default_rng(5)
    payments, logins = _random_history(rng, entities=10, n=600)
    rows = _rows(rng, entities=10, n=40)
    at_row = pd.DataFrame(
        {"customer": rows["customer_id"], "paid_at": rows["event_time"], "amount": 2.0, "status": "late"}
    )
    payments = pd.concat([payments, at_row], ignore_index=True)
    _write_daily(payments, "paid_at", tmp_path / "payments")
    _write_daily(logins, "at", tmp_path / "logins")
    config = _config(tmp_path)
    expected = _oracle(config, rows, {"payments": payments, "logins": logins})
    _assert_same(aggregates.add_declared(config, rows)[expected.columns], expected)

    query = aggregates.query
    monkeypatch.setattr(aggregates, "query", lambda found: query(found).replace("< r.cutoff", "<= r.cutoff"))
    with pytest.raises(AssertionError):
        _assert_same(aggregates.add_declared(config, rows)[expected.columns], expected)


def test_sums_means_and_stds_are_the_same_whatever_order_the_events_come_in():
    """Floating-point addition is not associative, and the engine adds a group's events in its join's output order,
    which its threads vary: the demo's payment sums differed in their last bits from run to run, its first model
    trained differently on them and a promotion decision flipped. Each is computed over the values in value order."""
    aggregate = Aggregate(
        name="paid", table="payments", column="amount", functions=["sum", "mean", "std"], windows=[30]
    )
    at = START + pd.Timedelta(days=10)
    rows = aggregates._rows(pd.DataFrame({"customer": ["C1"], "at": [at]}), "customer", "at", 0.0)
    values = [1e16, 1.0, -1e16, 3.0, 0.1]  # added in different orders, different sums (0, 4, 4.1, ...)
    events = pa.table(
        {
            history.ENTITY: ["C1"] * len(values),
            history.TIME: pa.array([at - pd.Timedelta(days=i + 1) for i in range(len(values))], history.UTC_MICROS),
            "amount": values,
        }
    )
    found = {
        tuple(aggregates.point_in_time(rows, events.take(list(order)), [aggregate]).iloc[0])
        for order in itertools.permutations(range(len(values)))
    }
    assert len(found) == 1
