"""Plan, print or launch a paper sweep defined in sweeps/<name>.yaml (behind `make reproduce-<name>`).

    python scripts/sweep.py --list
    python scripts/sweep.py tool_calling --dry-run                 # planned runs, configs, cost
    python scripts/sweep.py tool_calling --launcher slurm          # one Hydra --multirun per block
    python scripts/sweep.py healthbench_scaling -- seed=0          # extra Hydra overrides

A sweep file holds `params` (shared by every block) and `blocks` (one Hydra `--multirun` each, one
model size each, so a block's jobs share one GPU count and one accelerate config). A param with a
list value is swept (cartesian product, Hydra's basic sweeper); a scalar is a fixed override.
Extra overrides after `--` replace a param of the same key, or are added to every block.

Finished runs are skipped by the pipeline itself (rvpo_repro.train: a record with the same config
hash exists), so a preempted sweep resumes by running the same command again; `--dry-run` shows
each run's status (done / partial = started, will resume / new).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SWEEPS_DIR = ROOT / "sweeps"
ACCELERATE_DIR = ROOT / "conf" / "accelerate"
LAUNCHERS = ("local", "joblib", "slurm")

# ------------------------------------------------------------------ cost model (all estimates)
# Throughput on one H100-80GB SXM in bf16. Labelled assumptions, not measurements; a sweep file's
# `assumptions:` mapping overrides any key (see sweeps/README.md for the reasoning).
DEFAULT_ASSUMPTIONS: dict[str, Any] = {
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
    "prompt_tokens": 500,
    "completion_tokens": 500,
    "judge_items": 0.0,  # judge calls per completion (mean rubric items) when a judge is configured
    "judge_gpus": 0,  # GPUs serving the judge (counted in GPU-hours)
    "judge_calls_per_s_per_gpu": 40.0,  # Qwen2.5-7B judge on vLLM, ~1.2k-token prompts, prefix caching
    "eval_hours": 0.25,  # one evaluation of the policy on the task's benchmarks
    "overhead": 1.25,  # weight sync to vLLM, logging, checkpoint saves
}


@dataclass
class Estimate:
    """Expected cost of one run; zero for CPU runs (model without a parameter count)."""

    step_seconds: float = 0.0
    hours: float = 0.0
    gpus: int = 0
    gpu_hours: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # seconds per step by phase


def estimate(cfg: Any, assumptions: dict[str, Any] | None = None) -> Estimate:
    """Wall-clock hours and GPU-hours of one composed run under the (labelled) assumptions."""
    a = {**DEFAULT_ASSUMPTIONS, **(assumptions or {})}
    name = cfg.model.name
    if name not in a["params"]:
        return Estimate()
    n_params = a["params"][name]
    gpus = max(int(cfg.model.num_gpus), 1)
    t = cfg.trainer
    per_step = cfg.model.per_device_train_batch_size * cfg.model.gradient_accumulation_steps * gpus
    generation_batch = t.generation_batch_size or per_step
    tokens = per_step * (a["prompt_tokens"] + a["completion_tokens"])
    passes = 6.0  # forward + backward of the policy
    passes += 2.0 if t.beta > 0 else 0.0  # reference-model forward
    passes += 2.0 if (generation_batch > per_step or t.num_iterations > 1) else 0.0  # old log-probs
    train_s = passes * n_params * tokens / (gpus * a["peak_flops"] * a["mfu"])
    gen_s = per_step * a["completion_tokens"] / (gpus * a["decode_tokens_per_s"][name])
    judge_gpus = int(a["judge_gpus"]) if cfg.judge.backend != "none" else 0
    judge_s = (
        per_step * a["judge_items"] / (judge_gpus * a["judge_calls_per_s_per_gpu"]) if judge_gpus else 0.0
    )
    step_s = (gen_s + train_s + judge_s) * a["overhead"]
    n_evals = 1 + (t.max_steps // t.save_steps if t.eval_checkpoints else 0)
    hours = t.max_steps * step_s / 3600 + n_evals * a["eval_hours"]
    total_gpus = gpus + judge_gpus
    return Estimate(
        step_seconds=step_s,
        hours=hours,
        gpus=total_gpus,
        gpu_hours=hours * total_gpus,
        parts={"generate": gen_s, "train": train_s, "judge": judge_s},
    )


# ------------------------------------------------------------------ sweep files
def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


@dataclass
class Block:
    """One Hydra --multirun: fixed overrides plus swept params (cartesian product)."""

    name: str
    params: dict[str, list[str]]  # key -> Hydra values; one value = fixed override
    accelerate: str | None = None

    @property
    def fixed(self) -> list[str]:
        return [f"{k}={v[0]}" for k, v in self.params.items() if len(v) == 1]

    @property
    def swept(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.params.items() if len(v) > 1}

    def hydra_args(self) -> list[str]:
        return self.fixed + [f"{k}={','.join(v)}" for k, v in self.swept.items()]

    def jobs(self) -> list[list[str]]:
        """Overrides of every job, in Hydra's basic-sweeper order (first key outermost)."""
        keys = list(self.swept)
        return [
            self.fixed + [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            for combo in itertools.product(*(self.swept[k] for k in keys))
        ]


@dataclass
class Sweep:
    name: str
    description: str
    blocks: list[Block]
    assumptions: dict[str, Any]
    header: str  # the leading comment block of the file


def _values(value: Any) -> list[str]:
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list sweeps nothing")
        return [_hydra_value(v) for v in value]
    if isinstance(value, str) and "," in value:  # Hydra sweep syntax given as text: a,b,c
        return [v.strip() for v in value.split(",")]
    return [_hydra_value(value)]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def available() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))


