#!/bin/sh
# The GPU worker pool, proven where a machine has an NVIDIA GPU (issue 21): one short run, about five minutes.
#   scripts/gpu_check.sh [OUT_DIR]     results (json, csv) into OUT_DIR, default bench/.results/gpu
#   PYTHON=/path/to/python scripts/gpu_check.sh      an interpreter with the project's requirements (default .venv)
# 1. bench/scoring.py --gpu: the torch demo model scored on GPU worker processes (GPU=1, CUDA_VISIBLE_DEVICES each)
#    against its raw forward pass over tensors preloaded on the same GPU (ratio printed, goal >= 0.8); its
#    predictions against the CPU path's; the sharded path (scoring.shards: 2) with both stages on GPU workers.
# 2. bench/serving.py with the load generator pinned by taskset to the upper half of the cores and the server and
#    its scoring child to the lower half: the fair test of the serving p99 goal.
# No GPU (no nvidia-smi, or it lists none): says so and exits 0. A GPU that torch cannot use: says so, exits 1.
set -eu
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${1:-bench/.results/gpu}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing to check, skipped"
  exit 0
fi
nvidia-smi -L
if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: a GPU is here but $("$python" -c 'import torch; print("torch", torch.__version__)') sees no" \
    "CUDA device: install the CUDA build of torch (scripts/torch_build.sh cuda)" >&2
  exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

started=$(date +%s)
"$python" bench/scoring.py --gpu --rows 1000000 --out "$out"
echo "== bench/scoring.py --gpu: $(( $(date +%s) - started )) s"

cores=$(nproc)
if [ "$cores" -lt 4 ]; then
  echo "gpu_check: $cores cores, too few to give the load generator and the server cores of their own:" \
    "serving skipped"
  exit 0
fi
half=$((cores / 2))
started=$(date +%s)
taskset -c "$half-$((cores - 1))" "$python" bench/serving.py --server-cores "0-$((half - 1))" \
  --seconds 5 --requests 30000 --out "$out"
echo "== bench/serving.py (load generator on cores $half-$((cores - 1)), server on 0-$((half - 1))):" \
  "$(( $(date +%s) - started )) s"
