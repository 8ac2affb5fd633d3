"""GPU check: a few RVPO training steps of a random-weight Qwen2.5-1.5B on CUDA GPUs.

Builds the real Qwen2.5-1.5B(-Instruct) architecture from its config values (nothing is
downloaded), takes the suite's offline tiny tokenizer (no real tokenizer is available offline),
and trains with RVPOTrainer + get_aggregator("rvpo") on toy_constraints prompts with TRL's hf
generation back end. Prints tokens per second (all tokens TRL counts, and generated tokens) and
peak GPU memory; one JSON line with the same figures closes the output (--json also writes it).

    bash scripts/gpu_check.sh                       # make gpu-check: hf, vLLM colocate, ZeRO-2 on 2 GPUs
    python scripts/gpu_check.py --steps 4 --max-completion-length 128 --json out.json
    python scripts/gpu_check.py --generation vllm   # TRL's colocated vLLM engine generates
    accelerate launch --config_file conf/accelerate/zero2.yaml --num_processes 2 scripts/gpu_check.py

`--generation vllm` saves the random model to a temporary directory (vLLM loads from disk) and
shrinks the vocabulary to the tokenizer's, so that every id vLLM samples can be detokenized.
Under `accelerate launch` each rank builds the model on its own GPU and rank 0 prints.

The vocabulary stays Qwen2.5's 151936 by default, so memory and speed are those of the real model
(embedding and LM head hold 233M of its 1.54B parameters); the tokenizer's ids (< 512) are a subset
of it. With random weights almost every sampled id lies outside the tokenizer (decoded as nothing)
and EOS is rare, so completions run to --max-completion-length: a fixed, known token count per
step. `--vocab tokenizer` shrinks the embedding to the tokenizer instead (a smaller model).
Fails fast, exit code 2, when no CUDA device is visible. `--device cpu` exists for the suite's
tests only (with --set overrides that shrink the model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

# Qwen2.5-1.5B(-Instruct) config.json values, written here (no hub access).
QWEN25_1_5B: dict[str, Any] = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "use_sliding_window": False,
    "attention_dropout": 0.0,
}
NO_CUDA_EXIT = 2


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="optimizer steps; the first is warm-up, not timed")
    p.add_argument(
        "--batch-size", type=int, default=16, help="completions per step (per_device_train_batch_size)"
    )
    p.add_argument("--num-generations", type=int, default=8, help="group size G (divides --batch-size)")
    p.add_argument("--max-completion-length", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=1e-6)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument(
        "--vocab",
        choices=("qwen", "tokenizer"),
        default="qwen",
        help="qwen: keep 151936 (real size); tokenizer: shrink the embedding to the tokenizer",
    )
    p.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a Qwen2 config value (tests: --set num_hidden_layers=2 --set hidden_size=64 ...)",
    )
    p.add_argument(
        "--time-budget-s",
        type=float,
        default=420.0,
        help="stop training after this many seconds (the check must end within 8 minutes)",
    )
    p.add_argument(
        "--generation", choices=("hf", "vllm"), default="hf", help="hf generate, or TRL's colocated vLLM"
    )
    p.add_argument("--vllm-memory", type=float, default=0.3, help="vllm_gpu_memory_utilization (colocate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the summary to this file")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size % args.num_generations:
        p.error(
            f"--batch-size {args.batch_size} is not a multiple of --num-generations {args.num_generations}"
        )
    if args.steps < 2:
        p.error("--steps must be at least 2 (the first step is warm-up)")
    if args.generation == "vllm":
        args.vocab = "tokenizer"
    for item in args.overrides:
        if "=" not in item or item.split("=", 1)[0] not in QWEN25_1_5B:
            p.error(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(QWEN25_1_5B)}")
    return args


def model_config_values(overrides: list[str] | None = None, vocab_size: int | None = None) -> dict[str, Any]:
    """The Qwen2.5-1.5B values with `KEY=VALUE` overrides; `vocab_size` replaces the vocabulary."""
    values = dict(QWEN25_1_5B)
    for item in overrides or []:
        key, text = item.split("=", 1)
        if key not in values:
            raise ValueError(f"unknown Qwen2 config key {key!r}; expected one of {sorted(values)}")
        values[key] = _value(text)
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    return values


def build_model_config(args: argparse.Namespace, tokenizer: Any):
    from transformers import Qwen2Config

    from rvpo_repro.models import IM_END, PAD_TOKEN

    values = model_config_values(args.overrides, len(tokenizer) if args.vocab == "tokenizer" else None)
    if values["vocab_size"] < len(tokenizer):
        raise ValueError(
            f"vocab_size {values['vocab_size']} is smaller than the tokenizer ({len(tokenizer)} tokens)"
        )
    return Qwen2Config(
        **values,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device visible (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). "
            "This check needs one NVIDIA GPU and a CUDA build of torch (pip install -e '.[gpu]').",
            file=sys.stderr,
        )
        raise SystemExit(NO_CUDA_EXIT)


class _Meter:
    """TrainerCallback collecting per-step wall time and TRL's logged token counts."""

    def __init__(self, budget_s: float):
        from transformers import TrainerCallback

        meter = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                meter.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                meter.step_s.append(time.perf_counter() - meter.t0)
                if time.perf_counter() - meter.start > budget_s:
                    meter.stopped_early = True
                    control.should_training_stop = True

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "num_tokens" in logs:
                    meter.logs.append(dict(logs))

        self.callback = Callback()
        self.start = time.perf_counter()
        self.t0 = self.start
        self.step_s: list[float] = []
        self.logs: list[dict] = []
        self.stopped_early = False


