"""The Feast feature store of the declared aggregates: generated from the config, fed from the lake, read online.

One Feast repository per model (``feature_store.repo/<model.name>``: its ``feature_store.yaml``, registry and, by
default, the SQLite online store), generated from the config, never written by hand:

- an entity per join key of the history tables (``customer_id``), its values served as text;
- a feature view per entity over the lake's features table (a Delta table, Feast's ``FileSource`` with
  ``DeltaFormat``: the offline store is the lake itself), holding that entity's aggregates, timed by the rows'
  event time, with no expiry;
- the online store: SQLite in the repository, or what ``feature_store.online_store`` says (Redis in the stack).

After a day is extracted, :func:`materialize_day` applies the definitions (a no-op when unchanged) and materializes
the day's rows into the online store: per entity, the aggregates of its latest row, as the batch path computed them
for that row. :class:`OnlineLookup` then answers the model server: for each request row, its entity's aggregates,
or, for an entity the store lacks, the declared defaults (the values a row without history gets in batch), counted
as missing. The derived features are computed by the caller from the request's own fields, as in batch.

Feast is imported inside these functions only: a DAG file that parses this module loads nothing heavy.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from pipelines.aggregates import by_table, defaults
from pipelines.config import Config
from pipelines.sources import day_bounds
from pipelines.storage import Lake, Table

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


def _name(text: str) -> str:
    """A Feast object name: letters, digits and underscores."""
    return re.sub(r"\W", "_", text)


def repo_path(config: Config) -> Path:
    return Path(config.feature_store.repo) / config.model.name


def views(config: Config) -> dict[str, list[str]]:
    """Per join key, the aggregates served by it (one entity and one feature view each)."""
    found: dict[str, list[str]] = {}
    for table, aggregates in by_table(config.dataset.features).items():
        on = config.dataset.history[table].on
        found.setdefault(on, []).extend(name for a in aggregates for name in a.outputs)
    return found


def view_name(config: Config, join_key: str) -> str:
    return _name(f"{config.model.name}__{join_key}")


def repo_settings(config: Config) -> dict[str, Any]:
    """``feature_store.yaml`` of the model's repository, as a mapping."""
    path = repo_path(config)
    online = config.feature_store.online_store or {"type": "sqlite", "path": str(path / "online.db")}
    return {
        "project": _name(config.model.name),
        "provider": "local",
        "registry": str(path / "registry.db"),
        "online_store": dict(online),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }


def definitions(config: Config) -> list[Any]:
    """The entities and feature views of the model's declared aggregates."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_format import DeltaFormat
    from feast.types import Float64

    lake = Lake.from_config(config)
    source = FileSource(
        name=_name(f"{config.model.name}__features"),
        path=lake.table_url(Table.FEATURES),
        file_format=DeltaFormat(),
        timestamp_field=config.dataset.event_time,
        s3_endpoint_override=config.storage.options.get("endpoint_url"),
    )
    objects: list[Any] = []
    for join_key, features in views(config).items():
        entity = Entity(name=_name(join_key), join_keys=[join_key], value_type=ValueType.STRING)
        view = FeatureView(
            name=view_name(config, join_key),
            entities=[entity],
            schema=[Field(name=name, dtype=Float64) for name in features],
            source=source,
            ttl=timedelta(0),  # no expiry: an entity keeps its latest row's aggregates until a newer row replaces them
            online=True,
        )
        objects += [entity, view]
    return objects


def open_store(config: Config) -> FeatureStore:
    """The model's Feast store with the current definitions applied (the repository is written if missing)."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    path = repo_path(config)
    path.mkdir(parents=True, exist_ok=True)
    settings = repo_settings(config)
    (path / "feature_store.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    store = FeatureStore(config=RepoConfig(repo_path=str(path), **settings))
    store.apply(definitions(config))
    return store


def materialize_day(config: Config, day: date) -> dict[str, Any]:
    """Materialize the day's rows of the features table into the online store; what was written, for XCom."""
    if not config.online_features:
        return {"day": day.isoformat(), "materialized": False}
    store = open_store(config)
    start, end = day_bounds(day)
    names = [view_name(config, key) for key in views(config)]
    store.materialize(start_date=start, end_date=end, feature_views=names)
    rows = Lake.from_config(config).count_rows(Table.FEATURES, day) or 0
    log.info("materialized %s (%d rows) into %s", day, rows, repo_path(config))
    return {"day": day.isoformat(), "materialized": True, "rows": rows, "views": names}


def _absent(response: Any, rows: int) -> list[bool]:
    """Per request row, whether the store lacks its entity: no feature of the view has an event time.

    Not the statuses alone: Feast's SQLite store answers a key it lacks as ``NOT_FOUND``, its Redis store as
    ``PRESENT`` with empty values (its hash has no fields); both leave the event time unset, which a materialized
    row always has (the time of the row it came from).
    """
    times = [result.event_timestamps for result in response.results]
    return [all(t[i].seconds == 0 and t[i].nanos == 0 for t in times) for i in range(rows)]


@dataclass
class Lookup:
    """The aggregates of a batch of request rows (one column per feature, defaults filled in) and, per row, whether
    the store lacked its entity."""

    values: pd.DataFrame
    absent: list[bool]

    @property
    def missing(self) -> int:
        """How many rows' entities the store lacked."""
        return sum(self.absent)


class OnlineLookup:
    """Reads the online store for the model server: one Feast call per entity kind per batch of rows, each entity
    asked once however many rows of the batch carry it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = open_store(config)
        self.views = views(config)
        self.defaults = defaults(config.dataset.features)

    def lookup(self, rows: list[dict[str, Any]]) -> Lookup:
        columns: dict[str, list[Any]] = {}
        missing = [False] * len(rows)
        for join_key, features in self.views.items():
            keys = [None if row.get(join_key) is None else str(row[join_key]) for row in rows]
            unique = list(dict.fromkeys(keys))
            where = {key: i for i, key in enumerate(unique)}
            index = [where[key] for key in keys]
            refs = [f"{view_name(self.config, join_key)}:{name}" for name in features]
            response = self.store.get_online_features(features=refs, entity_rows=[{join_key: k} for k in unique])
            found = response.to_dict()
            gone = _absent(response.proto, len(unique))
            for name in features:
                default, values = self.defaults[name], found[name]
                columns[name] = [default if gone[i] else values[i] for i in index]
            missing = [m or gone[i] for m, i in zip(missing, index, strict=True)]
        frame = pd.DataFrame(columns, index=range(len(rows)), dtype="float64")
        return Lookup(values=frame, absent=missing)