def load_sweep(name: str, extra: list[str] | None = None) -> Sweep:
    """Read sweeps/<name>.yaml; `extra` overrides (key=value) replace params or add fixed ones."""
    path = SWEEPS_DIR / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"no sweep '{name}' ({path} missing); known: {', '.join(available())}")
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    unknown = set(data) - {"description", "assumptions", "params", "blocks"}
    if unknown or not isinstance(data.get("blocks"), dict) or not data["blocks"]:
        raise ValueError(
            f"{path}: expected keys description, assumptions, params, blocks (a non-empty mapping); "
            f"unknown: {sorted(unknown)}"
        )
    extra_params: dict[str, list[str]] = {}
    for override in extra or []:
        if "=" not in override:
            raise ValueError(f"extra override {override!r} is not key=value")
        extra_params[override.split("=", 1)[0]] = _values(override.split("=", 1)[1])
    blocks = []
    for block_name, spec in data["blocks"].items():
        spec = spec or {}
        bad = set(spec) - {"params", "accelerate"}
        if bad:
            raise ValueError(
                f"{path}: block '{block_name}' has unknown keys {sorted(bad)}; expected params, accelerate"
            )
        merged: dict[str, list[str]] = {}
        for source in (data.get("params") or {}, spec.get("params") or {}):
            for key, value in source.items():
                try:
                    merged[key] = _values(value)
                except ValueError as exc:
                    raise ValueError(f"{path}: block '{block_name}', param '{key}': {exc}") from exc
        for key, values in extra_params.items():
            for existing in [k for k in merged if _key(k) == _key(key)]:
                del merged[existing]
            merged[key] = values
        accelerate = spec.get("accelerate")
        if accelerate is not None and not (ACCELERATE_DIR / f"{accelerate}.yaml").exists():
            raise ValueError(
                f"{path}: block '{block_name}': no accelerate config {ACCELERATE_DIR}/{accelerate}.yaml"
            )
        blocks.append(Block(str(block_name), merged, accelerate))
    header = "\n".join(line for line in itertools.takewhile(lambda s: s.startswith("#"), text.splitlines()))
    return Sweep(name, str(data.get("description", "")), blocks, dict(data.get("assumptions") or {}), header)


# ------------------------------------------------------------------ planning
@dataclass
class Job:
    overrides: list[str]
    cfg: Any  # composed DictConfig
    estimate: Estimate
    status: str  # done | partial | new


@dataclass
class PlannedBlock:
    block: Block
    jobs: list[Job]
    gpus: int  # GPUs per run (model.num_gpus)
    command: list[str]


def compose_jobs(block: Block) -> list[Any]:
    """Compose every job's config. The seed changes no config choice, so configs that differ
    only in `seed` are composed once and copied (4x faster for the usual 3-seed sweeps)."""
    from omegaconf import OmegaConf

    from rvpo_repro.config import compose

    cache: dict[tuple[str, ...], Any] = {}
    out = []
    for overrides in block.jobs():
        seed = next((o.split("=", 1)[1] for o in overrides if _key(o) == "seed"), None)
        rest = tuple(o for o in overrides if _key(o) != "seed")
        if rest not in cache:
            cache[rest] = compose(list(rest))
        cfg = OmegaConf.create(OmegaConf.to_container(cache[rest], resolve=False))
        if seed is not None:
            cfg.seed = int(seed)
        out.append(cfg)
    return out


def run_status(cfg: Any) -> str:
    from rvpo_repro import records

    run_dir = records.run_dir(cfg)
    try:
        if records.find_finished(run_dir, records.config_hash(cfg)) is not None:
            return "done"
    except (records.RecordConflictError, ValueError):
        return "conflict"
    return "partial" if run_dir.exists() else "new"


