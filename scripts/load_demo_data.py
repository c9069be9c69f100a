"""Seed a deployment with the demo: its synthetic events where the config's sources are, and a first champion.

The compose stack runs this once (service ``demo-data``) with ``include/stack/config.yaml``: the events, labels
and payments history go to MinIO, so one ``feature_extraction`` run for a demo day then runs the chain (scoring
needs a ``champion``, which ``--bootstrap`` provides by extracting the first training window and registering the
first version, the same library calls the ``feature_extraction`` and ``model_training`` DAGs make). Running it
again rewrites the same files and trains nothing while a champion exists.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines import demo_data, storage
from pipelines.config import Config, load_config

log = logging.getLogger("load_demo_data")
GLOB_CHARACTERS = set("*?[")


def target_folder(pattern: str, files: list[Path]) -> str:
    """The folder a source glob reads (``s3://mlops/raw/*.parquet`` -> ``s3://mlops/raw``), checked to match ``files``.

    Only the last path segment may be a pattern: the loader has to know where to write, and what it writes has
    to be what extraction will read.
    """
    folder, _, name = pattern.rpartition("/")
    if not folder or GLOB_CHARACTERS & set(folder):
        raise SystemExit(f"cannot load into {pattern!r}: only its file name may be a pattern")
    strays = [file.name for file in files if not fnmatch.fnmatch(file.name, name)]
    if strays:
        raise SystemExit(f"{pattern!r} would not read the demo's files (e.g. {strays[0]})")
    return folder


def upload(files: list[Path], folder: str, options: dict[str, Any]) -> int:
    """Copy ``files`` into ``folder`` on any fsspec filesystem (a local folder or ``s3://``); return the count."""
    fs, path = storage.filesystem(folder, options)
    fs.makedirs(path, exist_ok=True)
    for file in files:
        fs.put_file(str(file), f"{path}/{file.name}")
    return len(files)


def load(config: Config, spec: demo_data.DemoSpec) -> dict[str, int]:
    """Generate the demo's events, labels and payments history and put them where ``dataset.source``,
    ``dataset.labels`` and the config's ``payments`` history table (if it declares one) read."""
    if config.dataset.labels is None:
        raise SystemExit("the config has no dataset.labels: the demo's labels would have nowhere to go")
    counts = {}
    targets = [("raw", config.dataset.source), ("labels", config.dataset.labels)]
    if "payments" in config.dataset.history:
        targets.append(("payments", config.dataset.history["payments"].source))
    with tempfile.TemporaryDirectory(prefix="demo-data-") as local:
        demo_data.generate(local, spec)
        for kind, pattern in targets:
            files = sorted((Path(local) / kind).iterdir())
            counts[kind] = upload(files, target_folder(pattern, files), config.storage.options)
            log.info("%d %s files -> %s", counts[kind], kind, pattern)
    return counts


def bootstrap(config: Config, first_day: date) -> str:
    """Extract the first training window and register the first version (the champion); keep an existing one."""
    from pipelines import registry
    from pipelines.features import extract_features
    from pipelines.training import train_and_register

    champion = registry.connect(config).alias(config.model.name, registry.CHAMPION)
    if champion is not None:
        log.info("%s already has a champion (version %s): nothing to train", config.model.name, champion.version)
        return champion.version
    days = [first_day + timedelta(days=i) for i in range(config.training.window_days)]
    for day in days:
        result = extract_features(config, day)
        log.info("extracted %s: %d valid, %d quarantined", day, result.rows_valid, result.rows_quarantined)
    trained = train_and_register(config, days[-1], reason="stack bootstrap: first champion")
    log.info("registered %s version %s as champion", config.model.name, trained.version)
    return trained.version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default: MLOPS_CONFIG)")
    parser.add_argument("--days", type=int, default=demo_data.DemoSpec.days)
    parser.add_argument("--rows-per-day", type=int, default=demo_data.DemoSpec.rows_per_day)
    parser.add_argument(
        "--bootstrap", action="store_true", help="also extract the first training window and train a champion"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config)
    spec = demo_data.DemoSpec(days=args.days, rows_per_day=args.rows_per_day)
    print(load(config, spec))
    if args.bootstrap:
        print({"champion": bootstrap(config, spec.start)})


if __name__ == "__main__":
    main()
