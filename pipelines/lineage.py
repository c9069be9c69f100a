"""Lineage of the features: which definitions computed a day, trained a version, and may score with it.

A feature's values depend on its definition (a window, a filter, a table's delay), not only on the data. The
definitions are rendered from the config (:func:`definitions`: raw columns, aggregates, derived features, and the
history tables they read, without where those live) and hashed (:func:`definitions_hash`). Four places use it:

- extraction writes the hash into the record of each day's features commit (``definitions``), with the history
  file versions the day could see (``history``), so the lake says what computed each day;
- training recomputes, in memory, the days of its window whose record names other definitions (or none: days
  extracted before lineage was recorded), and records the hash, the rendered list and the history files on the run
  and the version (:class:`pipelines.registry.Tag`);
- batch scoring refuses a champion whose recorded definitions are not the config's (:func:`require_own_definitions`),
  and a day computed with definitions other than the champion's; the model server refuses to load such a version
  (it keeps serving the one it has, and reports the reload error);
- the promotion judges a champion of other definitions on the holdout rows with features of its own definitions,
  rebuilt from its training run's record (:func:`config_with_definitions`).

A version registered before lineage was recorded (no hash tag) is scored with a warning, not refused: refusing
would stop every deployment on upgrade, and its days were computed with whatever the config said then, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from pipelines.errors import DefinitionMismatch

if TYPE_CHECKING:
    from pipelines.config import Config
    from pipelines.registry import ModelRef, Registry

log = logging.getLogger(__name__)

DEFINITIONS = "definitions"  # a features day's record: the hash of the definitions that computed it
HISTORY = "history"  # ... and per history table, the file versions (url -> version) its windows could see
RECORD_ARTIFACT = "lineage/features.json"  # a training run's rendered definitions, hash and history files
HASH_CHARS = 16  # 64 bits of SHA-256: enough to tell definitions apart, short enough to read in an error


def definitions(config: Config) -> dict[str, Any]:
    """The rendered feature definitions: what decides the features' values and order. The history tables' sources
    are left out (moving the files to S3 changes no value); so are row checks (they decide which rows, not values)."""
    dataset = config.dataset
    features = dataset.features
    used = sorted({a.table for a in features.aggregates})
    return {
        "event_time": dataset.event_time,
        "numerical": list(features.numerical),
        "categorical": list(features.categorical),
        "aggregates": [a.model_dump(mode="json") for a in features.aggregates],
        "derived": [[name, text] for name, text in features.derived.items()],  # in order: each may use the earlier
        "history": {name: dataset.history[name].model_dump(mode="json", exclude={"source"}) for name in used},
        "features": features.all,
    }


def definitions_hash(config: Config) -> str:
    """A stable hash of :func:`definitions` (canonical JSON), the same on every machine and Python run."""
    text = json.dumps(definitions(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def files_hash(files: Mapping[str, str]) -> str:
    """A short fingerprint of a history table's file versions (url -> version), as a tag shows it."""
    text = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def stale_days(records: Mapping[date, Mapping[str, Any]], days: list[date], current: str) -> list[date]:
    """Of ``days``, those whose record names definitions other than ``current`` (or none). Pure."""
    return [d for d in days if records.get(d, {}).get(DEFINITIONS) != current]


def history_seen(record: Mapping[str, Any], table: str, current: str) -> dict[str, str] | None:
    """The history file versions (url -> version) of ``table`` a day's record says its windows saw; None for a day
    computed with other definitions than ``current`` (training's business, not late data). Pure."""
    if record.get(DEFINITIONS) != current:
        return None
    return dict(record.get(HISTORY, {}).get(table, {}))


def merged_history(day_history: list[Mapping[str, Mapping[str, str]]]) -> dict[str, dict[str, str]]:
    """Per history table, every file version the days' windows could see (a later day's version of a file wins)."""
    merged: dict[str, dict[str, str]] = {}
    for history in day_history:
        for table, files in history.items():
            merged.setdefault(table, {}).update(files)
    return {table: dict(sorted(files.items())) for table, files in sorted(merged.items())}


