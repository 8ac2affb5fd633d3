#!/usr/bin/env bash
# `make gpu-check`: what the paper runs use, measured on one CUDA GPU with random-weight Qwen2.5
# models (nothing is downloaded), in parts that each run in their own process under a hard limit;
# a failing part never stops the next. The whole check ends within 8 minutes (an outer limit of
# 470 s); every figure goes to one JSON file (--out, default gpu_check.json). Parts and figures:
# scripts/gpu_check.py; the guide: docs/guides/gpu-check.md.
#
# On a lent machine without network, the wheels it lacks come with the working tree in
# $GPU_CARRY/wheels (`make gpu-carry`, default .gpu-carry): they are installed, with no index and
# no dependencies, into $GPU_CARRY/site-packages, which goes on PYTHONPATH beside this tree's
# rvpo_repro. The folder's name matters: dill (datasets' fingerprints) pickles modules by reference
# only from paths holding "site-packages", and pyarrow's by value fails.
# Exits 2 at once when no CUDA device is visible; `--device cpu` (with --set overrides that shrink
# the model) is the CPU rehearsal. Other arguments go to every part (--steps, --batch-size, ...).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
CARRY="${GPU_CARRY:-.gpu-carry}"
case "$CARRY" in /*) ;; *) CARRY="$PWD/$CARRY" ;; esac
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
if [ -d "$CARRY/wheels" ]; then
  if [ ! -f "$CARRY/site-packages/.installed" ]; then
    echo "== installing $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels into $CARRY/site-packages (no index)"
    rm -rf "$CARRY/site-packages"
    if timeout 180 "$PY" -m pip install --quiet --no-index --no-deps --target "$CARRY/site-packages" "$CARRY"/wheels/*.whl; then
      touch "$CARRY/site-packages/.installed"
    else
      echo "gpu_check: installing the carried wheels failed; each part reports what it misses" >&2
    fi
  fi
  export PYTHONPATH="$CARRY/site-packages${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this tree's rvpo_repro, installed or not
exec timeout --kill-after=10 470 "$PY" scripts/gpu_check.py --part all "$@"
