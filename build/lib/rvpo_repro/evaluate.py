"""`rvpo-eval`: evaluate a saved policy on a task's eval set and write a run record.

    rvpo-eval experiment=toy checkpoint=results/runs/toy/<run-id>/model
    rvpo-eval -m experiment=toy checkpoint=a/model,b/model          # several, as a multirun

The record lands under experiment `<experiment_name>-eval`, keyed by the config hash (which
includes the checkpoint path), so it never overwrites the training run's own record.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from rvpo_repro import records
from rvpo_repro.cli import run_hydra
from rvpo_repro.config import validate
from rvpo_repro.models import load_model, load_tokenizer
from rvpo_repro.pipeline import build_task, evaluate_policy, save_result, seed_everything
from rvpo_repro.tracking import wandb_run

log = logging.getLogger("rvpo_repro.evaluate")


def evaluate_checkpoint(cfg: DictConfig) -> Path:
    """Evaluate `cfg.checkpoint` with the config's task and eval settings; returns the record dir."""
    validate(cfg)
    checkpoint = Path(cfg.checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(
            f"checkpoint={checkpoint}: no saved model there (expected {checkpoint}/config.json)"
        )
    with open_dict(cfg):
        cfg.experiment_name = f"{cfg.experiment_name}-eval"
        cfg.model.source = "pretrained"
        cfg.model.path = str(checkpoint.resolve())
    cfg_hash, rid, run_dir = records.config_hash(cfg), records.run_id(cfg), records.run_dir(cfg)
    if records.find_finished(run_dir, cfg_hash) is not None:
        log.info("skipping finished evaluation %s: %s", rid, run_dir / records.RESULT_FILE)
        return run_dir
    started = records.utc_now()
    with wandb_run(cfg, rid, records.redact(records.resolved_config(cfg))) as wb:
        seed_everything(cfg.seed)
        tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
        model = load_model(cfg.model, cfg.paths.cache_dir)
        task, data = build_task(cfg, tokenizer)
        result = evaluate_policy(cfg, task, data, model, str(checkpoint), tokenizer)
        record = records.new_record(
            cfg, result.metrics, started_at=started, extra={"checkpoint": str(checkpoint)}
        )
        summary = save_result(run_dir, record, result, wb)
    log.info("evaluation %s done: %s", rid, summary)
    return run_dir


def main() -> None:
    run_hydra(evaluate_checkpoint, "evaluate")


if __name__ == "__main__":
    main()
