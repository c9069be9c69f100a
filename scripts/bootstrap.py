"""`make bootstrap`: a new dataset from raw history to a trained champion and scored days, in one command.

For the config in ``MLOPS_CONFIG``: the source is indexed to find the days it holds (from ``schedule.start_date``,
or the first day with events, to the last day with events; ``--from``/``--to`` narrow it). The first
``training.window_days`` days are extracted and the first model is trained on them with every label known up to the
last day bootstrapped (it becomes ``champion``; labels arrive late, and over history they have arrived by now);
then every later day is extracted, scored and checked for drift, and a retraining that drift monitoring triggers
is run, as the scheduler would. The real DAGs run with ``dag.test()`` in this process, on one Dask cluster
(``DASK_SCHEDULER_ADDRESS`` if set), with scripts/demo.py's runner; each run is recorded in the Airflow database.
Nothing is deleted: rerunning replaces the days' partitions; an existing champion is kept (no first training).

History runs in runs of days (the DAGs' ``through`` Param), not one run per DAG per day: Airflow's fixed cost of a
run and its task instances (~0.1 s a task) was most of a day's cost at a few thousand rows. One extraction run
takes every day; then up to ``--days-per-run`` days at a time are scored by the champion and checked, each day decided
in turn; a check that retrains stops its run there, the retraining runs, and the next run starts the day after it
(the days already scored after it are scored again by the new champion, as daily runs would have scored them). A
run of days that fails is redone one day per run, so a bad day fails alone and the others go on.

How long a run of days is (:func:`next_run_length`): each pair of runs costs ~2 s of its own (Airflow's run and
task instances, the scoring submission), so long runs are cheap; but the days a run scores after a retraining are
scored again, and retrainings come in bursts (a drift keeps firing until a challenger wins, ``cooldown_days``
apart). So after a retraining the next run is short, and each run that retrains nothing doubles the next, up to
``--days-per-run``.

The drift runs defer their HTML reports (``defer_reports``): Evidently's drawing is pure Python, ~0.6 s a day, and
nothing decided reads it. A process of its own draws each run's reports a week at a time
(scripts/render_reports.py) while the next runs go on, on the CPU the in-process DAG runs leave idle; the bootstrap
waits for it at the end, with every core, so every checked day has its report in the lake and in its MLflow run, as
one drawn at once.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import nullcontext
from datetime import date, timedelta

from demo import Runs, load_dags, print_summary, run_days, run_triggered_retraining
from render_reports import render

from pipelines import registry, sources
from pipelines.backlog import already_checked
from pipelines.cluster import local_cluster
from pipelines.config import Config, config_path, load_config
from pipelines.features import index_events
from pipelines.storage import Lake, Table


def history_days(config: Config, first: date | None, last: date | None) -> list[date]:
    """The days to load: the source's span, cut to ``schedule.start_date`` and the requested bounds."""
    span = sources.span(index_events(config).values())
    if span is None:
        raise SystemExit(f"source {config.dataset.source} holds no dated events")
    lower = max(d for d in (span[0], config.schedule.start_date, first) if d is not None)
    upper = min(d for d in (span[1], last) if d is not None)
    days = [lower + timedelta(days=i) for i in range((upper - lower).days + 1)]
    if len(days) <= config.training.window_days:
        raise SystemExit(
            f"{len(days)} day(s) from {lower} to {upper}: the first training needs training.window_days "
            f"({config.training.window_days}) days and at least one more to score"
        )
    return days


