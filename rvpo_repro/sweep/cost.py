"""What one paper run costs: wall-clock hours and GPU-hours on H100-80GB, from its composed config.

All figures are labelled assumptions, not measurements (reasoning in sweeps/README.md); calibrate
the training side with `make gpu-check` on the target GPU. `rvpo-sweep` (rvpo_repro.sweep.plan) prices
every run of a sweep with `estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Throughput on one H100-80GB SXM in bf16.
HARDWARE: dict[str, Any] = {
    "peak_flops": 989e12,  # dense bf16 FLOP/s of an H100 SXM
    "mfu": 0.25,  # model FLOPs utilisation of the training passes
    # decode tokens/s per GPU of colocated vLLM (TP 1, the model group's memory share, batch ~100s)
    "decode_tokens_per_s": {
        "qwen2.5-1.5b": 12000,
        "qwen2.5-3b": 8000,
        "qwen2.5-7b": 4000,
        "qwen2.5-14b": 2000,
    },
    "params": {"qwen2.5-1.5b": 1.54e9, "qwen2.5-3b": 3.09e9, "qwen2.5-7b": 7.62e9, "qwen2.5-14b": 14.77e9},
    "judge_calls_per_s_per_gpu": 40.0,  # Qwen2.5-7B judge on vLLM, ~1.2k-token prompts, prefix caching
    "overhead": 1.25,  # weight sync to vLLM, logging, checkpoint saves
}

# Per task (the data set decides the token counts, the judge load and the benchmark's cost).
TASKS: dict[str, dict[str, float]] = {
    # RaR-Medicine questions, long-form medical answers (mean; max 1024); one HealthBench evaluation:
    # 5000 conversations, ~55k grader calls
    "rar_medicine": {
        "prompt_tokens": 150,
        "completion_tokens": 600,
        "judge_items": 10,  # judge calls per completion: rubric items per prompt (5-17)
        "judge_gpus": 2,  # vllm serve Qwen/Qwen2.5-7B-Instruct, two replicas
        "eval_hours": 0.4,
    },
    # RaR-Science, step-by-step answers; one GPQA-Diamond evaluation (198 questions, vLLM)
    "rar_science": {
        "prompt_tokens": 150,
        "completion_tokens": 700,
        "judge_items": 10,
        "judge_gpus": 2,
        "eval_hours": 0.1,
    },
    # RLLA-4k system prompt with tool specs; <think> + <tool_call> / <response>; BFCL single-turn
    "toolrl": {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "judge_items": 0,
        "judge_gpus": 0,
        "eval_hours": 0.25,
    },
}


@dataclass
class Estimate:
    """Expected cost of one run; zero for a model without a parameter count (CPU runs)."""

    step_seconds: float = 0.0
    hours: float = 0.0
    gpus: int = 0  # training GPUs plus judge GPUs
    gpu_hours: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # seconds per step by phase


def estimate(cfg: Any, assumptions: dict[str, Any] | None = None) -> Estimate:
    """Hours and GPU-hours of one composed run; `assumptions` overrides HARDWARE and task keys."""
    name = str(cfg.model.name)
    task = str(cfg.task.name)
    if name not in HARDWARE["params"]:
        return Estimate()
    if task not in TASKS:
        raise ValueError(
            f"no cost assumptions for task {task!r}; known: {sorted(TASKS)} (rvpo_repro/sweep/cost.py)"
        )
    a = {**HARDWARE, **TASKS[task], **(assumptions or {})}
    gpus = max(int(cfg.model.num_gpus), 1)
    t = cfg.trainer
    per_step = cfg.model.per_device_train_batch_size * cfg.model.gradient_accumulation_steps * gpus
    generation_batch = t.get("generation_batch_size") or per_step
    tokens = per_step * (a["prompt_tokens"] + a["completion_tokens"])
    passes = 6.0  # forward + backward of the policy
    passes += 2.0 if t.beta > 0 else 0.0  # reference-model forward
    passes += 2.0 if (generation_batch > per_step or t.num_iterations > 1) else 0.0  # old log-probs
    train_s = passes * a["params"][name] * tokens / (gpus * a["peak_flops"] * a["mfu"])
    gen_s = per_step * a["completion_tokens"] / (gpus * a["decode_tokens_per_s"][name])
    judge_gpus = int(a["judge_gpus"]) if cfg.judge.backend != "none" else 0
    judge_s = (
        per_step * a["judge_items"] / (judge_gpus * a["judge_calls_per_s_per_gpu"]) if judge_gpus else 0.0
    )
    step_s = (gen_s + train_s + judge_s) * a["overhead"]
    n_evals = 1 + (t.max_steps // t.save_steps if t.get("eval_checkpoints") else 0)
    hours = t.max_steps * step_s / 3600 + n_evals * a["eval_hours"]
    return Estimate(
        step_seconds=step_s,
        hours=hours,
        gpus=gpus + judge_gpus,
        gpu_hours=hours * (gpus + judge_gpus),
        parts={"generate": gen_s, "train": train_s, "judge": judge_s},
    )
