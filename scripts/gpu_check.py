"""GPU check: what the paper runs use, measured on one CUDA GPU with random-weight Qwen2.5 models.

`make gpu-check` runs every part (`--part all`), each as its own process under a hard time limit,
never stopping at a failing part, and writes the figures as JSON (`--out`, default gpu_check.json):
  roofline   bf16 matmul FLOP/s and device-to-device copy bandwidth, beside the cost model's figures
  rvpo-1.5b  RVPO steps (RVPOTrainer + get_aggregator("rvpo"), hf generation) of Qwen2.5-1.5B:
             seconds per step, tokens per second, peak memory against the memory plan's figure
  grpo-1.5b  TRL's own GRPOTrainer on the same model, prompts, batch and reward channels (summed)
  rvpo-3b    the RVPO part with Qwen2.5-3B and gradient checkpointing, when the time left allows it
One part by hand:

    python scripts/gpu_check.py --part rvpo --size 1.5b --steps 4 --max-completion-length 128 --json out.json
    python scripts/gpu_check.py --part rvpo --generation vllm   # TRL's colocated vLLM (a user's own machine)
    accelerate launch --config_file conf/accelerate/zero2.yaml --num_processes 2 scripts/gpu_check.py

Models are built from the real architectures' config values (nothing is downloaded), with the
suite's offline tiny tokenizer, on toy_constraints prompts. The vocabulary stays Qwen2.5's 151936 by
default, so memory and speed are those of the real model (embedding and LM head hold 233M of the
1.5B's parameters); the tokenizer's ids (< 512) are a subset of it. With random weights almost
every sampled id lies outside the tokenizer (decoded as nothing) and EOS is rare, so completions
run to --max-completion-length: a fixed, known token count per step. `--vocab tokenizer` shrinks the
embedding to the tokenizer instead. `--generation vllm` saves the random model to a temporary
directory (vLLM loads from disk) and shrinks the vocabulary to the tokenizer's.

Fails fast, exit code 2, when no CUDA device is visible. `--device cpu` runs the same code on CPU
with --set overrides that shrink the model: the rehearsal of the check where no GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

# Qwen2.5-1.5B(-Instruct) config.json values, written here (no hub access); 3B differs in its shape.
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
SIZES: dict[str, dict[str, Any]] = {
    "1.5b": QWEN25_1_5B,
    "3b": {
        **QWEN25_1_5B,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
    },
}
NO_CUDA_EXIT = 2
# The parts of `--part all`: (name, arguments, hard limit in seconds). Each trains until its limit
# less STARTUP_S (imports, model build, the last step), so the limit is a last resort.
PARTS: list[tuple[str, list[str], int]] = [
    ("roofline", ["--part", "roofline"], 60),
    ("rvpo-1.5b", ["--part", "rvpo", "--size", "1.5b"], 140),
    ("grpo-1.5b", ["--part", "grpo", "--size", "1.5b"], 120),
    # gradient checkpointing: without it the plan's 3B peak is 85 GB on one 80 GB GPU, with it 67 GB
    ("rvpo-3b", ["--part", "rvpo", "--size", "3b", "--gradient-checkpointing"], 140),
]
STARTUP_S = 60.0
MIN_PART_S = 45.0  # a part with less time left than this is skipped, not started


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--part",
        choices=("rvpo", "grpo", "roofline", "all"),
        default="rvpo",
        help="one measurement, or all of them, each in its own process (make gpu-check)",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="1.5b", help="the Qwen2.5 architecture")
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
        "--deadline-s", type=float, default=450.0, help="--part all: every part ends within this many seconds"
    )
    p.add_argument(
        "--generation", choices=("hf", "vllm"), default="hf", help="hf generate, or TRL's colocated vLLM"
    )
    p.add_argument("--vllm-memory", type=float, default=0.3, help="vllm_gpu_memory_utilization (colocate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the summary to this file")
    p.add_argument("--out", default="gpu_check.json", help="--part all: where the figures of every part go")
    p.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the rehearsal (shrunk model)"
    )
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


def model_config_values(
    overrides: list[str] | None = None, vocab_size: int | None = None, size: str = "1.5b"
) -> dict[str, Any]:
    """The Qwen2.5 `size` values with `KEY=VALUE` overrides; `vocab_size` replaces the vocabulary."""
    values = dict(SIZES[size])
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

    values = model_config_values(
        args.overrides, len(tokenizer) if args.vocab == "tokenizer" else None, args.size
    )
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
    from trl import GRPOConfig, GRPOTrainer

    from rvpo_repro.aggregators import get_aggregator
    from rvpo_repro.config import compose
    from rvpo_repro.models import build_tiny_tokenizer
    from rvpo_repro.rewards import expand_reward_funcs
    from rvpo_repro.run.task import build_task, seed_everything
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
        # RVPO: the suite's trainer and aggregator. GRPO: TRL's own trainer, the same channels as
        # separate reward functions (TRL sums them), so both steps generate and train the same batch.
        if args.part == "grpo":
            make, extra = (
                GRPOTrainer,
                {"reward_funcs": expand_reward_funcs(data.reward_funcs, data.channels)[0]},
            )
        else:
            make = RVPOTrainer
            extra = {
                "reward_funcs": data.reward_funcs,
                "channels": data.channels,
                "aggregator": get_aggregator("rvpo"),
            }
        trainer = make(
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
            callbacks=[meter.callback],
            **extra,
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
        "part": args.part,
        "trainer": type(trainer).__name__,
        "model": f"qwen2.5-{args.size} architecture, random weights",
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
        "peak_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if on_gpu else None,
        "longest_prompt_tokens": longest_prompt(data.train_dataset, tokenizer),
        "peak_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if on_gpu else None,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    summary["memory_plan"] = planned_memory(args, summary["longest_prompt_tokens"])
    peak, planned = summary["peak_memory_allocated_gb"], summary["memory_plan"].get("peak_gb")
    summary["memory_plan_ratio"] = peak / planned if peak and planned else None  # measured / planned
    return summary


def plan_overrides(args: argparse.Namespace, prompt_tokens: int) -> list[str]:
    """The suite's config of the run a part measures: one GPU, DDP, hf generation, no reference
    model, the part's batch and lengths. The tool-calling family stands in for the task because its
    task states a prompt cap (`task.max_prompt_tokens`), set to the longest measured prompt."""
    return [
        "experiment=tool_calling",
        f"model=qwen2.5-{args.size}",
        "model.num_gpus=1",
        "model.accelerate=ddp",
        f"model.per_device_train_batch_size={args.batch_size}",
        "model.gradient_accumulation_steps=1",
        f"model.gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
        f"task.max_prompt_tokens={prompt_tokens}",
        f"trainer.num_generations={args.num_generations}",
        f"trainer.max_completion_length={args.max_completion_length}",
        # the part's GRPOConfig leaves TRL's default: one micro-batch generated per step
        f"trainer.generation_batch_size={args.batch_size}",
        "trainer.use_vllm=false",
        "trainer.beta=0.0",
    ]


def planned_memory(args: argparse.Namespace, prompt_tokens: int) -> dict[str, Any]:
    """The memory plan's figure for the measured config (`rvpo_repro.sizing.memory.plan_memory`): one
    rank's peak in GB (1e9 bytes), its phase and its parts. A failure is recorded, not raised: the
    measurement stands without it."""
    try:
        from rvpo_repro.config import compose
        from rvpo_repro.sizing import memory

        plan = memory.plan_memory(compose(plan_overrides(args, prompt_tokens)))
        if plan.unknown:
            return {"error": plan.unknown}
        return {
            "peak_gb": plan.peak_gb,
            "phase": plan.phase,
            "parts_gb": {p.label: getattr(p, plan.phase) / 1e9 for p in plan.parts},
        }
    except Exception as exc:  # noqa: BLE001 (recorded in the JSON, beside the measurement)
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def longest_prompt(dataset: Any, tokenizer: Any) -> int:
    """Tokens of the longest prompt as the trainer feeds it (chat template and generation cue)."""

    def n(prompt: Any) -> int:
        if isinstance(prompt, list):
            ids = tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            return len(ids)
        return len(tokenizer(str(prompt))["input_ids"])

    return max(n(row["prompt"]) for row in dataset)


def roofline(args: argparse.Namespace) -> dict[str, Any]:
    """bf16 matmul FLOP/s and device-to-device copy bytes/s (read + write), the two figures the
    judge's roofline in rvpo_repro.sweep.cost rests on, beside the values it assumes."""
    import torch

    from rvpo_repro.sweep.cost import GPU

    on_gpu = args.device == "cuda"
    device = "cuda" if on_gpu else "cpu"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    n, reps = (8192, 50) if on_gpu else (256, 5)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    flops = 2 * n**3 * reps / (time.perf_counter() - t0)
    size = 2**30 if on_gpu else 2**24  # bytes copied per repetition
    x = torch.empty(size // 2, device=device, dtype=torch.bfloat16)
    y = torch.empty_like(x)
    y.copy_(x)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        y.copy_(x)
    sync()
    bandwidth = 2 * size * reps / (time.perf_counter() - t0)
    return {
        "part": "roofline",
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "torch": torch.__version__,
        "bf16_matmul_flops": flops,
        "copy_bytes_per_s": bandwidth,
        "cost_model_bf16_flops": GPU["bf16_flops"],
        "cost_model_bytes_per_s": GPU["bytes_per_s"],
        "flops_ratio": flops / GPU["bf16_flops"],
        "bandwidth_ratio": bandwidth / GPU["bytes_per_s"],
    }


def _passthrough(argv: list[str]) -> list[str]:
    """The arguments of `--part all` that every part takes (all but the orchestration's own)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        key = a.split("=", 1)[0]
        if key in ("--part", "--size", "--out", "--deadline-s", "--json", "--time-budget-s"):
            skip = "=" not in a
            continue
        out.append(a)
    return out


def run_parts(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Every part in its own process, one after another, each under its hard limit (less when the
    deadline is nearer); a failing, killed or skipped part is recorded and the next one runs."""
    import signal
    import subprocess

    start = time.perf_counter()
    shared = _passthrough(argv)
    results: dict[str, Any] = {}
    for name, part_args, limit in PARTS:
        left = args.deadline_s - (time.perf_counter() - start)
        if left < MIN_PART_S:
            results[name] = {
                "status": "skipped",
                "why": f"{left:.0f} s left of the {args.deadline_s:.0f} s deadline",
            }
            print(f"== {name}: skipped ({results[name]['why']})", flush=True)
            continue
        limit = min(float(limit), left)
        print(f"== {name} (hard limit {limit:.0f} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="rvpo-gpu-check-part-") as tmp:
            out = os.path.join(tmp, "part.json")
            budget = max(limit - STARTUP_S, 10.0)
            cmd = [sys.executable, os.path.abspath(__file__), *part_args, *shared,
                   "--json", out, "--time-budget-s", str(budget)]  # fmt: skip
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)  # fmt: skip
            try:
                log, _ = proc.communicate(timeout=limit)
                status = "ok" if proc.returncode == 0 and os.path.exists(out) else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the part and whatever it started
                log, _ = proc.communicate()
                status = "timeout"
            entry: dict[str, Any] = {"status": status, "seconds": round(time.perf_counter() - t0, 1)}
            if status == "ok":
                with open(out) as f:
                    entry["result"] = json.load(f)
            else:
                entry["returncode"] = proc.returncode
                entry["log_tail"] = (log or "")[-2000:]
        print((log or "")[-1500:] if status != "ok" else _brief(entry["result"]), flush=True)
        print(f"== {name}: {status} in {entry['seconds']} s", flush=True)
        results[name] = entry
    return {
        "parts": results,
        "comparison": compare(results),
        "seconds": round(time.perf_counter() - start, 1),
        "not_run_here": "vLLM generation and two-GPU ZeRO-2 (a user's own machine: docs/guides/gpu-check.md)",
    }


def compare(results: dict[str, Any]) -> dict[str, Any]:
    """RVPO against TRL's GRPO on the same batch, and each RVPO part's peak memory against its plan."""
    got = {k: v["result"] for k, v in results.items() if v.get("status") == "ok"}
    out: dict[str, Any] = {}
    rvpo, grpo = got.get("rvpo-1.5b", {}), got.get("grpo-1.5b", {})
    if rvpo.get("seconds_per_step") and grpo.get("seconds_per_step"):
        out["rvpo_over_grpo_step_time_1.5b"] = rvpo["seconds_per_step"] / grpo["seconds_per_step"]
    for name, r in got.items():
        if r.get("memory_plan_ratio") is not None:
            out[f"peak_over_plan_{name}"] = r["memory_plan_ratio"]
    return out


def _brief(r: dict[str, Any]) -> str:
    keys = ("seconds_per_step", "tokens_per_s", "peak_memory_allocated_gib", "memory_plan_ratio",
            "bf16_matmul_flops", "copy_bytes_per_s")  # fmt: skip
    return "  " + ", ".join(f"{k}={_fmt(r.get(k), '.4g')}" for k in keys if r.get(k) is not None)


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.device == "cuda":
        require_cuda()  # before any model work: fail in seconds, not minutes
    if args.part == "all":
        report = run_parts(args, argv)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
        statuses = {k: v["status"] for k, v in report["parts"].items()}
        print(f"gpu_check: {statuses}; figures in {args.out}")
        return 0 if all(v == "ok" for v in statuses.values()) else 1
    if args.part == "roofline":
        return _emit(roofline(args), args.json)
    s = run(args)
    if not s["is_main_process"]:
        return 0
    print(
        f"gpu_check ({s['trainer']}) on {s['device']}: {s['params'] / 1e6:,.1f}M params ({s['dtype']}), "
        f"{s['timed_steps']} timed steps of {s['completions_per_step']} completions (G={s['num_generations']}, "
        f"up to {s['max_completion_length']} new tokens, mean {_fmt(s['mean_completion_length'], '.0f')})\n"
        f"  seconds per step:        {_fmt(s['seconds_per_step'], '.2f')}\n"
        f"  tokens per second:       {_fmt(s['tokens_per_s'], '.0f')} (prompt + completion, as TRL counts them)\n"
        f"  generated tokens / s:    {_fmt(s['generated_tokens_per_s'], '.0f')} ({s['generation']})\n"
        f"  processes:               {s['world_size']} ({s['distributed_type']}"
        + (f" ZeRO-{s['zero_stage']}" if s["zero_stage"] else "")
        + f", mixed precision {s['mixed_precision']})\n"
        f"  peak GPU memory:         {_fmt(s['peak_memory_allocated_gib'], '.1f')} GiB allocated, "
        f"{_fmt(s['peak_memory_reserved_gib'], '.1f')} GiB reserved; the plan: "
        f"{_fmt(s['memory_plan'].get('peak_gb'), '.1f')} GB {s['memory_plan'].get('error', '')}\n"
        f"  total time:              {s['total_seconds']} s"
        + (" (stopped at the time budget)" if s["stopped_early"] else "")
    )
    return _emit(s, args.json)


def _emit(summary: dict[str, Any], path: str | None) -> int:
    """The summary as the last line of the output (and in `path`)."""
    line = json.dumps(summary, sort_keys=True)
    print(line)
    if path:
        with open(path, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
