"""What `rvpo-sweep` prints: a sweep's blocks with their cost, memory plan and launch command, and
one row per run (rvpo_repro.sweep.plan builds the plan; this module only shows it)."""

from __future__ import annotations

import shlex
from typing import Any

from omegaconf import OmegaConf

from rvpo_repro.analysis.labels import method_label
from rvpo_repro.sizing.memory import MemoryPlan


# Job, Launch and Sweep are rvpo_repro.sweep.plan's (which imports this module to print them).
def block_memory(launch: Any) -> MemoryPlan:
    """The block's memory plan with the highest peak (its runs differ in settings that may matter)."""
    plans = [j.memory for j in launch.jobs if j.memory is not None]
    known = [p for p in plans if not p.unknown]
    return max(known, key=lambda p: p.peak_gb) if known else plans[0]


def total_gpu_hours(launches: list[Any]) -> float:
    return sum(j.estimate.gpu_hours for launch in launches for j in launch.jobs)


def grader_totals(jobs: list[Any]) -> tuple[float, float]:
    """(paid grader calls, their dollars) of these jobs; a grader without a price counts no dollars."""
    graded = [j.estimate.grader for j in jobs if j.estimate.grader is not None]
    return sum(g.calls for g in graded), sum(g.usd or 0.0 for g in graded)


def _grader_text(jobs: list[Any]) -> str:
    calls, usd = grader_totals(jobs)
    if not calls:
        return "no paid grader"
    models = sorted({j.estimate.grader.model for j in jobs if j.estimate.grader is not None})
    return f"{', '.join(models)} grader: {calls:,.0f} calls, ${usd:,.0f}"


def _judge(j: Any) -> str:
    return "none" if j.backend == "none" else f"{j.backend}:{j.model}"


def grader(cfg: Any) -> str:
    """Who grades HealthBench in this run ("-" when the run does not evaluate HealthBench), and
    whether it is simple-evals' grader (model, sampling, system message) or the training judge."""
    if "healthbench" not in list(cfg.task.get("evals") or []):
        return "-"
    from rvpo_repro.evals.healthbench_grader import GRADER_SYSTEM, UPSTREAM_GRADER

    g = cfg.eval_judge
    used = {k: g.get(k) for k in UPSTREAM_GRADER}
    upstream = used == UPSTREAM_GRADER and g.get("system_message", GRADER_SYSTEM) == GRADER_SYSTEM
    note = "simple-evals" if upstream else "not simple-evals"
    if (g.backend, g.model) == (cfg.judge.backend, cfg.judge.model):
        note += ", training judge"
    return f"{_judge(g)}({note})"


COLUMNS = tuple(
    "# aggregator method seed steps G compl/step lr kl max_len gen judge grader est_h status".split()
)


def job_row(i: int, job: Any) -> tuple[str, ...]:
    c = job.cfg
    t, m = c.trainer, c.model
    per_step = m.per_device_train_batch_size * m.gradient_accumulation_steps * max(int(m.num_gpus), 1)
    return (
        str(i),
        str(c.hydra.runtime.choices.aggregator),
        method_label(OmegaConf.to_container(c.aggregator, resolve=True)).replace(" ", "_"),
        str(c.seed),
        str(t.max_steps),
        str(t.num_generations),
        str(per_step),
        f"{t.learning_rate:g}",
        f"{t.beta:g}",
        str(t.max_completion_length),
        f"vllm:{t.vllm_mode}" if t.use_vllm else "hf",
        _judge(c.judge),
        grader(c),
        f"{job.estimate.hours:.1f}",
        job.status,
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def describe(sweep: Any, launches: list[Any], launcher: str) -> str:
    lines = [f"sweep {sweep.name}: {sweep.description}", f"launcher: {launcher}", ""]
    i = 0
    for launch in launches:
        first = launch.jobs[0]
        est, c = first.estimate, first.cfg
        judge_gpus = est.gpus - max(launch.gpus, 1) if est.gpus > max(launch.gpus, 1) else 0
        lines.append(
            f"== {launch.model}: {len(launch.jobs)} runs of experiment {c.experiment_name} (task {c.task.name}),"
            f" {launch.gpus} GPU(s) each"
            + (f" (accelerate: {launch.accelerate})" if launch.gpus > 1 else "")
            + (f" + {judge_gpus} judge GPU(s)" if judge_gpus else "")
            + f"; est. {est.step_seconds:.0f} s/step, {est.hours:.1f} h/run,"
            f" {sum(j.estimate.gpu_hours for j in launch.jobs):.0f} GPU-h; {_grader_text(launch.jobs)}"
        )
        lines += block_memory(launch).lines()
        if est.judge is not None:
            lines.append(f"   {est.judge.describe()}")
        lines.append("$ " + shlex.join(launch.command))
        rows = [COLUMNS]
        for job in launch.jobs:
            rows.append(job_row(i, job))
            i += 1
        lines += [_table(rows), ""]
    jobs = [j for launch in launches for j in launch.jobs]
    lines.append(
        f"total: {len(jobs)} runs ({sum(j.status == 'done' for j in jobs)} done, skipped on launch), "
        f"est. {total_gpu_hours(launches):.0f} GPU-h on H100-80GB, {_grader_text(jobs)} "
        "(estimates; assumptions in docs/guides/costs.md)"
    )
    return "\n".join(lines)
