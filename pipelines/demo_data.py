"""Deterministic synthetic credit-default events for the demo and the tests.

Raw events land as one Parquet file per arrival day; labels arrive in a separate source, later than their events
(``label_delay_days``: a label becomes known 1 to 3 days after its event, as defaults are observed after the loan
is scored), one file per label arrival day, each label carrying its arrival time (``label_time``). Some events
arrive a day late (in the next day's file) and a few rows are broken on purpose, so extraction has to select by
event time and quarantine bad rows. From ``drift_day`` on, two features shift (income falls, credit utilization
rises) and the relation between features and default changes, so a model trained on the early weeks gets
measurably worse.

Each row is a credit decision (``customer_id`` is the row's own key, unique, which the labels join on) for a loan
account (``account_id``). Accounts recur: a day's rows draw from a pool of accounts, so most come back across
days, and a share are new accounts never seen before. Every pooled account pays its installments into a payments
history (``payments/payments-<day>.parquet``, one file per day by payment time, starting ``history_days`` before
the first day, so the 90-day windows are filled from the start): about every one to four weeks, an amount around
the account's own level, and now and then late (``days_late > 0``), more often for riskier accounts. The default
risk depends on that history as the demo's declared features see it (late payments and mean payment over the last
90 days, days since the last payment, no history at all), so the aggregates matter to the model. From
``drift_day`` on, payments turn later and smaller, so the aggregated features drift too, slowly, as their windows
fill with drifted payments.
"""

from __future__ import annotations

import argparse
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REGIONS = ["north", "south", "east", "west", "central"]
EMPLOYMENT = ["salaried", "self_employed", "contractor", "unemployed", "retired"]
PRODUCTS = ["personal", "auto", "mortgage", "credit_card"]


@dataclass(frozen=True)
class DemoSpec:
    start: date = date(2026, 10, 1)
    days: int = 28
    rows_per_day: int = 5000
    drift_day: int = 17  # index of the first drifted day; 17 -> 2026-10-18 with the default start
    seed: int = 42
    late_share: float = 0.01  # events that arrive in the next day's file
    bad_rows_per_day: int = 12
    label_delay_days: tuple[int, int] = (1, 3)  # a label arrives this many whole days after its event day (inclusive)
    accounts_per_row: float = 3.0  # the account pool: this many accounts per row of a day (so accounts recur)
    new_account_share: float = 0.1  # rows of accounts without any payment history (new customers)
    history_days: int = 90  # the payments history starts this many days before ``start``
    history_risk: bool = True  # False: defaults ignore the payments history (for configs that declare no aggregates)

    @property
    def accounts(self) -> int:
        return max(1, round(self.accounts_per_row * self.rows_per_day))