def accelerate_env(strategy: str) -> dict[str, str]:
    """The ACCELERATE_* variables `accelerate launch --config_file conf/accelerate/<strategy>.yaml`
    would export, for jobs started without it (Slurm tasks, one process per GPU)."""
    spec = yaml.safe_load((ACCELERATE_DIR / f"{strategy}.yaml").read_text())
    env = {"ACCELERATE_MIXED_PRECISION": str(spec.get("mixed_precision", "no"))}
    if spec.get("distributed_type") == "DEEPSPEED":
        ds = spec.get("deepspeed_config") or {}
        env["ACCELERATE_USE_DEEPSPEED"] = "true"
        names = {
            "zero_stage": "ACCELERATE_DEEPSPEED_ZERO_STAGE",
            "offload_optimizer_device": "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
            "offload_param_device": "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE",
            "zero3_init_flag": "ACCELERATE_DEEPSPEED_ZERO3_INIT",
            "zero3_save_16bit_model": "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
        }
        for key, var in names.items():
            if key in ds:
                env[var] = _hydra_value(ds[key]).lower()
        # which settings came from the accelerate config (accelerate checks them against a DS json)
        env["ACCELERATE_CONFIG_DS_FIELDS"] = ",".join(
            [*ds, *(["mixed_precision"] if "mixed_precision" in spec else [])]
        )
    return env