def has_champion(config: Config) -> bool:
    try:
        registry.require_alias(registry.connect(config), config.model.name)
    except registry.RegistryError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day (default: the data's)")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day (default: the data's)")
    parser.add_argument(
        "--days-per-run",
        type=int,
        default=56,
        help="most days scored and checked per DAG run (1: one run per day); shorter after a retraining",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    config = load_config()
    name = config.model.name
    os.environ.setdefault("MLOPS_CONFIG", str(config_path()))  # the DAGs of this config only (parsed just below)
    days = history_days(config, args.first, args.last)
    warmup, scored = days[: config.training.window_days], days[config.training.window_days :]
    print(f"bootstrap {config.model.name}: {days[0]}..{days[-1]}, first training on {warmup[0]}..{warmup[-1]}")
    started = time.monotonic()
    runs = Runs(load_dags(), strict=False)
    external = os.environ.get("DASK_SCHEDULER_ADDRESS") or config.scoring.scheduler_address
    with nullcontext() if external else local_cluster() as cluster:
        if cluster is not None:
            os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        for day in warmup:
            runs(f"feature_extraction__{name}", day)
        if has_champion(config):
            print(f"  {config.model.name} already has a champion: no first training")
        elif not runs(
            f"model_training__{name}",
            warmup[-1],
            date=warmup[-1].isoformat(),
            reason="bootstrap: first model",
            labels_as_of=days[-1].isoformat(),  # history: its labels are known now, not only those of then
        ):
            return _failed(runs.failed, "no first model: nothing can be scored")
        drawing = Drawing()
        champions = load_history(runs, config, scored, max(1, args.days_per_run), drawing)
        waited = time.monotonic()
        drawn = drawing.finish(runs.failed)
        print(f"  {drawn} drift report(s) drawn in processes of their own; waited {time.monotonic() - waited:.1f}s")
    print_summary(config, days, scored, champions, time.monotonic() - started)
    return _failed(runs.failed) if runs.failed else 0


class Drawing:
    """Draws the deferred drift reports of each run of days in a process of its own (spawned: no copy of this
    process's Airflow and Dask threads) while the bootstrap goes on, a week of days at a time; at the end, the weeks
    not started yet are shared with one more process per other core.

    One process while the runs go on: drawing a report (~0.6 s of Evidently and plotly) costs about what checking its
    day does, and a second drawing process slowed the runs more than it drew (a year: 478 s against 451 s). But one
    falls behind, and the bootstrap waited ~60 s at the end for it to draw the last runs on one core while the
    others idled."""

    PIECE = 7  # days a drawing takes at a time

    def __init__(self) -> None:
        self.spawn = multiprocessing.get_context("spawn")
        self.pools = [ProcessPoolExecutor(max_workers=1, mp_context=self.spawn)]
        self.drawing: list[tuple[list[date], Future]] = []

    def submit(self, days: list[date]) -> None:
        for start in range(0, len(days), self.PIECE):
            piece = days[start : start + self.PIECE]
            self.drawing.append((piece, self.pools[0].submit(render, str(config_path()), piece)))

    def finish(self, failed: list[str]) -> int:
        """Wait for every drawing, the weeks not started yet drawn by every core; the reports drawn. A drawing that
        failed joins ``failed``, naming its days."""
        waiting = [i for i, (_, future) in enumerate(self.drawing) if future.cancel()]
        if len(waiting) > 1 and (os.cpu_count() or 1) > 1:
            self.pools.append(ProcessPoolExecutor(max_workers=(os.cpu_count() or 2) - 1, mp_context=self.spawn))
        for n, i in enumerate(waiting):  # taken back before they started: the pools take turns
            days = self.drawing[i][0]
            self.drawing[i] = (days, self.pools[n % len(self.pools)].submit(render, str(config_path()), days))
        drawn = 0
        for days, future in self.drawing:
            try:
                drawn += len(future.result())
            except Exception as error:  # noqa: BLE001 (reported with the failed runs; the others are kept)
                failed.append(f"drawing the drift reports of {days[0]}..{days[-1]} failed: {error!r}")
        for pool in self.pools:
            pool.shutdown()
        return drawn


def load_history(runs: Runs, config: Config, days: list[date], per_run: int, drawing: Drawing) -> dict[str, str]:
    """Extract, score and check ``days`` in runs of days, running each retraining a check triggers before the days
    after it are scored, and handing each run's reports to ``drawing``; returns each day's champion after its
    checks, as :func:`demo.run_days` does."""
    name = config.model.name
    failures = len(runs.failed)
    if not runs(f"feature_extraction__{name}", days[0], through=days[-1]):  # the other days are published
        del runs.failed[failures:]  # superseded: the days it did not publish are redone one per run, and named
        lake = Lake.from_config(config)
        for day in [d for d in days if not lake.exists(Table.FEATURES, d)]:
            runs(f"feature_extraction__{name}", day)
    champions: dict[str, str] = {}
    start, length = 0, per_run
    while start < len(days):
        chunk = days[start : start + length]
        champion = f"v{registry.require_alias(registry.connect(config), name).version}"
        failures = len(runs.failed)
        if not (
            runs(f"batch_scoring__{name}", chunk[0], through=chunk[-1])
            and runs(f"drift_monitoring__{name}", chunk[0], through=chunk[-1], defer_reports=True)
        ):
            del runs.failed[failures:]  # superseded: the days are redone one per run, and a failing day says so
            unchecked = [d for d in chunk if not already_checked(config, d)]
            drawing.submit([d for d in chunk if d not in unchecked])  # what it checked before it failed
            print(f"  that run of days failed: its {len(unchecked)} unchecked day(s) again, one run per day")
            champions.update({d.isoformat(): champion for d in chunk if d not in unchecked})
            champions.update(run_days(runs, config, unchecked, extract=False))
            start += len(chunk)
            continue
        retrained = run_triggered_retraining(runs, name, chunk[-1])
        done = chunk[: chunk.index(retrained) + 1] if retrained in chunk else chunk  # the days after it: again
        drawing.submit(done)  # the days it checked: each is drawn by one drawing only
        champions.update({d.isoformat(): champion for d in done})
        if retrained in chunk:
            champions[retrained.isoformat()] = f"v{registry.require_alias(registry.connect(config), name).version}"
        start += len(done)
        length = next_run_length(length, per_run, retrained=retrained in chunk)
    return champions


FIRST_AFTER_RETRAINING = 7  # days: a week's run after a retraining, then doubling


def next_run_length(length: int, most: int, retrained: bool) -> int:
    """The next run of days' length: short after a retraining (its days are scored again if another retraining
    follows soon), doubled after a run that retrained nothing; at most ``most``. Pure."""
    return min(most, FIRST_AFTER_RETRAINING if retrained else 2 * length)


def _failed(failures: list[str], outcome: str = "") -> int:
    """Print the failed runs (the scheduler would show them red in the grid) and return the exit status 1."""
    print(f"\n{len(failures)} run(s) failed{f'; {outcome}' if outcome else ''}:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
