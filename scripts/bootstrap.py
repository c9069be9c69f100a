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

The drift runs defer their HTML reports (``defer_reports``) and the bootstrap leaves them to ``make reports``
(scripts/render_reports.py, one process per core): Evidently's drawing is pure Python, ~0.6 s a day whatever the
rows, as much as the rest of a checked day, and nothing decided reads it. Every checked day's verdicts, metrics,
decision and MLflow run are recorded when it is checked, and what its report is drawn from is stored beside them.
Drawing them in a process beside the runs, and waiting for it at the end, made a year of history (bench/bootstrap.py)
take 472 s against 298 s leaving them: the runs slowed by more than the drawing's share of a core.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from contextlib import nullcontext
from datetime import date, timedelta

from demo import Runs, load_dags, print_summary, run_days, run_triggered_retraining

from pipelines import registry, sources
from pipelines.backlog import already_checked
from pipelines.cluster import local_cluster
from pipelines.config import Config, config_path, load_config
from pipelines.drift_report import pending_reports
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
        champions = load_history(runs, config, scored, max(1, args.days_per_run))
    print_summary(config, days, scored, champions, time.monotonic() - started)
    if pending := pending_reports(config):
        print(f"\n{len(pending)} drift report(s) left to draw: `make reports` draws them, one process per core")
    return _failed(runs.failed) if runs.failed else 0


def load_history(runs: Runs, config: Config, days: list[date], per_run: int) -> dict[str, str]:
    """Extract, score and check ``days`` in runs of days, running each retraining a check triggers before the days
    after it are scored; returns each day's champion after its checks, as :func:`demo.run_days` does."""
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
            print(f"  that run of days failed: its {len(unchecked)} unchecked day(s) again, one run per day")
            champions.update({d.isoformat(): champion for d in chunk if d not in unchecked})
            champions.update(run_days(runs, config, unchecked, extract=False))
            start += len(chunk)
            continue
        retrained = run_triggered_retraining(runs, name, chunk[-1])
        done = chunk[: chunk.index(retrained) + 1] if retrained in chunk else chunk  # the days after it: again
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
