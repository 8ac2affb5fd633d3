"""Training a run on every rank, then publishing its final model: the trainer starts from the newest
complete checkpoint when the lock found one (`OpenRun.resume`), rank 0 exports each checkpoint's
policy for evaluation as it is saved (rvpo_repro.run.checkpoint_eval), and the final model is
published whole or not at all, with the training summary (rvpo_repro.run.checkpoints)."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from rvpo_repro.generation import raised_in_vllm, vllm_start_error
from rvpo_repro.io import write_jsonl
from rvpo_repro.rewards import NoUsableRewardError
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.checkpoint_eval import export_callback
from rvpo_repro.run.checkpoints import publish_model
from rvpo_repro.run.lock import OpenRun
from rvpo_repro.run.verdicts import check_missing_share, no_usable_reward, verdict_usage
from rvpo_repro.tasks.base import Task, TaskData

log = logging.getLogger(__name__)


def generation_label(cfg: DictConfig) -> str:
    """How training generated its rollouts: `hf`, or `vllm:<mode>` (colocate, server)."""
    return f"vllm:{cfg.trainer.get('vllm_mode', 'colocate')}" if cfg.trainer.get("use_vllm") else "hf"


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


def train_policy(run: OpenRun, args: Any, tokenizer: Any, task: Task, data: TaskData) -> dict:
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
