"""One run's life on every rank of its job, phase after phase, for `rvpo-train`
(`train_and_evaluate`) and `rvpo-eval` (`evaluate_checkpoint`):

    plan        validate the config once, check the memory plan, fix the       rvpo_repro.run.plan
                run's identity and its aggregator
    lock        join the ranks; decide once per job: skip a sealed run, exit    rvpo_repro.run.ranks
                75 when another launch holds it, else where to start, with      rvpo_repro.run.lock
                rank 0 holding the run's lock
    train       every rank: load the tokenizer and build the task (reward       rvpo_repro.run.task
                probes, column checks: before any weights load), then train     rvpo_repro.run.training
                from the newest complete checkpoint (skipped when the final
                model is already published); at each save rank 0 exports the
                checkpoint's policy for evaluation
    publish     rank 0: model/ with the training summary, in one rename         rvpo_repro.run.checkpoints
    evaluate    rank 0: the saved checkpoints and the published model, from     rvpo_repro.run.evaluation
                the weights on disk; the other ranks wait for the outcome
    seal        rank 0: the record, written last and atomically                 rvpo_repro.run.record

A kill in any phase therefore reruns only what was not finished: the record is written last and
atomically, the final model is published whole or not at all, and an incomplete checkpoint is
never resumed from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from rvpo_repro.config import ConfigError, grpo_config
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.checkpoint_eval import carve_validation
from rvpo_repro.run.evaluation import evaluate_and_seal, evaluate_policy, save_result
from rvpo_repro.run.generation_process import SavedPolicy, needs_fresh_process
from rvpo_repro.run.lock import OpenRun, open_run
from rvpo_repro.run.plan import plan_run
from rvpo_repro.run.ranks import agree, join_ranks
from rvpo_repro.run.task import build_task, seed_everything
from rvpo_repro.run.training import train_policy
from rvpo_repro.tracking import report_to, wandb_run

log = logging.getLogger(__name__)


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
                summary = train_policy(run, args, tokenizer, task, data)
            extra = {"validation_split": validation_facts} if validation_facts else {}
            fresh = trained_here and needs_fresh_process(cfg, ranks.world_size)
            metrics = agree(
                ranks,
                lambda: evaluate_and_seal(run, summary, tokenizer, task, data, validation, wb, extra, fresh),
            )
    log.info("run %s done: %s", plan.run_id, metrics)
    return plan.run_dir


def evaluate_checkpoint(cfg: DictConfig, command: str = "the same command") -> Path:
    """Evaluate `cfg.checkpoint` with the config's task and eval settings; returns the record dir."""
    checkpoint = Path(cfg.checkpoint)
    if not (checkpoint / "config.json").exists():
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
