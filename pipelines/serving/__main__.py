"""``python -m pipelines.serving``: run the model server with uvicorn (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
import logging
import os

# One OpenMP thread per predict, set before numpy/scikit-learn load: a server predicts many small batches while
# its event loop needs a core, and OpenMP teams spinning on a shared machine made a 64-row predict 6x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys

import uvicorn

from pipelines.config import load_config
from pipelines.serving.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config", action="append", help="a pipeline config; repeat to serve several models (default: MLOPS_CONFIG)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configs = [load_config(path) for path in (args.config or [None])]
    # The event loop and the scoring thread share the GIL; a thread that wants it waits up to the switch interval
    # (5 ms by default) for a CPU-bound holder, and the loop asks for it after every poll: while a batch is scored,
    # every request read or answer could wait 5 ms. 1 ms keeps that wait inside the latency budget of a batch.
    sys.setswitchinterval(0.001)
    # One process, one event loop: batching needs every request in the same queue (scale out with processes).
    uvicorn.run(create_app(configs), host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
