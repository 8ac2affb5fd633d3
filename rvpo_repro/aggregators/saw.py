"""SAW: GDPO with each channel weighted by its coefficient of variation over the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rvpo_repro.aggregators.base import register
from rvpo_repro.aggregators.tensor_ops import group_deviation, presence
from rvpo_repro.aggregators.zscore import ZScoreAggregator, weighted_zsum

CV_EPS = 1e-8  # as upstream, in both the CV's denominator and the weights' normaliser


def cv_weights(x: Tensor, offsets: Tensor | None = None) -> Tensor:
    """x (N, K), NaN = absent -> (K,) weights K' cv_j / (sum_j cv_j + 1e-8), cv_j = std_j / (|mean_j| + 1e-8)
    of channel j (+ its offset) over the whole batch (Bessel std), K' the number of channels with a
    CV (present in two rows or more); 0 for the others."""
    if x.shape[0] < 2:
        return x.new_zeros(x.shape[1])
    x = x if offsets is None else x + offsets
    _, var, _ = group_deviation(x, max(x.shape[0], 1))  # the batch as one group
    count = presence(x).sum(0)
    mean = x.nansum(0) / count.clamp(min=1.0)
    cv = torch.where(count > 1, var.reshape(-1).sqrt() / (mean.abs() + CV_EPS), 0.0)
    return cv * (count > 1).sum() / (cv.sum() + CV_EPS)


@register("saw")
@dataclass
class SAW(ZScoreAggregator):
    """SAW (arXiv 2606.07705; Zhaolutuan/SAW, `verl/trainer/ppo/ray_trainer.py`, estimator
    "gdpo-h"): A = whiten(sum_j c_j w_j Z_j), c_j = K cv_j / (sum cv + 1e-8), cv_j the coefficient
    of variation std/|mean| of channel j's raw reward (+ `offsets`[j]) over the batch: a channel
    whose rewards vary more relative to their level weighs more. Upstream shifts the correctness
    reward (range [-3, 3]) by +3 and the format reward by 0, so that its mean is not near 0;
    `offsets` (K,) plays that role here (default 0: rewards in [0, 1]). The weights are constants
    of the step (upstream computes them under no_grad). Upstream whitens over tokens; `whiten`
    chooses, as for GDPO.
    """

    offsets: list[float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.offsets is not None:
            self.offsets = [float(o) for o in self.offsets]

    def _cv(self, x: Tensor) -> Tensor:
        if self.offsets is None:
            return cv_weights(x)
        off = torch.as_tensor(self.offsets, dtype=x.dtype, device=x.device)
        if off.shape != (x.shape[1],):
            raise ValueError(f"offsets has {off.numel()} entries; expected {x.shape[1]}, one per channel")
        return cv_weights(x, off)

    def _aggregate(self, x, num_generations, w, progress, lengths):
        c = self._cv(x)
        return super()._aggregate(x, num_generations, c if w is None else w * c, progress, lengths)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        return weighted_zsum(z, w, present, scorable)

    def channel_weights(self, rewards, num_generations, weights=None, progress=0.0):
        """Each channel's share c_j w_j / sum over the row's present channels."""
        return self.share(rewards, num_generations, weights, self._cv)
