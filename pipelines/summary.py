"""What the lake and the registry hold, read back from the outputs themselves (not from task return values)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines import registry
from pipelines.config import Config
from pipelines.storage import Lake, Table


def lake_summary(config: Config, days: list[date]) -> pd.DataFrame:
    """Per day: rows extracted (valid + quarantined), quarantined, scored, dead-lettered, logged, and by which
    versions."""
    lake = Lake.from_config(config)
    records = []
    for day in days:
        valid, quarantined = lake.count_rows(Table.FEATURES, day), lake.count_rows(Table.QUARANTINE, day)
        scored = lake.count_rows(Table.PREDICTIONS, day)
        dead = lake.count_rows(Table.DEAD_LETTER, day) if scored is not None else None
        logged = lake.count_rows(Table.PREDICTION_LOG, day) if scored is not None else None
        versions = "-"
        if scored:
            frame = lake.read(Table.PREDICTIONS, day, ["model_version"])
            versions = ",".join(sorted(frame["model_version"].astype(str).unique()))
        records.append(
            {
                "date": day.isoformat(),
                "rows_in": (valid or 0) + (quarantined or 0),
                "valid": valid,
                "quarantined": quarantined,
                "scored": scored,
                "dead_letter": dead,
                "logged": logged,
                "model_version": versions,
            }
        )
    return pd.DataFrame.from_records(records).astype(
        {column: "Int64" for column in ("valid", "quarantined", "scored", "dead_letter", "logged")}
    )


def registry_summary(config: Config) -> pd.DataFrame:
    """Every registered version of the configured model with its holdout metric, window and aliases."""
    client = registry.connect(config)
    name = config.model.name
    rows = []
    for found in client.search_model_versions(f"name='{name}'"):
        version = client.get_model_version(name, found.version)  # search results omit aliases
        tags = version.tags or {}
        rows.append(
            {
                "version": int(version.version),
                "aliases": ",".join(sorted(version.aliases)) or "-",
                config.model.metric: tags.get(f"holdout_{config.model.metric}", "-"),
                "window": f"{tags.get('window_start', '?')}..{tags.get('window_end', '?')}",
                "run_id": version.run_id,
            }
        )
    return pd.DataFrame.from_records(rows).sort_values("version") if rows else pd.DataFrame()


def monitoring_summary(config: Config, days: list[date]) -> pd.DataFrame:
    """Per day: the drift share and realized metric of the day's check, and any promotion decision taken that day."""
    client = registry.connect(config)
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
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
    if experiment is None:
        return pd.DataFrame(rows.values())
    for run in client.search_runs([experiment.experiment_id], "tags.kind = 'drift'", max_results=5000):
        row = rows.get(run.data.tags.get("day", ""))
        if row is not None:
            row["drift_share"] = round(run.data.metrics.get("drift_share", float("nan")), 2)
            row[f"realized_{metric}"] = round(run.data.metrics.get(f"realized_{metric}", float("nan")), 3)
    for run in client.search_runs([experiment.experiment_id], "tags.kind = 'promotion'", max_results=5000):
        row = rows.get(run.data.tags.get("day", ""))
        if row is not None:
            m, p = run.data.metrics, run.data.params
            verdict = "promoted" if run.data.tags.get("promoted") == "True" else "kept"
            row["retrained"] = f"v{p.get('challenger_version')}"
            row["decision"] = (
                f"{verdict}: {m.get('challenger_metric', float('nan')):.3f}"
                f" vs {m.get('champion_metric', float('nan')):.3f}"
            )
    return pd.DataFrame(rows.values())
