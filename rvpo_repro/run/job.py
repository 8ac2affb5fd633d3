"""One run's life: build the task and model, train, evaluate, seal the record.

`train_and_evaluate` (rvpo-train) and `evaluate_checkpoint` (rvpo-eval) run in this order:
validate the config (nothing exists yet), skip a run whose record is sealed, take the run
directory's lock (one writer per run), train (resuming from the last checkpoint), evaluate, write
the record last. A run that fails or is interrupted before its first checkpoint leaves no
directory; an interrupted one after it says where the checkpoint is (see `RunInterrupted`).
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from rvpo_repro import progress
from rvpo_repro.config import check_grpo_config, grpo_kwargs, validate
from rvpo_repro.evals.base import EvalResult
from rvpo_repro.generation import GenerationSettings, generate
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.lock import run_lock
from rvpo_repro.tasks import get_task, prepare_config
from rvpo_repro.tasks.base import Task, TaskData
from rvpo_repro.tracking import log_eval_table, wandb_info, wandb_run

log = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; `str()` is the one line to show (where the checkpoint is, how to resume)."""


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
    result = task.evaluate(data.eval_dataset, generations, tokenizer)
    log_eval_table(result, prompts, generations)  # per-example W&B table, when a run is open
    return result


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
    record.primary_metric, record.example_columns = result.primary, dict(result.columns)
    if wb is not None:
        record.extra["wandb"] = wandb_info(wb)
    record_mod.write_record(run_dir, record, result.examples)
    if wb is not None:
        wb.summary.update({f"eval/{k}": v["value"] for k, v in result.metrics.items()})
    return {k: round(v["value"], 4) for k, v in result.metrics.items()}


def grpo_args(cfg: DictConfig, output_dir: Path, report_to: str) -> Any:
    """TRL GRPOConfig of a run: the trainer group as it is (`rvpo_repro.config.grpo_kwargs`)."""
    import torch
    from trl import GRPOConfig

    return GRPOConfig(
        **grpo_kwargs(cfg),
        output_dir=str(output_dir),
        run_name=output_dir.parent.name,
        report_to=report_to,
        use_cpu=not torch.cuda.is_available(),
    )


def _discard_if_unstarted(run_dir: Path) -> bool:
    """Remove `run_dir` when it holds neither a checkpoint nor a record: nothing there to resume."""
    if last_checkpoint(run_dir / "checkpoints") is None and not (run_dir / record_mod.RESULT_FILE).exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        return True
    return False


def _interrupted(run_dir: Path, command: str) -> RunInterrupted:
    ckpt = last_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        _discard_if_unstarted(run_dir)
        return RunInterrupted(
            f"interrupted before the first checkpoint; nothing kept. Start again with: {command}"
        )
    return RunInterrupted(f"interrupted; last checkpoint: {ckpt}. Resume from it with: {command}")


def train_and_evaluate(cfg: DictConfig, command: str = "the same command") -> Path:
    """Run one job; returns its record directory. A finished run with this config is skipped."""
    from rvpo_repro.aggregators import aggregator_from_config

    validate(cfg, construct_trl=False)  # GRPOConfig itself is checked once the run is not finished
    prepare_config(cfg)  # the task pins what the config alone does not fix (user code hashes)
    aggregator = aggregator_from_config(cfg.aggregator)
    cfg_hash, rid, run_dir = record_mod.config_hash(cfg), record_mod.run_id(cfg), record_mod.run_dir(cfg)
    if record_mod.find_finished(run_dir, cfg_hash) is not None:
        log.info("skipping finished run %s (config %s): %s", rid, cfg_hash, run_dir / record_mod.RESULT_FILE)
        return run_dir
    check_grpo_config(cfg)
    with run_lock(run_dir):
        if record_mod.find_finished(run_dir, cfg_hash) is not None:  # sealed while we waited to lock
            log.info("skipping finished run %s: %s", rid, run_dir / record_mod.RESULT_FILE)
            return run_dir
        try:
            summary = _train(cfg, aggregator, rid, run_dir)
        except KeyboardInterrupt:
            raise _interrupted(run_dir, command) from None
        except BaseException:
            _discard_if_unstarted(run_dir)
            raise
        finally:
            progress.close_all()
    log.info("run %s done: %s", rid, summary)
    return run_dir


