"""One run's life on every rank of its job: plan, open, train, evaluate, seal the record.

`train_and_evaluate` (rvpo-train) and `evaluate_checkpoint` (rvpo-eval) share the opening
(`rvpo_repro.run.lifecycle`: validate, fix the run's identity, decide once per job: skip a sealed
run, exit 75 when another launch holds it, else where to start). Then, for training:

    load the tokenizer and build the task        every rank (reward probes, column checks: before
                                                 any weights load)
    train from the newest complete checkpoint    every rank (skipped when the final model is
                                                 already published); at each save rank 0 exports
                                                 the checkpoint's policy for evaluation
    publish model/ with the training summary     rank 0, in one rename (rvpo_repro.run.checkpoints)
    evaluate the saved checkpoints and the       rank 0, from the weights on disk, generating in a
    published model, seal the record             fresh process where training held an engine or
                                                 a device (rvpo_repro.run.generation_process); the
                                                 other ranks wait for the outcome

A kill in any phase therefore reruns only what was not finished: the record is written last and
atomically, the final model is published whole or not at all, and an incomplete checkpoint is
never resumed from.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from rvpo_repro.config import grpo_config
from rvpo_repro.evals.base import EvalResult
from rvpo_repro.generation import GenerationSettings, pick_backend, raised_in_vllm, vllm_start_error
from rvpo_repro.io import write_jsonl
from rvpo_repro.rewards import NoUsableRewardError
from rvpo_repro.run import checkpoint_eval
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.checkpoint_eval import carve_validation, export_callback, read_checkpoint_evals
from rvpo_repro.run.checkpoints import publish_model
from rvpo_repro.run.generation_process import SavedPolicy, generate_saved, needs_fresh_process
from rvpo_repro.run.lifecycle import OpenRun, agree, join_ranks, open_run, plan_run
from rvpo_repro.run.verdicts import check_missing_share, no_usable_reward, verdict_usage
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.base import Task, TaskData
from rvpo_repro.tracking import log_eval_table, report_to, wandb_info, wandb_run

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LazyJudge:
    """The evaluation judge, built on first use: only tasks that grade with it (HealthBench) need
    it, and an API judge reads its key when built, so a toy run never needs OPENAI_API_KEY."""

    def __init__(self, cfg: Any, cache_dir: str):
        self._cfg, self._cache_dir, self._judge = cfg, cache_dir, None

    def __getattr__(self, name: str) -> Any:
        if self._judge is None:
            from rvpo_repro.judges import make_judge

            self._judge = make_judge(self._cfg, self._cache_dir)
        return getattr(self._judge, name)


def eval_judge(cfg: DictConfig) -> LazyJudge | None:
    """`cfg.eval_judge` as a LazyJudge; None when it is off or the same as the training judge
    (the task then grades with the training judge and flags it)."""
    from omegaconf import OmegaConf

    grader = OmegaConf.to_container(cfg.eval_judge, resolve=True)
    if grader.get("backend", "none") == "none" or grader == OmegaConf.to_container(cfg.judge, resolve=True):
        return None
    return LazyJudge(cfg.eval_judge, cfg.paths.cache_dir)


def build_task(cfg: DictConfig, tokenizer: Any) -> tuple[Task, TaskData]:
    from rvpo_repro.judges import make_judge

    judge = make_judge(cfg.judge, cfg.paths.cache_dir)
    task = get_task(cfg.task, judge=judge, cache_dir=cfg.paths.cache_dir, eval_judge=eval_judge(cfg))
    return task, task.build(tokenizer, seed=cfg.seed)


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


def generation_label(cfg: DictConfig) -> str:
    """How training generated its rollouts: `hf`, or `vllm:<mode>` (colocate, server)."""
    return f"vllm:{cfg.trainer.get('vllm_mode', 'colocate')}" if cfg.trainer.get("use_vllm") else "hf"


def train_and_evaluate(cfg: DictConfig, command: str = "the same command") -> Path:
    """Run one job on every rank; returns its record directory. A sealed run is skipped."""
    plan = plan_run(cfg, train=True)
    ranks = join_ranks(cfg)
    with open_run(plan, ranks, command) as run:
        if run is None:
            return plan.run_dir
        args = grpo_config(  # checked here, once the run is known to be unfinished
            cfg,
            str(plan.checkpoints),
            report_to=report_to(cfg),
            run_name=plan.run_dir.parent.name,
        )
        with wandb_run(cfg, plan.run_id, plan.config) as wb:
            seed_everything(cfg.seed)
            from rvpo_repro.models import load_tokenizer

            tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
            task, data = build_task(cfg, tokenizer)  # reward probes and column checks: no weights yet
            data, validation, validation_facts = carve_validation(cfg, data)  # held out of training
            summary = run.trained
            trained_here = summary is None
            if trained_here:
                summary = _train(run, args, tokenizer, task, data)
            extra = {"validation_split": validation_facts} if validation_facts else {}
            fresh = trained_here and needs_fresh_process(cfg, ranks.world_size)
            metrics = agree(
                ranks,
                lambda: _evaluate_and_seal(run, summary, tokenizer, task, data, validation, wb, extra, fresh),
            )
    log.info("run %s done: %s", plan.run_id, metrics)
    return plan.run_dir


@contextlib.contextmanager
def distributed_kept() -> Iterator[None]:
    """Hold off torch.distributed's teardown while TRL's colocated vLLM engine is collected: vLLM
    0.31's engine shutdown (run by a finalizer when the engine is collected) destroys every process
    group of the process, which the job's ranks still use to wait for the evaluation's outcome."""
    import torch.distributed as dist

    teardown = dist.destroy_process_group
    dist.destroy_process_group = lambda *args, **kwargs: None
    try:
        yield
    finally:
        dist.destroy_process_group = teardown


def _train(run: OpenRun, args: Any, tokenizer: Any, task: Task, data: TaskData) -> dict:
    """Train on every rank (from `run.resume` when set), publish model/, return its summary."""
    import torch

    from rvpo_repro.callbacks import install_callbacks
    from rvpo_repro.models import load_model, resolve_model_path
    from rvpo_repro.run.resume import ResumableTrainer, not_bit_identical_reasons, recompute_train_loss

    plan, ranks, cfg = run.plan, run.ranks, run.plan.cfg
    warn_small_gpu(cfg)
    try:
        trainer = ResumableTrainer(
            model=load_model(cfg.model, cfg.paths.cache_dir),
            processing_class=tokenizer,
            args=args,
            train_dataset=data.train_dataset,
            reward_funcs=data.reward_funcs,
            channels=data.channels,
            aggregator=plan.aggregator,
            require_rewards=float(cfg.run.max_missing_share) < 1.0,
            ranks=ranks,  # seals each checkpoint once every rank has saved it
        )
    except Exception as exc:  # TRL starts the colocated vLLM engine here, before the first step
        if cfg.trainer.get("use_vllm") and raised_in_vllm(exc):
            raise vllm_start_error(exc, resolve_model_path(cfg.model, cfg.paths.cache_dir)) from exc
        raise
    install_callbacks(trainer)  # progress bar + compact log lines; nested config in W&B
    if cfg.trainer.get("eval_checkpoints"):  # evaluated after training, from these exports
        trainer.add_callback(export_callback(plan.run_dir))
    if run.resume:
        log.info("resuming %s from %s", plan.run_id, run.resume)
    t0 = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=run.resume)
    except NoUsableRewardError as exc:
        raise no_usable_reward(str(exc), task.judge) from None
    train_seconds = time.perf_counter() - t0
    reasons = not_bit_identical_reasons(cfg, torch.cuda.is_available()) if run.resume else []
    summary = {
        "global_step": trainer.state.global_step,
        "train_seconds": round(train_seconds, 2),
        "resumed_from": run.resume,
        "channels": [c.name for c in data.channels],
        "world_size": ranks.world_size,
        "distributed_type": trainer.rank_facts[0]["distributed_type"],
        "generation": generation_label(cfg),
        "judge": verdict_usage(getattr(task, "judge", None), ranks),
        "ranks": trainer.rank_facts,  # what each rank ran under, and a digest of its weights
    }
    if run.resume:
        summary["resumed"] = "not bit-identical: " + "; ".join(reasons) if reasons else "bit-identical"
    check_missing_share(summary["judge"], float(cfg.run.max_missing_share), plan.run_dir)
    partial, final = plan.run_dir / "model.partial", plan.run_dir / "model"
    trainer.save_model(str(partial))  # every rank: ZeRO-3 gathers the weights to rank 0
    if ranks.main:
        tokenizer.save_pretrained(str(partial))
        history = recompute_train_loss(trainer.state.log_history)
        write_jsonl(plan.run_dir / record_mod.LOG_HISTORY_FILE, history)
        publish_model(partial, final, summary)
    ranks.barrier()
    with distributed_kept():  # the engine's memory is freed here, before evaluation starts
        del trainer
        gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # rank 0 evaluates next, on the same device
    return summary


def warn_small_gpu(cfg: DictConfig) -> None:
    """One line when this rank's GPU has less memory than the memory plan is held against."""
    import os

    import torch

    from rvpo_repro.sizing.memory import gpu_shortfall

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(
            int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        )
        if line := gpu_shortfall(props.name, props.total_memory, float(cfg.model.gpu_memory_gb)):
            log.warning(line)


