"""Constrained GRPO: one objective channel, the others constraints with Lagrange multipliers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rvpo_repro.aggregators.base import register
from rvpo_repro.aggregators.zscore import ZScoreAggregator
from rvpo_repro.ranges import FINITE_NON_NEGATIVE, NON_NEGATIVE, within


@register("constrained_grpo")
@dataclass
class ConstrainedGRPO(ZScoreAggregator):
    """Constrained GRPO (Girgis et al., arXiv 2602.05863, Sec. 4, scalarised advantages):
    A = Z_R - sum_k lambda_k Z_{C_k}, each term z-scored within its group before the multipliers
    apply, so lambda keeps its meaning. Channel `objective` is the reward R; every other channel
    is a constraint read as a satisfaction rate in [0, 1] (1 = met), its cost C_k = 1 - r_k, so
    -Z_{C_k} = Z_{r_k} and A = w_R Z_R + sum_k lambda_k w_k Z_k. No batch whitening by default.

    The multipliers follow projected dual ascent on the violation rates, lambda_k <- max(0,
    lambda_k + lagrange_lr (mean_batch C_k - threshold)), once per training step (`update`, called by
    the trainer; evaluation batches do not move them). `lambda_init`, `lagrange_lr` and `threshold`
    (allowed violation rate) are this suite's defaults; the paper sets them per task. The state is
    not saved in checkpoints: a resumed run restarts the multipliers at `lambda_init`.
    """

    whiten: str = "none"
    objective: int = within(NON_NEGATIVE, 0)  # index of the reward channel
    lambda_init: float = within(FINITE_NON_NEGATIVE, 1.0)
    lagrange_lr: float = within(FINITE_NON_NEGATIVE, 0.1)
    threshold: float = within(FINITE_NON_NEGATIVE, 0.1)  # allowed violation rate per constraint
    multipliers: list[float] | None = field(default=None, init=False, repr=False)

    def lambdas(self, k: int, like: Tensor) -> Tensor:
        """(K,) multipliers: 1 for the objective, lambda_k for each constraint."""
        if self.objective >= k:
            raise ValueError(f"objective = {self.objective} but the rewards have {k} channels")
        if self.multipliers is None or len(self.multipliers) != k:
            self.multipliers = [1.0 if j == self.objective else self.lambda_init for j in range(k)]
        return torch.tensor(self.multipliers, dtype=like.dtype, device=like.device)

    def _aggregate(self, x, num_generations, w, progress, lengths):
        lam = self.lambdas(x.shape[1], x)
        return super()._aggregate(x, num_generations, lam if w is None else w * lam, progress, lengths)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        total = (z.nan_to_num(0.0) * w).sum(-1)
        return torch.where(present.sum(-1) > 0, total, math.nan)

    def update(self, rewards: Tensor, weights=None) -> None:
        x = torch.as_tensor(rewards).double()
        lam = self.lambdas(x.shape[1], x)
        cost = 1.0 - x.nanmean(0)  # violation rate per channel; NaN for a channel absent everywhere
        step = (lam + self.lagrange_lr * (cost - self.threshold)).clamp(min=0.0)
        lam = torch.where(torch.isfinite(step), step, lam)
        lam[self.objective] = 1.0
        self.multipliers = lam.tolist()

    def channel_weights(self, rewards, num_generations, weights=None, progress=0.0):
        """Each channel's share lambda_j w_j over the row's present channels."""
        return self.share(rewards, num_generations, weights, lambda x: self.lambdas(x.shape[1], x))