def _draw_features(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    income = rng.lognormal(mean=10.8, sigma=0.5, size=n) * (0.75 if drifted else 1.0)
    utilization = rng.beta(4, 2, size=n) if drifted else rng.beta(2, 3, size=n)
    frame = pd.DataFrame(
        {
            "income": income.round(2),
            "age": np.clip(rng.normal(42, 12, size=n), 18, 90).round(),
            "debt_ratio": (rng.beta(2, 5, size=n) * 1.2).round(4),
            "credit_utilization": utilization.round(4),
            "num_late_payments": rng.poisson(0.6, size=n).astype(float),
            "loan_amount": rng.lognormal(9.5, 0.6, size=n).round(2),
            "tenure_months": rng.integers(1, 240, size=n).astype(float),
            "num_accounts": rng.poisson(4, size=n).astype(float),
            "region": rng.choice(REGIONS, size=n, p=[0.25, 0.2, 0.2, 0.2, 0.15]),
            "employment_type": rng.choice(EMPLOYMENT, size=n, p=[0.55, 0.15, 0.12, 0.08, 0.10]),
            "product": rng.choice(PRODUCTS, size=n, p=[0.35, 0.25, 0.15, 0.25]),
        }
    )
    for column, share in (("income", 0.03), ("debt_ratio", 0.02), ("employment_type", 0.02)):
        frame.loc[rng.random(n) < share, column] = None
    return frame


@functools.lru_cache(maxsize=2)
def _payments(spec: DemoSpec) -> pd.DataFrame:
    """Every pooled account's installments from ``history_days`` before ``start`` to the last day, by payment time.

    An account pays every ``period`` days (7 to 28, its own) from a random phase, a few hours either way; its amount
    varies around the account's level; a payment is late with the account's own probability (riskier accounts more
    often), more often and smaller from ``drift_day`` on. Cached per spec (events and files need the same frame):
    callers must not change it.
    """
    rng = np.random.default_rng([spec.seed, 10**6])
    n, total = spec.accounts, spec.history_days + spec.days
    period = rng.integers(7, 29, size=n).astype(float)
    level = rng.lognormal(5.3, 0.5, size=n)
    late_rate = 0.02 + 0.35 * rng.beta(1.5, 6, size=n)
    steps = np.arange(int(np.ceil(total / 7)) + 1)
    offsets = rng.random(n)[:, None] * period[:, None] + steps[None, :] * period[:, None]  # days from history start
    account, step = np.nonzero(offsets < total)
    days = offsets[account, step] + rng.normal(0, 0.1, size=len(account))
    days = np.clip(days, 0, total - 1e-6)
    drifted = days >= spec.history_days + spec.drift_day
    late = rng.random(len(account)) < late_rate[account] * np.where(drifted, 2.5, 1.0)
    origin = pd.Timestamp(spec.start - timedelta(days=spec.history_days), tz="UTC")
    amount = level[account] * rng.lognormal(0, 0.15, size=len(account)) * np.where(drifted, 0.8, 1.0)
    payments = pd.DataFrame(
        {
            "account_id": pd.Series(account).map("A{:07d}".format),
            "paid_at": (origin + pd.to_timedelta(np.floor(days * 86_400), unit="s")).astype("datetime64[us, UTC]"),
            "amount": amount.round(2),
            "days_late": np.where(late, rng.integers(1, 45, size=len(account)), 0).astype(float),
        }
    )
    return payments.sort_values("paid_at", kind="stable").reset_index(drop=True)


def _history_terms(accounts: pd.Series, times: pd.Series, payments: pd.DataFrame) -> pd.DataFrame:
    """What the ground truth knows of each row's account as of the row's time (the 90 days before it): late
    payments, mean payment, days since the last payment (missing without one)."""
    rows = pd.DataFrame({"account_id": accounts.to_numpy(), "t": times.to_numpy(), "row": np.arange(len(accounts))})
    joined = rows.merge(payments, on="account_id")
    joined = joined[(joined["paid_at"] < joined["t"]) & (joined["paid_at"] >= joined["t"] - pd.Timedelta(days=90))]
    grouped = joined.assign(late=joined["days_late"] > 0).groupby("row")
    terms = pd.DataFrame({"late": grouped["late"].sum().astype(float), "mean_paid": grouped["amount"].mean()})
    terms = terms.reindex(range(len(accounts))).assign(late=lambda f: f["late"].fillna(0.0))
    last = grouped["paid_at"].max().reindex(range(len(accounts)))
    return terms.assign(since=(rows["t"] - last).dt.total_seconds() / 86_400)


def _default_probability(frame: pd.DataFrame, drifted: bool, history: pd.DataFrame | None) -> np.ndarray:
    """Logistic ground truth; after the drift the risk drivers change (a concept change, not only a shift). The
    account's payment history (``history``, see :func:`_history_terms`) adds its own risk, the same before and
    after: late payments, small payments, a long silence, or no history at all. Without it (``None``: the spec's
    ``history_risk`` off) the row's own features are the whole risk, so a model of the raw features alone is as good
    as one can be, and its realized metric varies only by sampling."""
    income = frame["income"].fillna(50_000)
    debt = frame["debt_ratio"].fillna(0.3)
    region = {"north": 0.0, "south": 0.4, "east": -0.2, "west": 0.1, "central": 0.2}
    employment = {"salaried": -0.3, "self_employed": 0.2, "contractor": 0.3, "unemployed": 1.0, "retired": 0.0}
    if drifted:
        region = {"north": 0.6, "south": -0.4, "east": 0.5, "west": -0.3, "central": 0.0}
        employment = {"salaried": 0.2, "self_employed": -0.2, "contractor": 1.0, "unemployed": 0.2, "retired": 0.5}
    logit = (
        -2.0
        + (0.4 if drifted else 2.0) * frame["credit_utilization"]
        + (0.1 if drifted else 0.6) * frame["num_late_payments"]
        + (-1.5 if drifted else 1.8) * debt
        - 0.8 * np.log(income / 50_000)
        - (0.0 if drifted else 0.02) * (frame["age"] - 40)
        + (0.012 if drifted else 0.0) * (frame["tenure_months"] - 120)
        + frame["region"].map(region)
        + frame["employment_type"].map(employment).fillna(0.0)
        + (0.9 if drifted else 0.0) * (frame["product"] == "credit_card")
    )
    if history is None:
        return 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float)))
    known = history["mean_paid"].notna()
    logit = (
        logit
        + 0.6 * history["late"].to_numpy()
        - np.where(known, 0.6 * np.log(history["mean_paid"].fillna(200) / 200), 0.0)
        + np.where(known, 0.03 * history["since"].fillna(0).clip(upper=60), 0.9)
        - 0.6
    )
    return 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float)))


