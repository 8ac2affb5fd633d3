"""Evaluating a run and sealing its record, on rank 0 from the weights on disk: the saved
checkpoints and the published final model are evaluated (generating in a fresh process where
training held an engine or a device, rvpo_repro.run.generation_process), then the record is written
last and atomically (rvpo_repro.run.record) with the final metrics in the W&B summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rvpo_repro.evals.base import EvalResult
from rvpo_repro.generation import GenerationSettings, pick_backend
from rvpo_repro.run import checkpoint_eval
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.checkpoint_eval import read_checkpoint_evals
from rvpo_repro.run.generation_process import SavedPolicy, generate_saved
from rvpo_repro.run.lock import OpenRun
from rvpo_repro.tasks.base import Task, TaskData
from rvpo_repro.tracking import log_eval_table, wandb_info

log = logging.getLogger(__name__)


def evaluate_policy(
    cfg: DictConfig, task: Task, data: TaskData, policy: SavedPolicy, tokenizer: Any, fresh: bool = False
) -> EvalResult:
    """Generate on the task's eval set from `policy` with the configured back end (in a fresh
    process when `fresh`) and score it."""
    settings = GenerationSettings.of_run(cfg)
    prompts = list(data.eval_dataset["prompt"])
    log.info(
        "evaluating %s on %d prompts x %d samples (%s%s)",
        policy.path,
        len(prompts),
        settings.num_samples,
        cfg.eval.backend,
        ", fresh process" if fresh else "",
    )
    generations = generate_saved(cfg.eval.backend, policy, tokenizer, prompts, settings, fresh)
    result = task.evaluate(data.eval_dataset, generations, tokenizer)
    log_eval_table(result, prompts, generations)  # per-example W&B table, when a run is open
    return result


def save_result(run_dir: Path, record: Any, result: EvalResult, wb: Any) -> dict[str, float]:
    """Write the run record (atomically, last), put the final metrics in the W&B summary, and
    return them rounded for the closing log line. Shared by `rvpo-train` and `rvpo-eval`."""
    record.primary_metric, record.example_columns = result.primary, dict(result.columns)
    if wb is not None:
        record.extra["wandb"] = wandb_info(wb)
    record_mod.write_record(run_dir, record, result.examples)
    if wb is not None:
        wb.summary.update({f"eval/{k}": v["value"] for k, v in result.metrics.items()})
    return {k: round(v["value"], 4) for k, v in result.metrics.items()}


def evaluate_and_seal(
    run: OpenRun,
    summary: dict,
    tokenizer: Any,
    task: Task,
    data: TaskData,
    validation: Any,
    wb: Any,
    extra: dict,
    fresh: bool,
) -> dict[str, float]:
    """Rank 0: evaluate the saved checkpoints and the published final model, seal the record.

    Generation reads the weights on disk, in a fresh process when `fresh`
    (rvpo_repro.run.generation_process); the test set's grader sees the best checkpoint and the
    final model only when a validation split picks the best (rvpo_repro.run.checkpoint_eval)."""
    from rvpo_repro.models import resolve_model_path

    plan, cfg = run.plan, run.plan.cfg
    final = SavedPolicy.of_run(cfg, plan.run_dir / "model")  # as published, loaded as a user would

    def test(policy: SavedPolicy) -> dict[str, float]:
        return {
            k: v["value"]
            for k, v in evaluate_policy(cfg, task, data, policy, tokenizer, fresh).metrics.items()
        }

    def answers(policy: SavedPolicy):
        return lambda prompts, settings: generate_saved(
            cfg.eval.backend, policy, tokenizer, prompts, settings, fresh
        )

    if cfg.trainer.get("eval_checkpoints"):
        checkpoint_eval.evaluate_saved_checkpoints(
            cfg, data, validation, plan.run_dir, tokenizer, answers, test
        )
    result = evaluate_policy(cfg, task, data, final, tokenizer, fresh)
    rows = []
    if cfg.trainer.get("eval_checkpoints"):
        checkpoint_eval.grade_best(plan.run_dir, cfg, int(summary["global_step"]), test)
        rows = read_checkpoint_evals(plan.run_dir / checkpoint_eval.EVALS_FILE)
        checkpoint_eval.log_checkpoint_evals(rows)
    # how the numbers were made: `auto` resolved, and whether generation had a process of its own
    extra = {
        **extra,
        "evaluation": {
            "backend": pick_backend(cfg.eval.backend),
            "process": "fresh" if fresh else "in place",
        },
    }
    record = record_mod.new_record(
        cfg,
        result.metrics,
        started_at=run.started_at,
        extra={
            "train": summary,
            "model_path": resolve_model_path(cfg.model, cfg.paths.cache_dir),
            "checkpoint_evals": rows,
            **extra,  # the validation split, when one is held out
            **data.extra,  # facts about the data (e.g. rubric_truncation)
        },
    )
    metrics = save_result(plan.run_dir, record, result, wb)
    if cfg.trainer.get("eval_checkpoints"):
        checkpoint_eval.prune_exports(plan.run_dir, checkpoint_eval.best_validated_step(rows))
    return metrics