def mismatch(name: str, version: str, recorded: str | None, current: str, role: str = "champion") -> str | None:
    """Why the version must not score with the config's definitions (None: it may). Pure."""
    if recorded is None or recorded == current:
        return None
    return (
        f"{role} {name} v{version} was trained with feature definitions {recorded}, but the config's definitions"
        f" are {current}: scoring it would feed it features computed other than it learned. Either train a version"
        f" on the current definitions and promote it (model_training or retraining), or revert dataset.features and"
        f" dataset.history to v{version}'s (its training run's artifact {RECORD_ARTIFACT} lists them)"
    )


def require_own_definitions(registry: Registry, champion: ModelRef, config: Config, role: str = "champion") -> str:
    """The version's recorded definitions hash, which must be the config's (:class:`DefinitionMismatch` names both
    and what to do). A version without one (trained before lineage was recorded) is accepted with a warning."""
    from pipelines.registry import Tag

    current = definitions_hash(config)
    recorded = registry.version(champion.name, champion.version).tags.get(Tag.FEATURE_DEFINITIONS)
    if recorded is None:
        log.warning(
            "%s %s v%s records no feature definitions (trained before lineage was recorded): scoring it with"
            " the config's (%s) unchecked",
            role,
            champion.name,
            champion.version,
            current,
        )
        return current
    problem = mismatch(champion.name, champion.version, recorded, current, role)
    if problem:
        raise DefinitionMismatch(problem)
    return recorded


def require_days_computed_with(records: Mapping[date, Mapping[str, Any]], days: list[date], expected: str) -> None:
    """Refuse days whose features were computed with other definitions than ``expected`` (days without a hash,
    extracted before lineage was recorded, pass). Pure."""
    other = {d: r[DEFINITIONS] for d in days if (r := records.get(d, {})).get(DEFINITIONS) not in (None, expected)}
    if other:
        found = ", ".join(f"{d} ({h})" for d, h in sorted(other.items()))
        raise DefinitionMismatch(
            f"features of {found} were computed with feature definitions other than the champion's ({expected});"
            " extract those days again (feature_extraction) before scoring them"
        )


def config_with_definitions(config: Config, record: Mapping[str, Any], what: str) -> Config:
    """``config`` with the feature definitions of a training run's record (:data:`RECORD_ARTIFACT`) in place of its
    own: what computes a version's features as it learned them, so the promotion can judge an older champion on its
    own features. Each history table is read from where the config says it lives now (the record leaves sources
    out). :class:`DefinitionMismatch` where that config cannot be built: a table the record reads is no longer
    declared, or the rebuilt definitions do not hash to the recorded ones."""
    from pydantic import ValidationError

    rendered = record["definitions"]
    gone = sorted(set(rendered["history"]) - set(config.dataset.history))
    if gone:
        raise DefinitionMismatch(
            f"{what}'s features read history tables {gone}, which the config no longer declares (dataset.history)"
        )
    data = config.dataset.model_dump()
    data["event_time"] = rendered["event_time"]
    data["features"].update(
        numerical=rendered["numerical"],
        categorical=rendered["categorical"],
        aggregates=rendered["aggregates"],
        derived=dict(rendered["derived"]),
    )
    for name, table in rendered["history"].items():
        data["history"][name] = {**table, "source": data["history"][name]["source"]}
    try:
        own = config.model_copy(update={"dataset": config.dataset.model_validate(data)})
    except ValidationError as exc:
        raise DefinitionMismatch(f"{what}'s recorded definitions do not make a valid config today: {exc}") from exc
    if definitions_hash(own) != record["definitions_hash"]:
        raise DefinitionMismatch(
            f"{what}'s recorded definitions rebuild as {definitions_hash(own)}, not {record['definitions_hash']}"
        )
    return own