def _break_rows(rng: np.random.Generator, frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """Corrupt a few rows the way real feeds do: out-of-range, infinite, missing key, duplicated key."""
    frame = frame.copy()
    rows = rng.choice(len(frame), size=count, replace=False)
    kinds = np.arange(count) % 4
    for row, kind in zip(rows, kinds, strict=True):
        if kind == 0:
            frame.loc[row, "age"] = -5.0
        elif kind == 1:
            frame.loc[row, "credit_utilization"] = np.inf
        elif kind == 2:
            frame.loc[row, "customer_id"] = None
        else:
            frame.loc[row, "customer_id"] = frame.loc[(row + 1) % len(frame), "customer_id"]
    return frame


def _day_events(spec: DemoSpec, index: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events whose event time falls on day ``index`` and their labels."""
    rng = np.random.default_rng([spec.seed, index])
    n = spec.rows_per_day
    drifted = index >= spec.drift_day
    features = _draw_features(rng, n, drifted)
    day_start = datetime.combine(spec.start + timedelta(days=index), datetime.min.time(), tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    keys = [f"C{index:03d}{i:06d}" for i in range(n)]
    pooled = pd.Series(rng.integers(0, spec.accounts, size=n)).map("A{:07d}".format)
    new = pd.Series([f"N{index:03d}{i:06d}" for i in range(n)])
    accounts = pooled.where(rng.random(n) >= spec.new_account_share, new)
    times = pd.to_datetime(day_start) + pd.to_timedelta(seconds, unit="s")
    events = pd.DataFrame({"customer_id": keys, "account_id": accounts, "event_time": times})
    events = pd.concat([events, features], axis=1)
    history = _history_terms(accounts, pd.Series(times), _payments(spec)) if spec.history_risk else None
    probability = _default_probability(features, drifted, history)
    labels = pd.DataFrame({"customer_id": keys, "defaulted": (rng.random(n) < probability).astype(int)})
    return _break_rows(rng, events, spec.bad_rows_per_day), labels.assign(label_time=_label_times(spec, index, n))


def _label_times(spec: DemoSpec, index: int, n: int) -> pd.Series:
    """When each label of day ``index`` becomes known: a whole number of days in ``label_delay_days`` after the
    event day, at a random time of that day (its own random stream, so the events do not depend on it)."""
    rng = np.random.default_rng([spec.seed, index, 2])
    low, high = spec.label_delay_days
    day_start = pd.Timestamp(spec.start + timedelta(days=index), tz="UTC")
    delay = pd.to_timedelta(rng.integers(low, high + 1, size=n), unit="D")
    return pd.Series(day_start + delay + pd.to_timedelta(rng.integers(0, 86_400, size=n), unit="s"))


def generate(out_dir: str | Path, spec: DemoSpec = DemoSpec()) -> dict[str, int]:
    """Write ``raw/events-<day>.parquet`` for every day, ``labels/labels-<day>.parquet`` for every day labels
    arrive on and ``payments/payments-<day>.parquet`` for every day of the payments history; return row counts.

    An events file named for day D holds most of D's events plus the late share of D-1's, as an arrival feed would;
    a labels file named for day D holds the labels that became known on D (of events 1 to 3 days older).
    """
    out = Path(out_dir)
    for folder in ("raw", "labels", "payments"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    carried = pd.DataFrame()
    rows = 0
    labels = []
    for index in range(spec.days):
        day = spec.start + timedelta(days=index)
        events, day_labels = _day_events(spec, index)
        labels.append(day_labels)
        late = np.random.default_rng([spec.seed, index, 1]).random(len(events)) < spec.late_share
        if index == spec.days - 1:
            late[:] = False
        arriving = pd.concat([carried, events[~late]], ignore_index=True)
        carried = events[late]
        arriving.to_parquet(out / "raw" / f"events-{day.isoformat()}.parquet", index=False)
        rows += len(arriving)
    _write_labels(out / "labels", pd.concat(labels, ignore_index=True))
    payments = _payments(spec)
    for day, part in payments.groupby(payments["paid_at"].dt.date):
        part.reset_index(drop=True).to_parquet(out / "payments" / f"payments-{day.isoformat()}.parquet", index=False)
    log.info("wrote %d raw events over %d days and %d payments to %s", rows, spec.days, len(payments), out)
    return {"days": spec.days, "rows": rows, "payments": len(payments)}


def _write_labels(folder: Path, labels: pd.DataFrame) -> None:
    """One file per day labels arrive on, sorted by key (so each file's key range stays narrow)."""
    arrival = labels["label_time"].dt.date
    for day in sorted(arrival.unique()):
        frame = labels[arrival == day].sort_values("customer_id").reset_index(drop=True)
        frame.to_parquet(folder / f"labels-{day.isoformat()}.parquet", index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data", help="folder for raw/, labels/ and payments/")
    parser.add_argument("--start", type=date.fromisoformat, default=DemoSpec.start)
    parser.add_argument("--days", type=int, default=DemoSpec.days)
    parser.add_argument("--rows-per-day", type=int, default=DemoSpec.rows_per_day)
    parser.add_argument("--drift-day", type=int, default=DemoSpec.drift_day)
    parser.add_argument("--seed", type=int, default=DemoSpec.seed)
    parser.add_argument(
        "--label-delay-days",
        type=int,
        nargs=2,
        default=DemoSpec.label_delay_days,
        metavar=("MIN", "MAX"),
        help="a label arrives MIN to MAX whole days after its event day",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = DemoSpec(
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        drift_day=args.drift_day,
        seed=args.seed,
        label_delay_days=tuple(args.label_delay_days),
    )
    print(generate(args.out, spec))


if __name__ == "__main__":
    main()
