"""Building blocks of a train-then-evaluate run, shared by `rvpo-train` and `rvpo-eval`."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rvpo_repro.generation import GenerationSettings, generate
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.base import EvalResult, Task, TaskData

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain data, without Hydra's own node."""
    data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    data.pop("hydra", None)
    return data


def build_task(cfg: DictConfig, tokenizer: Any) -> tuple[Task, TaskData]:
    from rvpo_repro.judges import make_judge

    task = get_task(cfg.task, judge=make_judge(cfg.judge, cfg.paths.cache_dir), cache_dir=cfg.paths.cache_dir)
    return task, task.build(tokenizer, seed=cfg.seed)


def evaluate_policy(
    cfg: DictConfig, task: Task, data: TaskData, model: Any, model_path: str, tokenizer: Any
) -> EvalResult:
    """Generate on the task's eval set with the configured back end and score it."""
    settings = GenerationSettings(
        max_new_tokens=cfg.eval.max_new_tokens or cfg.trainer.max_completion_length,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        num_samples=getattr(cfg.task, "eval_samples", 1),
        batch_size=cfg.eval.batch_size,
        seed=cfg.eval.seed,
    )
    prompts = list(data.eval_dataset["prompt"])
    log.info(
        "evaluating on %d prompts x %d samples (%s)", len(prompts), settings.num_samples, cfg.eval.backend
    )
    generations = generate(cfg.eval.backend, model, model_path, tokenizer, prompts, settings)
    return task.evaluate(data.eval_dataset, generations, tokenizer)


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def checkpoint_eval_callback(cfg: DictConfig, task: Task, data: TaskData, tokenizer: Any, path: Path):
    """A TrainerCallback that evaluates the policy at every checkpoint save (`trainer.eval_checkpoints`).

    Results are appended to `path` (JSONL, one line per step) so they survive a resume, and
    logged to W&B as `checkpoint_eval/<metric>`; the run record keeps them for best-vs-final tables.
    """
    import json

    from transformers import TrainerCallback

    class CheckpointEval(TrainerCallback):
        def on_save(self, args, state, control, model=None, **kwargs):
            if not state.is_world_process_zero or model is None:
                return
            was_training = model.training
            result = evaluate_policy(cfg, task, data, model, "", tokenizer)
            model.train(was_training)
            row = {"step": state.global_step, "metrics": {k: v["value"] for k, v in result.metrics.items()}}
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            try:
                import wandb

                if wandb.run is not None:
                    wandb.log(
                        {f"checkpoint_eval/{k}": v for k, v in row["metrics"].items()}, step=state.global_step
                    )
            except ImportError:
                pass

    return CheckpointEval()


def read_checkpoint_evals(path: Path) -> list[dict]:
    """Checkpoint evaluations written so far, one per step (the last line wins on a repeated step)."""
    import json

    if not path.exists():
        return []
    by_step = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


def save_result(run_dir: Path, record: Any, result: EvalResult, wb: Any) -> dict[str, float]:
    """Write the run record (atomically, last), put the final metrics in the W&B summary, and
    return them rounded for the closing log line. Shared by `rvpo-train` and `rvpo-eval`."""
    from rvpo_repro import records

    record.primary_metric, record.example_columns = result.primary, dict(result.columns)
    records.write_record(run_dir, record, result.examples)
    if wb is not None:
        wb.summary.update({f"eval/{k}": v["value"] for k, v in result.metrics.items()})
    return {k: round(v["value"], 4) for k, v in result.metrics.items()}
