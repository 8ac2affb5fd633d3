"""Trainer callbacks for what a user sees while training runs: `install_callbacks(trainer)`.

- `TrainProgress` replaces transformers' printer and progress callbacks (which print the whole
  ~40-key log dict at every logging step): one bar over the steps (count, ETA, reward,
  all-constraints rate, risk k; see rvpo_repro.progress for terminals vs log files) and one
  compact line per logged step. `trainer.disable_tqdm=true` keeps the lines and drops the bar.
  The full dict still goes to W&B and to the record's log_history.jsonl.
- `NestedWandbCallback` is transformers' WandbCallback with the HF model config under one W&B
  config key, `model_config`, and TRL's GRPOConfig under `grpo_config`, instead of their ~220
  keys at the top level of the run's config, beside the suite's own config groups.
- colocated vLLM on CPU gets a weight sync that works there (`generation.reloadable_colocate_sync`).
- `rvpo_repro.run.rank_facts.RankReport`: at the end of training, the distributed type, precision and a
  parameter digest of every rank, in `<output_dir>/ranks.json` and one log line.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import WandbCallback

from rvpo_repro import progress
from rvpo_repro.generation import reloadable_colocate_sync
from rvpo_repro.run.rank_facts import RankReport

# (log key, short label) shown in the summary line, in order; missing keys are left out.
SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("reward", "reward"),
    ("channels/all_constraints", "all_constraints"),
    ("channels/bottleneck", "bottleneck"),
    ("aggregator/risk", "risk"),
    ("loss", "loss"),
    ("completions/mean_length", "len"),
    ("learning_rate", "lr"),
)
BAR_KEYS = ("reward", "all_constraints", "risk")  # the few also shown on the bar itself
MODEL_CONFIG_KEY = "model_config"  # W&B config key of the HF model config
ARGS_KEY = "grpo_config"  # W&B config key of the training arguments (TRL GRPOConfig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def summary_line(step: int, max_steps: int, logs: dict) -> str:
    """`step 10/100 | reward 1.25 | all_constraints 0.5 | ...` from one training log dict."""
    parts = [f"step {step}/{max_steps}"]
    parts += [f"{label} {_fmt(logs[key])}" for key, label in SUMMARY_KEYS if logs.get(key) is not None]
    return " | ".join(parts)


class TrainProgress(TrainerCallback):
    """One progress bar over the training steps and a compact line per logging step."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = progress.bar(
                total=state.max_steps, desc="train", unit="step", initial=state.global_step
            )

    def on_step_end(self, args, state, control, **kwargs):
        # A step that logs moves the bar in on_log, so the bar shows that step's metrics.
        if self.bar is not None and not control.should_log:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "train_runtime" in logs:  # the closing summary of trainer.train()
            progress.write(
                f"training done: {state.global_step} steps in {logs['train_runtime']:.1f} s"
                + (f", mean loss {_fmt(logs['train_loss'])}" if "train_loss" in logs else "")
            )
            return
        if not any(key in logs for key, _ in SUMMARY_KEYS[:5]):
            return  # not a training-step log (e.g. checkpoint evaluations)
        if self.bar is not None:
            labels = dict(SUMMARY_KEYS)
            self.bar.set_postfix(
                {labels[k]: _fmt(logs[k]) for k, _ in SUMMARY_KEYS if labels[k] in BAR_KEYS and k in logs},
                refresh=False,
            )
            self.bar.update(state.global_step - self.bar.n)
        progress.write(summary_line(state.global_step, state.max_steps, logs))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.close()
            self.bar = None


class _NestingConfig:
    """A view of `wandb.config` whose update() nests the model config and the training arguments."""

    def __init__(self, config: Any, nests: dict[str, dict]):
        self._config, self._nests = config, nests

    def update(self, data: dict, *args: Any, **kwargs: Any) -> Any:
        taken = {k for nest in self._nests.values() for k in nest}
        data = {k: v for k, v in dict(data or {}).items() if k not in taken}
        return self._config.update({**data, **self._nests}, *args, **kwargs)

    def __setitem__(self, key: str, value: Any) -> None:
        self._config[key] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


class _NestingWandb:
    """The wandb module as WandbCallback.setup sees it, with `config` wrapped (see _NestingConfig)."""

    def __init__(self, wandb: Any, nests: dict[str, dict]):
        self._wandb, self._nests = wandb, nests

    @property
    def config(self) -> _NestingConfig:
        return _NestingConfig(self._wandb.config, self._nests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wandb, name)


class NestedWandbCallback(WandbCallback):
    """WandbCallback that nests what it adds to the W&B run config: the HF model config under
    `model_config` and TRL's GRPOConfig (all ~190 training arguments) under `grpo_config`.

    transformers' setup merges both into the top level of the run config, where they bury the
    suite's own groups (model, task, aggregator, trainer, ...). Everything else is transformers'
    own behaviour."""

    def setup(self, args, state, model, **kwargs):
        if self._wandb is None:
            return super().setup(args, state, model, **kwargs)
        config = getattr(model, "config", None)
        nests = {ARGS_KEY: args.to_dict()}
        if config is not None:
            nests[MODEL_CONFIG_KEY] = config if isinstance(config, dict) else config.to_dict()
        real = self._wandb
        self._wandb = _NestingWandb(real, nests)
        try:
            return super().setup(args, state, model, **kwargs)
        finally:
            self._wandb = real


def install_callbacks(trainer: Any) -> Any:
    """Swap transformers' console and W&B callbacks on `trainer` for the suite's (see module doc)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    replaced = [PrinterCallback, ProgressCallback]
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        replaced.append(NotebookProgressCallback)
    except ImportError:  # pragma: no cover - notebook extras absent
        pass
    for cls in replaced:
        while any(type(cb) is cls for cb in trainer.callback_handler.callbacks):
            trainer.remove_callback(cls)
    trainer.add_callback(TrainProgress())
    trainer.add_callback(RankReport(trainer))  # what the job ran under, and do the ranks agree
    reloadable_colocate_sync(trainer)  # colocated vLLM on CPU: weight sync as vLLM's own reload does it
    if not progress.is_terminal():  # transformers' own short bars (loading, writing shards) fill logs with \r
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if any(type(cb) is WandbCallback for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(WandbCallback)
        trainer.add_callback(NestedWandbCallback())
    return trainer
