"""Where a sharded model's stages go: the cut of its layers into stages, and the worker each stage lives on.

Pure decisions over plain numbers (each layer's parameter bytes, each worker's resources and ``memory_limit``), so
they are tested in milliseconds; :mod:`pipelines.sharding` gathers those numbers and acts on the answers.

The fit rule is fixed, not measured: a worker may give at most :data:`WEIGHT_SHARE` of its ``memory_limit`` to one
model's weights. The rest is the interpreter and its libraries (about 0.4 GiB with torch, pandas and MLflow
imported), the row group, the activations in flight, and Dask's own margins (it pauses a worker at 80 % of its
limit and kills it at 95 %). A rule on the memory a worker uses at the moment would refuse the second day of a run
that fitted the first (a worker keeps the model it loaded in its cache).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipelines.errors import ConfigError, TooFewWorkers

WEIGHT_SHARE = 0.5
GPU = "GPU"  # the Dask resource a GPU worker declares (pipelines.cluster.GPU; not imported: that imports Dask)
MIB = 2**20


@dataclass(frozen=True)
class WorkerSlot:
    """What placement needs to know about one Dask worker (from the scheduler's worker info)."""

    address: str
    memory_limit: int = 0  # bytes; 0: no limit declared
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def weight_room(self) -> float:
        """Bytes of one model's weights this worker may hold (unbounded without a memory limit)."""
        return self.memory_limit * WEIGHT_SHARE if self.memory_limit else math.inf

    @property
    def has_gpu(self) -> bool:
        return bool(self.resources.get(GPU))


def cut_layers(layer_bytes: Sequence[int], shards: int) -> list[range]:
    """``shards`` contiguous ranges of layer indices covering every layer, the largest stage as small as it can be.

    A layer without parameters (an activation) stays with the layer before it, so every stage holds weights; the
    cut is the classic linear partition (dynamic programming over the layers with weights, a few hundred at most).
    """
    units = _units(layer_bytes)
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if shards > len(units):
        raise ConfigError(
            f"scoring.shards {shards}: the network has {len(units)} layers with weights, so it cannot be cut into"
            f" more than {len(units)} stages"
        )
    sizes = [size for _, size in units]
    largest, _ = _partition(sizes, shards, cap=None)
    # Among the cuts with that largest stage, the most even one (least sum of squares): 400 | 200 | 210, not
    # 400 | 100 | 310.
    _, bounds = _partition(sizes, shards, cap=largest)
    starts = [units[i][0].start for i in bounds[:-1]]
    return [range(a, b) for a, b in zip(starts, [*starts[1:], len(layer_bytes)], strict=True)]


def _partition(sizes: Sequence[int], shards: int, cap: float | None) -> tuple[float, list[int]]:
    """The linear partition of ``sizes`` into ``shards`` non-empty runs (dynamic programming, shards x units^2):
    without ``cap``, the one with the smallest largest run; with it, the one with the least sum of squared runs
    among those whose runs are all at most ``cap``. Returns the objective and the run boundaries."""
    prefix = [0, *itertools.accumulate(sizes)]
    n = len(sizes)
    best = [[math.inf] * (n + 1) for _ in range(shards + 1)]  # best[k][j]: the first j units as k runs
    cut = [[0] * (n + 1) for _ in range(shards + 1)]
    best[0][0] = 0
    for k in range(1, shards + 1):
        for j in range(k, n - (shards - k) + 1):
            for i in range(k - 1, j):
                run = prefix[j] - prefix[i]
                if cap is None:
                    value = max(best[k - 1][i], run)
                else:
                    value = best[k - 1][i] + run**2 if run <= cap else math.inf
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    bounds = [n]
    for k in range(shards, 0, -1):
        bounds.append(cut[k][bounds[-1]])
    return best[shards][n], bounds[::-1]


def _units(layer_bytes: Sequence[int]) -> list[tuple[range, int]]:
    """Each layer with weights and the weightless layers after it (leading weightless layers join the first)."""
    heads = [i for i, size in enumerate(layer_bytes) if size > 0]
    if not heads:
        raise ValueError("the network has no layer with weights")
    starts = [0, *heads[1:]]
    ends = [*heads[1:], len(layer_bytes)]
    return [(range(a, b), sum(layer_bytes[a:b])) for a, b in zip(starts, ends, strict=True)]


def place_stages(
    stage_bytes: Sequence[int], workers: Sequence[WorkerSlot], gpu: bool, taken: Sequence[str] = ()
) -> list[str]:
    """A distinct worker for each stage: GPU workers first when the model runs on GPUs, then the most room for
    weights; each stage only where its weights fit. ``taken`` are workers already holding a stage (kept by a
    rebuild), never given a second one. Raises a :class:`ConfigError` that names the sizes when no placement fits
    (:class:`TooFewWorkers` when there are fewer free workers than stages).
    """
    free = [w for w in workers if w.address not in taken]
    if len(free) < len(stage_bytes):
        raise TooFewWorkers(
            f"scoring.shards: {len(stage_bytes)} stage(s) to place, each on its own Dask worker, but only"
            f" {len(free)} worker(s) are free ({len(workers)} in the cluster, {len(taken)} holding a stage already)"
        )
    preference = sorted(free, key=lambda w: (gpu and not w.has_gpu, -w.weight_room, w.address))
    placed: list[str] = []
    for stage, size in enumerate(stage_bytes):  # in stage order: stage 0 on the most preferred worker
        fitting = [w for w in preference if w.address not in placed and size <= w.weight_room]
        if not fitting:
            rooms = ", ".join(f"{w.address}: {_mib(w.weight_room)}" for w in preference)
            raise ConfigError(
                f"stage {stage} of the sharded model holds {_mib(size)} of weights and no free worker has room"
                f" for it (at most {WEIGHT_SHARE:.0%} of a worker's memory_limit; {rooms}); raise scoring.shards"
                " or the workers' memory_limit"
            )
        placed.append(fitting[0].address)
    return placed


def check_whole_model_fits(model_bytes: int, workers: Sequence[WorkerSlot]) -> None:
    """Unsharded, every worker that may score loads the whole model: refuse (naming the shards it would take)
    rather than let Dask kill worker after worker for exceeding its memory limit."""
    small = [w for w in workers if model_bytes > w.weight_room]
    if not small:
        return
    room = min(w.weight_room for w in small)
    raise ConfigError(
        f"the model holds {_mib(model_bytes)} of weights, more than {len(small)} Dask worker(s) may hold (at most"
        f" {WEIGHT_SHARE:.0%} of a worker's memory_limit: {_mib(room)} on {small[0].address}); set scoring.shards"
        f" to at least {math.ceil(model_bytes / room)} to cut it across workers, or raise their memory_limit"
    )


def _mib(size: float) -> str:
    return "unbounded" if math.isinf(size) else f"{size / MIB:,.0f} MiB"
