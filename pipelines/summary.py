"""What the lake and the registry hold, read back from the outputs themselves (not from task return values)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines import registry, storage
from pipelines.config import Config
from pipelines.features import FEATURES, QUARANTINE
from pipelines.scoring import PREDICTIONS


def _rows(config: Config, table: str, day: date) -> int | None:
    if not storage.partition_exists(config.storage.root, table, day, config.storage.options):
        return None
    return storage.count_rows(storage.partition_url(config.storage.root, table, day), config.storage.options)


def lake_summary(config: Config, days: list[date]) -> pd.DataFrame:
    """Per day: rows extracted (valid + quarantined), quarantined, scored, and the model versions that scored them."""
    records = []
    for day in days:
        valid, quarantined = _rows(config, FEATURES, day), _rows(config, QUARANTINE, day)
        scored = _rows(config, PREDICTIONS, day)
        versions = "-"
        if scored:
            frame = storage.read_partition(config.storage.root, PREDICTIONS, day, config.storage.options, ["model_version"])
            versions = ",".join(sorted(frame["model_version"].astype(str).unique()))
        records.append(
            {
                "date": day.isoformat(),
                "rows_in": (valid or 0) + (quarantined or 0),
                "valid": valid,
                "quarantined": quarantined,
                "scored": scored,
                "model_version": versions,
            }
        )
    return pd.DataFrame.from_records(records).astype({"valid": "Int64", "quarantined": "Int64", "scored": "Int64"})


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
