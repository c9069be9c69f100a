"""Which arm answers a key: pure functions of the stable key hash that the prediction log already samples by.

The prediction log keeps a key when ``hash % 10_000`` falls below its rate; the release split uses the next
digits of the same hash (``hash // 10_000 % 10_000``), so a key's arm is the same in every process and restart,
and the challenger's keys are not the logged keys (the two choices are independent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.predict import HASH_BUCKETS, in_sample, key_hashes

CHAMPION_ARM = "champion"
CHALLENGER_ARM = "challenger"
SHADOW_ARM = "shadow"


def to_challenger(keys: pd.Series, share: float) -> np.ndarray:
    """True for the keys the canary or A/B split sends to the challenger (about ``share`` of all keys)."""
    buckets = (key_hashes(keys) // HASH_BUCKETS) % HASH_BUCKETS
    return buckets < round(share * HASH_BUCKETS)


def logged(keys: pd.Series, rate: float) -> np.ndarray:
    """The keys the prediction log keeps: the batch path's own sample, so both paths log the same keys."""
    return in_sample(key_hashes(keys), rate)