def block_command(
    sweep: Sweep, block: Block, launcher: str, gpus: int, hours: float, slurm_max_hours: float
) -> list[str]:
    """The command that runs one block: a Hydra --multirun of rvpo_repro.train."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}; expected one of {LAUNCHERS}")
    if gpus > 1 and block.accelerate is None:
        raise ValueError(
            f"sweep {sweep.name}, block {block.name}: runs on {gpus} GPUs but names no `accelerate` config"
        )
    if launcher == "joblib" and gpus > 0:
        raise ValueError(
            f"sweep {sweep.name}, block {block.name}: joblib runs jobs side by side on one machine, and each of "
            f"these needs {gpus} GPU(s) of its own; use LAUNCHER=local (one after another) or slurm"
        )
    if launcher == "local" and gpus > 1:
        base = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str((ACCELERATE_DIR / f"{block.accelerate}.yaml").relative_to(ROOT)),
            "--num_processes",
            str(gpus),
        ]
        base += ["-m", "rvpo_repro.train"]
    else:
        base = [sys.executable, "-m", "rvpo_repro.train"]
    args = ["--multirun", *block.hydra_args()]
    args.append(f"hydra.sweep.dir=multirun/sweeps/{sweep.name}/{block.name}/${{now:%Y-%m-%d_%H-%M-%S}}")
    if launcher == "slurm":
        args.append("+launcher=slurm_ddp" if gpus > 1 else "+launcher=slurm")
        timeout = math.ceil(min(max(hours * 1.25, 1.0), slurm_max_hours) * 60)
        args += [f"hydra.launcher.gpus_per_node={gpus}"] if gpus else []
        args.append(f"hydra.launcher.timeout_min={timeout}")
        if gpus > 1:
            for key, value in accelerate_env(block.accelerate).items():
                # quoted where Hydra would read a bool, null or a sweep: the variable gets the text verbatim
                value = f'"{value}"' if value.lower() in ("true", "false", "null") or "," in value else value
                args.append(f"++hydra.job.env_set.{key}={value}")
    else:
        args.append(f"+launcher={launcher}")
    return base + args


def plan(
    sweep: Sweep, launcher: str = "local", slurm_max_hours: float = 24.0, status: bool = True
) -> list[PlannedBlock]:
    planned = []
    for block in sweep.blocks:
        cfgs = compose_jobs(block)
        jobs = [
            Job(o, c, estimate(c, sweep.assumptions), run_status(c) if status else "?")
            for o, c in zip(block.jobs(), cfgs, strict=True)
        ]
        gpus = {int(c.model.num_gpus) for c in cfgs}
        if len(gpus) != 1:
            raise ValueError(
                f"sweep {sweep.name}, block {block.name}: runs need different GPU counts {sorted(gpus)}"
            )
        (n_gpus,) = gpus
        hours = max(j.estimate.hours for j in jobs)
        planned.append(
            PlannedBlock(
                block, jobs, n_gpus, block_command(sweep, block, launcher, n_gpus, hours, slurm_max_hours)
            )
        )
    return planned


# ------------------------------------------------------------------ printing
def _aggregator_label(agg: Any) -> str:
    if agg.name == "rvpo":
        if agg.schedule in (None, "constant"):
            return f"rvpo(k={agg.risk})"
        return f"rvpo(k {agg.risk_start}->{agg.risk_end} {agg.schedule})"
    if agg.name == "variance_penalty":
        return f"variance_penalty(beta={agg.beta})"
    if agg.name == "grpo" and agg.scale not in (None, "group"):
        return f"grpo(scale={agg.scale})"
    return str(agg.name)


COLUMNS = tuple(
    "# experiment model task aggregator seed steps G compl/step lr kl max_len gen judge est_h status".split()
)


def job_row(i: int, job: Job) -> tuple[str, ...]:
    c = job.cfg
    t, m = c.trainer, c.model
    per_step = m.per_device_train_batch_size * m.gradient_accumulation_steps * max(int(m.num_gpus), 1)
    gen = f"vllm:{t.vllm_mode}" if t.use_vllm else "hf"
    judge = c.judge.backend if c.judge.backend == "none" else f"{c.judge.backend}:{c.judge.model}"
    return (
        str(i),
        str(c.experiment_name),
        str(m.name),
        str(c.task.name),
        _aggregator_label(c.aggregator),
        str(c.seed),
        str(t.max_steps),
        str(t.num_generations),
        str(per_step),
        f"{t.learning_rate:g}",
        f"{t.beta:g}",
        str(t.max_completion_length),
        gen,
        judge,
        f"{job.estimate.hours:.1f}",
        job.status,
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def describe(sweep: Sweep, planned: list[PlannedBlock], launcher: str) -> str:
    lines = [f"sweep {sweep.name}: {sweep.description}", f"launcher: {launcher}", ""]
    n_runs = n_done = 0
    gpu_hours = 0.0
    i = 0
    for pb in planned:
        est = pb.jobs[0].estimate
        lines.append(
            f"== block {pb.block.name}: {len(pb.jobs)} runs, {pb.gpus} GPU(s) each"
            + (f" (accelerate: {pb.block.accelerate})" if pb.gpus > 1 else "")
            + (f" + {est.gpus - pb.gpus} judge GPU(s)" if est.gpus > max(pb.gpus, 1) else "")
            + f"; est. {est.step_seconds:.0f} s/step, {est.hours:.1f} h/run,"
            f" {sum(j.estimate.gpu_hours for j in pb.jobs):.0f} GPU-h"
        )
        lines.append("$ " + shlex.join(pb.command))
        rows = [COLUMNS]
        for job in pb.jobs:
            rows.append(job_row(i, job))
            i += 1
        lines += [_table(rows), ""]
        n_runs += len(pb.jobs)
        n_done += sum(j.status == "done" for j in pb.jobs)
        gpu_hours += sum(j.estimate.gpu_hours for j in pb.jobs)
    lines.append(
        f"total: {n_runs} runs ({n_done} done, skipped on launch), est. {gpu_hours:.0f} GPU-h on H100-80GB "
        "(estimates; assumptions in sweeps/README.md)"
    )
    return "\n".join(lines)


def total_gpu_hours(planned: list[PlannedBlock]) -> float:
    return sum(j.estimate.gpu_hours for pb in planned for j in pb.jobs)


# ------------------------------------------------------------------ entry point
def launch(planned: list[PlannedBlock], launcher: str) -> int:
    """Run the blocks: one after another (local, joblib), or side by side (slurm: each block's
    command only submits its array job and waits for it)."""
    if launcher == "slurm":
        procs = [subprocess.Popen(pb.command, cwd=ROOT) for pb in planned]
        codes = [p.wait() for p in procs]
    else:
        codes = [subprocess.run(pb.command, cwd=ROOT).returncode for pb in planned]
    failed = [pb.block.name for pb, rc in zip(planned, codes, strict=True) if rc != 0]
    if failed:
        print(
            f"blocks failed: {', '.join(failed)} (rerun the same command: finished runs are skipped)",
            file=sys.stderr,
        )
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", nargs="?", help="a file name under sweeps/ without .yaml")
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the planned runs and commands; start nothing"
    )
    parser.add_argument("--list", action="store_true", help="list the sweeps with their runs and GPU-hours")
    parser.add_argument(
        "--slurm-max-hours",
        type=float,
        default=24.0,
        help="cap of a Slurm job's time limit; longer runs are requeued and resume from a checkpoint",
    )
    args = parser.parse_args(argv)
    if not args.list and not args.sweep:
        parser.error(f"name a sweep ({', '.join(available())}) or pass --list")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    os.chdir(ROOT)  # results/ and multirun/ are relative to the repository, as in the launched jobs
    if args.list:
        for name in available():
            sweep = load_sweep(name)
            planned = plan(sweep, status=False)
            n = sum(len(pb.jobs) for pb in planned)
            print(f"{name:22s} {n:3d} runs  {total_gpu_hours(planned):7.0f} GPU-h  {sweep.description}")
        return 0
    sweep = load_sweep(args.sweep, extra)
    planned = plan(sweep, args.launcher, args.slurm_max_hours)
    print(describe(sweep, planned, args.launcher), flush=True)
    if args.dry_run:
        return 0
    return launch(planned, args.launcher)


if __name__ == "__main__":
    sys.exit(main())