def summarize(meter: _Meter, batch_size: int) -> dict[str, Any]:
    """Throughput over the timed steps (all but the first)."""
    timed = meter.step_s[1:]
    seconds = sum(timed)
    tokens = [log["num_tokens"] for log in meter.logs]
    lengths = [log.get("completions/mean_length", 0.0) for log in meter.logs][1:]
    step_tokens = tokens[-1] - tokens[0] if len(tokens) > 1 else 0.0
    generated = sum(lengths) * batch_size
    return {
        "steps": len(meter.step_s),
        "timed_steps": len(timed),
        "seconds_per_step": seconds / len(timed) if timed else None,
        "tokens_per_s": step_tokens / seconds if seconds else None,
        "generated_tokens_per_s": generated / seconds if seconds else None,
        "mean_completion_length": sum(lengths) / len(lengths) if lengths else None,
        "stopped_early": meter.stopped_early,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, PrinterCallback
    from trl import GRPOConfig

    from rvpo_repro.aggregators import get_aggregator
    from rvpo_repro.config import compose
    from rvpo_repro.models import build_tiny_tokenizer
    from rvpo_repro.run.job import build_task, seed_everything
    from rvpo_repro.trainer import RVPOTrainer

    if args.device == "cuda":
        require_cuda()
    seed_everything(args.seed)
    t_start = time.perf_counter()
    cfg = compose(["experiment=toy", f"seed={args.seed}"])
    tokenizer = build_tiny_tokenizer(cfg.model.tiny.vocab_size)
    config = build_model_config(args, tokenizer)
    on_gpu = args.device == "cuda"
    # fp32 master weights, bf16 compute (TRL's bf16=True), as the suite trains the paper's models
    dtype = torch.float32
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if on_gpu else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=args.attn)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=True
    )
    scratch = tempfile.TemporaryDirectory(prefix="rvpo-gpu-check-model-")
    if args.generation == "vllm":  # TRL's colocated engine loads model.name_or_path from disk
        model.save_pretrained(scratch.name)
        tokenizer.save_pretrained(scratch.name)
        model = AutoModelForCausalLM.from_pretrained(scratch.name, dtype=dtype, attn_implementation=args.attn)
        model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    _, data = build_task(cfg, tokenizer)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    build_s = time.perf_counter() - t_start
    meter = _Meter(args.time_budget_s)
    with tempfile.TemporaryDirectory(prefix="rvpo-gpu-check-") as out:
        trainer = RVPOTrainer(
            model=model,
            processing_class=tokenizer,
            args=GRPOConfig(
                output_dir=out,
                max_steps=args.steps,
                learning_rate=args.learning_rate,
                per_device_train_batch_size=args.batch_size,
                num_generations=args.num_generations,
                max_completion_length=args.max_completion_length,
                gradient_checkpointing=args.gradient_checkpointing,
                bf16=on_gpu,  # autocast under DDP; DeepSpeed's bf16 mode under accelerate's ZeRO configs
                use_cpu=not on_gpu,
                use_vllm=args.generation == "vllm",
                vllm_mode="colocate",
                vllm_gpu_memory_utilization=args.vllm_memory,
                beta=0.0,
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                seed=args.seed,
                disable_tqdm=True,
                log_completions=False,
            ),
            train_dataset=data.train_dataset,
            reward_funcs=data.reward_funcs,
            channels=data.channels,
            aggregator=get_aggregator("rvpo"),
            callbacks=[meter.callback],
        )
        trainer.remove_callback(PrinterCallback)  # the summary below replaces per-step log dicts
        meter.start = time.perf_counter()
        trainer.train()
        acc = trainer.accelerator
        plugin = acc.state.deepspeed_plugin
        placement = {
            "world_size": acc.num_processes,
            "distributed_type": str(acc.state.distributed_type).rsplit(".", 1)[-1],
            "zero_stage": plugin.zero_stage if plugin is not None else None,
            "mixed_precision": str(acc.state.mixed_precision),
            "is_main_process": acc.is_main_process,
        }
    scratch.cleanup()
    summary = {
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "torch": torch.__version__,
        "model": "qwen2.5-1.5b architecture, random weights",
        "params": n_params,
        "vocab_size": config.vocab_size,
        "dtype": "bfloat16 compute over float32 weights" if on_gpu else "float32",
        "generation": f"vllm:colocate ({args.vllm_memory} of the GPU)" if args.generation == "vllm" else "hf",
        **placement,
        "completions_per_step": args.batch_size,
        "num_generations": args.num_generations,
        "max_completion_length": args.max_completion_length,
        "build_seconds": round(build_s, 1),
        **summarize(meter, args.batch_size),
        "peak_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
        "peak_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if on_gpu else None,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    return summary


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        require_cuda()  # before any model work: fail in seconds, not minutes
    s = run(args)
    if not s["is_main_process"]:
        return 0
    print(
        f"gpu_check on {s['device']}: {s['params'] / 1e6:,.1f}M params ({s['dtype']}), "
        f"{s['timed_steps']} timed steps of {s['completions_per_step']} completions (G={s['num_generations']}, "
        f"up to {s['max_completion_length']} new tokens, mean {_fmt(s['mean_completion_length'], '.0f')})\n"
        f"  seconds per step:        {_fmt(s['seconds_per_step'], '.2f')}\n"
        f"  tokens per second:       {_fmt(s['tokens_per_s'], '.0f')} (prompt + completion, as TRL counts them)\n"
        f"  generated tokens / s:    {_fmt(s['generated_tokens_per_s'], '.0f')} ({s['generation']})\n"
        f"  processes:               {s['world_size']} ({s['distributed_type']}"
        + (f" ZeRO-{s['zero_stage']}" if s["zero_stage"] else "")
        + f", mixed precision {s['mixed_precision']})\n"
        f"  peak GPU memory:         {_fmt(s['peak_memory_allocated_gib'], '.1f')} GiB allocated, "
        f"{_fmt(s['peak_memory_reserved_gib'], '.1f')} GiB reserved\n"
        f"  total time:              {s['total_seconds']} s"
        + (" (stopped at the time budget)" if s["stopped_early"] else "")
    )
    line = json.dumps(s, sort_keys=True)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
