"""`rvpo-train`: compose a config, train with the chosen aggregator, evaluate, write the run record.

rvpo-train                                    # tiny model, toy_constraints, rvpo
rvpo-train aggregator=gdpo seed=1
rvpo-train -m aggregator=grpo,gdpo,rvpo seed=0,1,2    # Hydra multirun
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rvpo_repro import records
from rvpo_repro.aggregators import aggregator_from_config
from rvpo_repro.cli import run_hydra
from rvpo_repro.config import validate
from rvpo_repro.models import load_model, load_tokenizer, resolve_model_path
from rvpo_repro.pipeline import (
    build_task,
    checkpoint_eval_callback,
    evaluate_policy,
    last_checkpoint,
    read_checkpoint_evals,
    save_result,
    seed_everything,
)
from rvpo_repro.tracking import wandb_run

log = logging.getLogger("rvpo_repro.train")


def grpo_args(cfg: DictConfig, output_dir: Path, report_to: str) -> Any:
    """TRL GRPOConfig from the trainer and model groups."""
    import torch
    from trl import GRPOConfig

    t, m = cfg.trainer, cfg.model
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        per_device_train_batch_size=m.per_device_train_batch_size,
        gradient_accumulation_steps=m.gradient_accumulation_steps,
        gradient_checkpointing=m.gradient_checkpointing,
        num_generations=t.num_generations,
        generation_batch_size=t.generation_batch_size,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        top_p=t.top_p,
        beta=t.beta,
        epsilon=t.epsilon,
        loss_type=t.loss_type,
        num_iterations=t.num_iterations,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        use_vllm=t.use_vllm,
        vllm_mode=t.vllm_mode,
        vllm_gpu_memory_utilization=m.vllm_gpu_memory_utilization,
        bf16=t.bf16,
        reward_weights=list(cfg.aggregator.weights) if cfg.aggregator.weights else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=report_to,
        run_name=output_dir.parent.name,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        log_completions=False,
    )


def train_and_evaluate(cfg: DictConfig) -> Path:
    """Run one job; returns its record directory. A finished run with this config is skipped."""
    validate(cfg)
    aggregator = aggregator_from_config(cfg.aggregator)  # fail on a bad option before any work
    cfg_hash = records.config_hash(cfg)
    rid = records.run_id(cfg)
    run_dir = records.run_dir(cfg)
    if records.find_finished(run_dir, cfg_hash) is not None:
        log.info("skipping finished run %s (config %s): %s", rid, cfg_hash, run_dir / "result.json")
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    started = records.utc_now()
    config = records.redact(records.resolved_config(cfg))

    with wandb_run(cfg, rid, config) as wb:
        from rvpo_repro.trainer import RVPOTrainer

        seed_everything(cfg.seed)
        tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
        model = load_model(cfg.model, cfg.paths.cache_dir)
        task, data = build_task(cfg, tokenizer)
        trainer = RVPOTrainer(
            model=model,
            processing_class=tokenizer,
            args=grpo_args(cfg, run_dir / "checkpoints", "wandb" if wb is not None else "none"),
            train_dataset=data.train_dataset,
            reward_funcs=data.reward_funcs,
            channels=data.channels,
            aggregator=aggregator,
        )
        ckpt_evals = run_dir / "checkpoint_evals.jsonl"
        if cfg.trainer.eval_checkpoints:
            trainer.add_callback(checkpoint_eval_callback(cfg, task, data, tokenizer, ckpt_evals))
        resume = last_checkpoint(run_dir / "checkpoints")
        if resume:
            log.info("resuming %s from %s", rid, resume)
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        train_seconds = time.perf_counter() - t0
        records.write_jsonl(run_dir / records.LOG_HISTORY_FILE, trainer.state.log_history)
        final_dir = run_dir / "model"
        trainer.save_model(str(final_dir))
        tokenizer.save_pretrained(str(final_dir))

        result = evaluate_policy(cfg, task, data, trainer.model, str(final_dir), tokenizer)
        record = records.new_record(
            cfg,
            result.metrics,
            started_at=started,
            extra={
                "train": {
                    "global_step": trainer.state.global_step,
                    "train_seconds": round(train_seconds, 2),
                    "resumed_from": resume,
                    "channels": [c.name for c in data.channels],
                },
                "model_path": resolve_model_path(cfg.model, cfg.paths.cache_dir),
                "checkpoint_evals": read_checkpoint_evals(ckpt_evals),
            },
        )
        summary = save_result(run_dir, record, result, wb)
    log.info("run %s done: %s", rid, summary)
    return run_dir


def main() -> None:
    run_hydra(train_and_evaluate, "train")


if __name__ == "__main__":
    main()
