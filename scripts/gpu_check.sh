#!/usr/bin/env bash
# `make gpu-check`: what the paper runs use, measured on CUDA GPUs with a random-weight Qwen2.5-1.5B
# (nothing is downloaded), in three parts, each printing seconds per step, tokens per second and
# peak GPU memory and ending with a JSON line:
#   1. RVPO steps with hf generation on one GPU;
#   2. the same with TRL's colocated vLLM engine generating (trainer.use_vllm=true, colocate);
#   3. when two or more GPUs are visible, ZeRO-2 steps on two GPUs with conf/accelerate/zero2.yaml.
# About 6 minutes on H100s, under 10 with margin; exits 2 at once when no CUDA device is visible.
# Arguments go to every part's scripts/gpu_check.py (--steps, --batch-size, --max-completion-length, ...).
# Needs a CUDA build of torch and the `gpu` extra (vllm, deepspeed): pip install -e '.[gpu]'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
# Each part stops training at its own time budget; the hard limits are a last resort.
echo "== 1/3 hf generation, one GPU"
timeout --signal=INT --kill-after=15 200 "$PY" scripts/gpu_check.py --time-budget-s 150 "$@"
echo "== 2/3 vLLM colocate, one GPU"
timeout --signal=INT --kill-after=15 260 "$PY" scripts/gpu_check.py --generation vllm --time-budget-s 150 "$@"
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
  echo "== 3/3 ZeRO-2, two GPUs"
  CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0,1}" timeout --signal=INT --kill-after=15 200 \
    "$PY" -m accelerate.commands.launch --config_file conf/accelerate/zero2.yaml --num_processes 2 \
    scripts/gpu_check.py --time-budget-s 120 "$@"
else
  echo "== 3/3 ZeRO-2 skipped: $gpus GPU visible (needs 2)"
fi