def _evaluate_and_seal(
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


def evaluate_checkpoint(cfg: DictConfig, command: str = "the same command") -> Path:
    """Evaluate `cfg.checkpoint` with the config's task and eval settings; returns the record dir."""
    checkpoint = Path(cfg.checkpoint)
    if not (checkpoint / "config.json").exists():
        from rvpo_repro.config import ConfigError

        raise ConfigError(
            f"checkpoint={checkpoint}: no saved model there (expected {checkpoint}/config.json)"
        )
    with open_dict(cfg):
        cfg.experiment_name = f"{cfg.experiment_name}-eval"
        cfg.model.source = "pretrained"
        cfg.model.path = str(checkpoint.resolve())
    plan = plan_run(cfg, train=False)
    ranks = join_ranks(cfg)
    with open_run(plan, ranks, command, what="evaluation") as run:
        if run is None:
            return plan.run_dir
        with wandb_run(cfg, plan.run_id, plan.config) as wb:
            metrics = agree(ranks, lambda: _evaluate_checkpoint(run, checkpoint, wb))
    log.info("evaluation %s done: %s", plan.run_id, metrics)
    return plan.run_dir


def _evaluate_checkpoint(run: OpenRun, checkpoint: Path, wb: Any) -> dict[str, float]:
    from rvpo_repro.models import load_tokenizer

    cfg = run.plan.cfg
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
    task, data = build_task(cfg, tokenizer)
    result = evaluate_policy(cfg, task, data, SavedPolicy.of_run(cfg, checkpoint), tokenizer)
    record = record_mod.new_record(
        cfg, result.metrics, started_at=run.started_at, extra={"checkpoint": str(checkpoint)}
    )
    return save_result(run.plan.run_dir, record, result, wb)
