"""RVPOTrainer: TRL's GRPOTrainer with the advantage computed by a registered aggregator.

TRL 1.16 computes advantages inline in `_generate_and_score_completions` and offers no hook for
another aggregator. Rather than copy that 600-line method, the subclass (1) keeps the gathered
(N, K) reward matrix TRL builds in `_calculate_rewards`, (2) lets TRL finish its step, then
(3) replaces `advantages` with the aggregator's, sliced to this process exactly as TRL slices its
own. TRL's NaN convention (None reward -> NaN, all-NaN rows -> advantage 0), its reward weights
and its multi-process gather therefore apply unchanged, and every method, the TRL baselines
included, runs through the same code path.

What the aggregator receives besides the rewards:
- weights: TRL's per-function `reward_weights` (K,), times per-rollout item weights (N, K) when a
  `MultiChannelReward` provides them (`item_weights`, e.g. rubric item weights) and the aggregator
  asks for them (`wants_item_weights`: GRPO always, others with `use_item_weights=true`);
- lengths: completion token counts (N,) from TRL's completion mask, for whitening over tokens;
- progress: the fraction of training done, for risk schedules.
An aggregator that names a TRL `loss_type` (dr_grpo) has it applied here, over the trainer config's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from rvpo_repro.aggregators.base import Aggregator
from rvpo_repro.channel_metrics import channel_metrics
from rvpo_repro.rewards import (
    MAX_ABS_REWARD,
    MultiChannelReward,
    NoUsableRewardError,
    RewardChannel,
    expand_reward_funcs,
    item_weight_sources,
    out_of_domain,
)
from rvpo_repro.tasks.base import TaskInputError

log = logging.getLogger(__name__)


def process_rows(x: torch.Tensor, process_index: int, n_local: int) -> torch.Tensor:
    """This process's rows of a gathered (N_all, ...) tensor: rows [p * n, (p + 1) * n), as TRL
    gathers (process 0's rows first) and slices its own advantages."""
    start = process_index * n_local
    return x[start : start + n_local]


class RVPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages come from `aggregator`.

    Args:
        aggregator: a callable from `rvpo_repro.aggregators.get_aggregator`.
        reward_funcs: TRL reward functions and/or `MultiChannelReward`s (expanded to one TRL
            reward function per channel).
        channels: metadata (binary flag, range) for plain reward functions, matched by name.
        require_rewards: a training step in which every reward is missing raises
            NoUsableRewardError (off only for plumbing smoke runs with a random judge).
        Every other argument goes to `trl.GRPOTrainer`.
    """

    def __init__(
        self,
        *args: Any,
        aggregator: Aggregator,
        reward_funcs: Sequence[Callable | MultiChannelReward],
        channels: Sequence[RewardChannel] | None = None,
        require_rewards: bool = True,
        **kwargs: Any,
    ):
        flat, self.channels = expand_reward_funcs(reward_funcs, channels)
        super().__init__(*args, reward_funcs=flat, **kwargs)
        self.aggregator = aggregator
        self.require_rewards = require_rewards
        self._weight_sources = item_weight_sources(reward_funcs)
        self._step_rewards: torch.Tensor | None = None
        self._step_item_weights: torch.Tensor | None = None
        if aggregator.loss_type is not None and aggregator.loss_type != self.loss_type:
            log.info(
                "aggregator %s sets loss_type=%r (was %r)",
                aggregator.name,
                aggregator.loss_type,
                self.loss_type,
            )
            self.loss_type = self.args.loss_type = aggregator.loss_type  # TRL reads self.loss_type per step

    # -- hooks into TRL -------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._refuse_out_of_domain(rewards)
        if self.require_rewards and self.model.training and bool(torch.isnan(rewards).all()):
            raise NoUsableRewardError(
                f"step {self.state.global_step + 1}: every reward is missing "
                f"({rewards.shape[0]} rollouts x {rewards.shape[1]} channels)"
            )
        self._step_rewards = rewards  # (N_all_processes, K), NaN = absent
        self._step_item_weights = self._item_weights(inputs, rewards)
        return rewards

    def _refuse_out_of_domain(self, rewards: torch.Tensor) -> None:
        """±inf or |r| > MAX_ABS_REWARD in the (N, K) rewards: TaskInputError naming the channel and
        the rollout, before any advantage is computed (NaN is TRL's missing reward: left alone here;
        a user's reward returning NaN is refused where it returns it, tasks.custom.user_code)."""
        bad = torch.isinf(rewards) | (rewards.abs() > MAX_ABS_REWARD)
        if not bool(bad.any()):
            return
        row, col = (int(i) for i in bad.nonzero()[0])
        raise TaskInputError(
            f"reward channel {self.channels[col].name!r}: returned {out_of_domain(float(rewards[row, col]))} "
            f"for rollout {row} of step {self.state.global_step + 1}; expected a finite number or None"
        )

    def _item_weights(self, inputs: list[dict], rewards: torch.Tensor) -> torch.Tensor | None:
        """(N_all_processes, K) item weights (1 for channels without), or None when no reward has any."""
        from accelerate.utils import gather

        if not self.aggregator.wants_item_weights:
            return None
        local = torch.ones(len(inputs), rewards.shape[1], dtype=rewards.dtype, device=rewards.device)
        found = False
        for offset, reward in self._weight_sources:
            rows = reward.item_weights(inputs)
            if rows is None:
                continue
            found = True
            k = len(reward.channels)
            local[:, offset : offset + k] = torch.as_tensor(rows, dtype=rewards.dtype, device=rewards.device)
        return gather(local) if found else None

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        rewards = self._step_rewards
        progress = self.training_progress()
        weights = self.reward_weights.to(rewards.device, rewards.dtype)
        if self._step_item_weights is not None:
            weights = self._step_item_weights * weights  # (N, K)
        # completion token counts, gathered only for a method that whitens over tokens
        lengths = (
            self.accelerator.gather(output["completion_mask"].sum(1))
            if self.aggregator.wants_lengths
            else None
        )
        advantages = self.aggregator(
            rewards, num_generations=group, weights=weights, progress=progress, lengths=lengths
        )
        local = process_rows(advantages, self.accelerator.process_index, len(inputs))
        output["advantages"] = local.to(output["advantages"].dtype)
        # TRL logged its own advantages for the completions table; show the ones actually used.
        logged = self._logs["advantages"]  # a bounded deque
        for _ in range(min(len(logged), advantages.numel())):
            logged.pop()
        logged.extend(advantages.tolist())
        self._log_channel_metrics(rewards, progress, group, mode, weights)
        if mode == "train":  # stateful methods (constrained_grpo's multipliers) step on training batches
            self.aggregator.update(rewards, weights)
        return output

    # -- helpers --------------------------------------------------------------------------------
    def training_progress(self) -> float:
        """Fraction of training done, in [0, 1]; drives risk schedules."""
        max_steps = self.state.max_steps or self.args.max_steps
        return min(1.0, self.state.global_step / max_steps) if max_steps and max_steps > 0 else 0.0

    def _log_channel_metrics(
        self,
        rewards: torch.Tensor,
        progress: float,
        group: int,
        mode: str,
        channel_weights: torch.Tensor | None = None,
    ) -> None:
        """Append this batch's per-channel metrics (`rvpo_repro.channel_metrics`) to TRL's logs."""
        metrics = self._metrics[mode]
        values = channel_metrics(self.aggregator, rewards, self.channels, group, progress, channel_weights)
        for name, value in values.items():
            metrics[name].append(value)
