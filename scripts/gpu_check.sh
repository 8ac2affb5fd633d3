#!/usr/bin/env bash
# `make gpu-check`: a few RVPO training steps of a random-weight Qwen2.5-1.5B on one CUDA GPU
# (about 2 minutes on an H100, under 8 with margin; nothing is downloaded). Prints tokens per
# second and peak GPU memory; exits 2 at once when no CUDA device is visible.
# Arguments go to scripts/gpu_check.py (--steps, --batch-size, --max-completion-length, ...).
# Needs a CUDA build of torch: install the suite with pip install -e '.[gpu]' in a CUDA env.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
# The script stops training at its own time budget (420 s); the hard limit is a last resort.
exec timeout --signal=INT --kill-after=15 470 "$PY" scripts/gpu_check.py "$@"
