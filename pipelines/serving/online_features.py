"""Request rows completed with their declared features: the aggregates looked up in the feature store, the derived
features computed from the row's own fields, as the batch path computes them.

With declared aggregates (and ``feature_store.enabled``), a request carries the key, the join keys and the raw
features only (:mod:`pipelines.serving.schema`); the server's batcher completes a whole batch of requests' rows here
before predicting it (one store call per batch, not per request), so both arms, the log and the model see the same
columns a feature row has in the lake. An entity the store lacks gets the
aggregates' declared defaults (the values a row without history gets in batch) and is counted, never an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.aggregates import derive
from pipelines.config import Config


class OnlineFeatures:
    """The model's feature-store reader (opened by :meth:`start`, in a thread: Feast loads slowly)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lookup: Any = None

    def start(self) -> None:
        from pipelines.feature_store import OnlineLookup

        self._lookup = OnlineLookup(self.config)

    def complete(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bool]]:
        """``rows`` with every declared feature added (new dicts), and per row whether the store lacked its entity.

        The server calls it once per batch (:class:`pipelines.serving.engine.Batcher`), with every queued request's
        rows: one Feast call per entity kind, whatever the number of requests."""
        found = self._lookup.lookup(rows)
        features = self.config.dataset.features
        own = pd.DataFrame({c: [row.get(c) for row in rows] for c in features.numerical}, dtype="float64")
        values = pd.concat([own, found.values], axis=1)
        if features.derived:
            values = derive(values, features)
        computed = values[features.computed].to_numpy(dtype=np.float64)
        names = features.computed
        completed = [{**row, **dict(zip(names, computed[i].tolist(), strict=True))} for i, row in enumerate(rows)]
        return completed, found.absent