def _train(cfg: DictConfig, aggregator: Any, rid: str, run_dir: Path) -> dict:
    import torch

    from rvpo_repro.callbacks import install_callbacks
    from rvpo_repro.models import load_model, load_tokenizer, resolve_model_path
    from rvpo_repro.run.resume import ResumableTrainer, not_bit_identical_reasons, recompute_train_loss

    started = record_mod.utc_now()
    config = record_mod.redact(record_mod.resolved_config(cfg))
    with wandb_run(cfg, rid, config) as wb:
        seed_everything(cfg.seed)
        tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
        model = load_model(cfg.model, cfg.paths.cache_dir)
        task, data = build_task(cfg, tokenizer)
        trainer = ResumableTrainer(
            model=model,
            processing_class=tokenizer,
            args=grpo_args(cfg, run_dir / "checkpoints", "wandb" if wb is not None else "none"),
            train_dataset=data.train_dataset,
            reward_funcs=data.reward_funcs,
            channels=data.channels,
            aggregator=aggregator,
        )
        install_callbacks(trainer)  # progress bar + compact log lines; nested config in W&B
        ckpt_evals = run_dir / "checkpoint_evals.jsonl"
        if cfg.trainer.get("eval_checkpoints"):
            trainer.add_callback(checkpoint_eval_callback(cfg, task, data, tokenizer, ckpt_evals))
        resume = last_checkpoint(run_dir / "checkpoints")
        if resume:
            log.info("resuming %s from %s", rid, resume)
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        train_seconds = time.perf_counter() - t0
        history = recompute_train_loss(trainer.state.log_history)
        record_mod.write_jsonl(run_dir / record_mod.LOG_HISTORY_FILE, history)
        final_dir = run_dir / "model"
        trainer.save_model(str(final_dir))
        tokenizer.save_pretrained(str(final_dir))

        result = evaluate_policy(cfg, task, data, trainer.model, str(final_dir), tokenizer)
        reasons = not_bit_identical_reasons(cfg, torch.cuda.is_available()) if resume else []
        train = {
            "global_step": trainer.state.global_step,
            "train_seconds": round(train_seconds, 2),
            "resumed_from": resume,
            "channels": [c.name for c in data.channels],
        }
        if resume:
            train["resumed"] = "not bit-identical: " + "; ".join(reasons) if reasons else "bit-identical"
        record = record_mod.new_record(
            cfg,
            result.metrics,
            started_at=started,
            extra={
                "train": train,
                "model_path": resolve_model_path(cfg.model, cfg.paths.cache_dir),
                "checkpoint_evals": read_checkpoint_evals(ckpt_evals),
                **data.extra,  # facts about the data (e.g. rubric_truncation)
            },
        )
        return save_result(run_dir, record, result, wb)


def evaluate_checkpoint(cfg: DictConfig) -> Path:
    """Evaluate `cfg.checkpoint` with the config's task and eval settings; returns the record dir."""
    from rvpo_repro.models import load_model, load_tokenizer

    validate(cfg, construct_trl=False)  # GRPOConfig itself is checked once the run is not finished
    prepare_config(cfg)  # the task pins what the config alone does not fix (user code hashes)
    checkpoint = Path(cfg.checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(
            f"checkpoint={checkpoint}: no saved model there (expected {checkpoint}/config.json)"
        )
    with open_dict(cfg):
        cfg.experiment_name = f"{cfg.experiment_name}-eval"
        cfg.model.source = "pretrained"
        cfg.model.path = str(checkpoint.resolve())
    cfg_hash, rid, run_dir = record_mod.config_hash(cfg), record_mod.run_id(cfg), record_mod.run_dir(cfg)
    if record_mod.find_finished(run_dir, cfg_hash) is not None:
        log.info("skipping finished evaluation %s: %s", rid, run_dir / record_mod.RESULT_FILE)
        return run_dir
    with run_lock(run_dir):
        try:
            started = record_mod.utc_now()
            with wandb_run(cfg, rid, record_mod.redact(record_mod.resolved_config(cfg))) as wb:
                seed_everything(cfg.seed)
                tokenizer = load_tokenizer(cfg.model, cfg.paths.cache_dir)
                model = load_model(cfg.model, cfg.paths.cache_dir)
                task, data = build_task(cfg, tokenizer)
                result = evaluate_policy(cfg, task, data, model, str(checkpoint), tokenizer)
                record = record_mod.new_record(
                    cfg, result.metrics, started_at=started, extra={"checkpoint": str(checkpoint)}
                )
                summary = save_result(run_dir, record, result, wb)
        except BaseException:
            _discard_if_unstarted(run_dir)
            raise
    log.info("evaluation %s done: %s", rid, summary)
    return run_dir
