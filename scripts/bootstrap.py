"""`make bootstrap`: a new dataset from raw history to a trained champion and scored days, in one command.

For the config in ``MLOPS_CONFIG``: the source is indexed to find the days it holds (from ``schedule.start_date``,
or the first day with events, to the last day with events; ``--from``/``--to`` narrow it). The first
``training.window_days`` days are extracted and the first model is trained on them with every label known up to the
last day bootstrapped (it becomes ``champion``; labels arrive late, and over history they have arrived by now);
then every later day is extracted, scored and checked for drift, and a retraining that drift monitoring triggers
is run, as the scheduler would. The real DAGs run with ``dag.test()`` in this process, on one Dask cluster
(``DASK_SCHEDULER_ADDRESS`` if set), with scripts/demo.py's runner; each run is recorded in the Airflow database.
Nothing is deleted: rerunning replaces the days' partitions; an existing champion is kept (no first training).
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

from demo import Runs, load_dags, print_summary, run_days

from pipelines import registry, sources
from pipelines.cluster import local_cluster
from pipelines.config import Config, config_path, load_config
from pipelines.features import index_events


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
        champions = run_days(runs, config, scored)
    print_summary(config, days, scored, champions, time.monotonic() - started)
    return _failed(runs.failed) if runs.failed else 0


def _failed(failures: list[str], outcome: str = "") -> int:
    """Print the failed runs (the scheduler would show them red in the grid) and return the exit status 1."""
    print(f"\n{len(failures)} run(s) failed{f'; {outcome}' if outcome else ''}:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
