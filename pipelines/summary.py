"""What the lake and the registry hold, read back from the outputs themselves (not from task return values)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines.config import Config
from pipelines.performance import read_performance
from pipelines.registry import Registry, RunKind, Tag, connect, holdout_metric
from pipelines.storage import Lake, Table


def lake_summary(config: Config, days: list[date]) -> pd.DataFrame:
    """Per day: rows extracted (valid + quarantined), quarantined, scored, dead-lettered, logged, and by which
    versions. One pass over each table's log and one read of the predictions' versions, whatever the days: a year's
    summary asked the logs per day and took ~25 s."""
    lake = Lake.from_config(config)
    tables = (Table.FEATURES, Table.QUARANTINE, Table.PREDICTIONS, Table.DEAD_LETTER, Table.PREDICTION_LOG)
    counts = {table: lake.rows_by_day(table) for table in tables}
    scored_days = [d for d in days if counts[Table.PREDICTIONS].get(d)]
    scored = lake.read_days(Table.PREDICTIONS, scored_days, ["model_version", "date"])
    versions = {
        str(day): ",".join(sorted(frame.astype(str).unique())) for day, frame in scored.groupby("date")["model_version"]
    }
    records = []
    for day in days:
        valid, quarantined, dead, logged = (counts[t].get(day) for t in tables if t != Table.PREDICTIONS)
        scored_rows = counts[Table.PREDICTIONS].get(day)
        records.append(
            {
                "date": day.isoformat(),
                "rows_in": (valid or 0) + (quarantined or 0),
                "valid": valid,
                "quarantined": quarantined,
                "scored": scored_rows,
                "dead_letter": dead if scored_rows is not None else None,
                "logged": logged if scored_rows is not None else None,
                "model_version": versions.get(day.isoformat(), "-"),
            }
        )
    return pd.DataFrame.from_records(records).astype(
        {column: "Int64" for column in ("valid", "quarantined", "scored", "dead_letter", "logged")}
    )


def feature_summary(config: Config, days: list[date]) -> pd.DataFrame:
    """Per day, the mean of each declared feature over the day's extracted rows (aggregates, then derived; missing
    values left out), and the share of rows whose entity had no event in the window (an unfiltered
    ``days_since_last`` without a default is missing then); empty without declared features."""
    features = config.dataset.features
    if not features.computed:
        return pd.DataFrame()
    since = [
        a.feature("days_since_last", max(a.windows))
        for a in features.aggregates
        if "days_since_last" in a.functions and not a.where and a.default is None
    ]
    lake = Lake.from_config(config)
    extracted = lake.rows_by_day(Table.FEATURES)  # one pass over the log, not one per day
    records = []
    for day in days:
        frame = lake.read(Table.FEATURES, day, features.computed) if extracted.get(day) else None
        if frame is None or frame.empty:
            continue
        record = {"date": day.isoformat(), **frame.mean().round(2).to_dict()}
        if since:
            record["no_history"] = f"{frame[since[0]].isna().mean():.0%}"
        records.append(record)
    return pd.DataFrame.from_records(records)


def registry_summary(config: Config, registry: Registry | None = None) -> pd.DataFrame:
    """Every registered version of the configured model with its holdout metric, window and aliases."""
    registry = registry or connect(config)
    rows = [
        {
            "version": int(version.version),
            "aliases": ",".join(version.aliases) or "-",
            config.model.metric: version.tags.get(holdout_metric(config.model.metric), "-"),
            "window": f"{version.tags.get(Tag.WINDOW_START, '?')}..{version.tags.get(Tag.WINDOW_END, '?')}",
            "run_id": version.run_id,
        }
        for version in registry.versions(config.model.name)
    ]
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def performance_summary(
    config: Config, days: list[date], ages: int = 4, registry: Registry | None = None
) -> pd.DataFrame:
    """Per scored day, from the performance table and its MLflow runs: the model version, the share of its rows
    labeled 0, 1, ... ``ages - 1`` days after it was scored (how the labels arrived), and the realized metric with
    its interval as known now."""
    metric = config.model.metric
    table = {str(r["date"]): r for r in read_performance(config, days).to_dict("records")}
    registry = registry or connect(config)
    shares: dict[str, dict[int, float]] = {}
    for run in registry.find_runs(RunKind.PERFORMANCE, **{Tag.MODEL_NAME: config.model.name}):
        history = registry.metric_history(run.run_id, "label_share")
        shares[run.tags[Tag.DAY]] = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
    rows = []
    for day in days:
        key, row = day.isoformat(), table.get(day.isoformat())
        seen = shares.get(key, {})
        record = {"date": key, "model_version": row["model_version"] if row else "-"}
        for age in range(ages):  # the share after `age` days: the last update on or before then
            at = [seen[a] for a in sorted(seen) if a <= age]
            record[f"labeled_{age}d"] = f"{at[-1]:.0%}" if at else "-"
        if row:
            value, low, high = row["value"], row["ci_low"], row["ci_high"]
            record["labeled"] = f"{int(row['labeled_rows'])}/{int(row['scored_rows'])}"
            record[f"realized_{metric}"] = round(value, 3) if pd.notna(value) else None
            record["interval"] = f"[{low:.3f}, {high:.3f}]" if pd.notna(low) else "-"
            estimate, e_low, e_high = (row.get(f"estimated_{k}", float("nan")) for k in ("value", "ci_low", "ci_high"))
            record[f"estimated_{metric}"] = round(estimate, 3) if pd.notna(estimate) else None  # from the day's scores
            record["estimated_interval"] = f"[{e_low:.3f}, {e_high:.3f}]" if pd.notna(e_low) else "-"
            record["labels_as_of"] = row["labels_as_of"]
        rows.append(record)
    return pd.DataFrame(rows)


def monitoring_summary(config: Config, days: list[date], registry: Registry | None = None) -> pd.DataFrame:
    """Per day: the drift share of the day's check, the day's realized metric as known now (from the performance
    table: labels arrive after the check), and any promotion decision taken that day."""
    registry = registry or connect(config)
    metric = config.model.metric
    rows = {
        d.isoformat(): {
            "date": d.isoformat(),
            "drift_share": None,
            f"realized_{metric}": None,
            "retrained": "-",
            "decision": "-",
        }
        for d in days
    }
    of_model = {Tag.MODEL_NAME: config.model.name}
    for run in registry.find_runs(RunKind.DRIFT, **of_model):
        row = rows.get(run.tags.get(Tag.DAY, ""))
        if row is not None:
            row["drift_share"] = round(run.metrics.get("drift_share", float("nan")), 2)
    for record in read_performance(config, days).to_dict("records"):
        row = rows.get(str(record["date"]))
        if row is not None:
            row[f"realized_{metric}"] = round(record["value"], 3)
    for run in registry.find_runs(RunKind.PROMOTION, **of_model):
        row = rows.get(run.tags.get(Tag.DAY, ""))
        if row is not None:
            m, p = run.metrics, run.params
            verdict = "promoted" if run.tags.get(Tag.PROMOTED) == "True" else "kept"
            row["retrained"] = f"v{p.get('challenger_version')}"
            row["decision"] = (
                f"{verdict}: {m.get('challenger_metric', float('nan')):.3f}"
                f" vs {m.get('champion_metric', float('nan')):.3f}"
            )
    return pd.DataFrame(rows.values())
