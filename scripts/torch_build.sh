#!/bin/sh
# The torch build an image installs: writes constraints.image.txt from the lock and prints pip's index option.
#   cuda          PyPI's own wheel, as locked. For torch 2.13.0 on Linux x86_64 that is the CUDA 13.0 build
#                 (its torch/version.py reads 2.13.0+cu130; it requires cuda-toolkit 13.0.3 and nvidia-cudnn-cu13).
#   cpu, cu126..  PyTorch's wheel index for that build; only torch's pin gets the suffix (torch==X -> torch==X+cpu).
set -eu
variant="$1"
if [ "$variant" = cuda ]; then
  cp constraints.txt constraints.image.txt
else
  sed "s/^torch==\([^+]*\)$/torch==\1+${variant}/" constraints.txt > constraints.image.txt
  echo "--extra-index-url https://download.pytorch.org/whl/${variant}"
fi
