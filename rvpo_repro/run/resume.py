"""What a resumed run needs beyond TRL's checkpoint to end exactly as an uninterrupted one.

A checkpoint restores the weights, the optimizer, the scheduler, the step counter and the Python,
numpy and torch generators (`rng_state.pth`), and transformers skips the batches already trained.
Two things are left:

* TRL's RepeatSampler draws one permutation of the prompts per epoch from its own generator,
  seeded once. A run resumed in epoch e starts that generator afresh, so epoch e reuses epoch 0's
  order. `ResumableTrainer` learns e when transformers restores the training state and replays
  the sampler's generator to the state it has at the start of epoch e in an uninterrupted run.
  (transformers' own `set_epoch` call does not reach the sampler behind a skip-batches wrapper.)
* transformers checks `max_steps` after each step only, so a run resumed from the checkpoint of
  its last step would train one step more; `ResumableTrainer` starts no epoch past `max_steps`.
* transformers' `train_loss` divides the loss summed in *this* process by all steps.
  `recompute_train_loss` derives it from the per-step log instead, in every run.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from trl.trainer.utils import RepeatSampler

from rvpo_repro.run import checkpoints
from rvpo_repro.trainer import RVPOTrainer


def _indexed_cpu(obj, location: str):
    return obj if re.fullmatch(r"cpu:\d+", location) else None


# Several CPU ranks: accelerate's device is `cpu:0` and transformers loads a resumed optimizer with
# map_location=args.device, a location torch's own CPU deserializer does not accept ("don't know
# how to restore data location ... cpu:0"). An indexed CPU location is the CPU.
torch.serialization.register_package(100, lambda obj: None, _indexed_cpu)


class EpochSampler(RepeatSampler):
    """RepeatSampler whose permutation of epoch e is the same however the run got to epoch e."""

    def start_at_epoch(self, epoch: int) -> None:
        if not self.shuffle:
            return
        self.generator = torch.Generator()
        if self.seed is not None:
            self.generator.manual_seed(self.seed)
        for _ in range(epoch):  # the draws of the earlier epochs, as __iter__ makes them
            torch.randperm(self.num_samples, generator=self.generator)


class ResumableTrainer(RVPOTrainer):
    """RVPOTrainer whose checkpoints are complete or never resumed from, with a train sampler that
    survives a resume (see the module docstring).

    Each checkpoint is sealed (`rvpo_repro.run.checkpoints.seal`) once every rank has saved its
    part, and older checkpoints are rotated out only after that: transformers rotates before its
    save callbacks run, so a kill in between would leave no complete checkpoint at all."""

    def __init__(self, *args, ranks=None, **kwargs):
        from rvpo_repro.run.ranks import Ranks

        super().__init__(*args, **kwargs)
        self.ranks = ranks or Ranks()

    def _save_checkpoint(self, model, trial):
        from transformers.trainer import rotate_checkpoints
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotation: below
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.ranks.barrier()  # every rank's shards and RNG state are on disk
        if self.ranks.main:
            folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            checkpoints.seal(folder, world_size=self.ranks.world_size)
        self.ranks.barrier()
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=self.args.output_dir,
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler.__class__ = EpochSampler
            self._epoch_sampler = sampler
        return sampler

    def _init_training_state(self, *args, **kwargs):  # transformers 5: after the dataloader is built
        epochs_trained, steps_in_epoch = super()._init_training_state(*args, **kwargs)
        if (sampler := getattr(self, "_epoch_sampler", None)) is not None:
            sampler.start_at_epoch(epochs_trained)
        return epochs_trained, steps_in_epoch

    def _run_epoch(self, *args, **kwargs):
        # transformers checks max_steps only after a step: resumed from the checkpoint of the last
        # step, it would train one step past it. Here no epoch starts once max_steps is reached.
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return
        return super()._run_epoch(*args, **kwargs)


def recompute_train_loss(log_history: list[dict]) -> list[dict]:
    """`log_history` with the closing `train_loss` = step-weighted mean of the logged losses."""
    total, steps, prev = 0.0, 0, 0
    for row in log_history:
        if "loss" in row and "step" in row:
            total += float(row["loss"]) * (row["step"] - prev)
            steps, prev = row["step"], row["step"]
    out = [dict(r) for r in log_history]
    for row in out:
        if "train_loss" in row and steps:
            row["train_loss"] = total / steps
    return out


def not_bit_identical_reasons(cfg, cuda: bool) -> list[str]:
    """Why a resumed run of `cfg` may not reproduce the uninterrupted one bit for bit (empty: it does)."""
    reasons = []
    if cfg.trainer.get("use_vllm"):
        reasons.append("vLLM's sampling state is not saved in checkpoints")
    if cuda:
        reasons.append("CUDA kernels are not deterministic unless torch.use_deterministic_algorithms is on")
    return reasons
