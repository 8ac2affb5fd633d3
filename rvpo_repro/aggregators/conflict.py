"""GD²PO: GDPO that drops the rollouts whose channels pull in opposite directions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rvpo_repro.aggregators.base import register
from rvpo_repro.aggregators.tensor_ops import weighted_channels, weighted_row_sum
from rvpo_repro.aggregators.zscore import ZScoreAggregator
from rvpo_repro.ranges import FINITE, within

CONFLICT_MODES = ("hard", "snr")
SIGN_EPS = 1e-8  # |Z| below this has no sign (upstream's mixed-sign test)
RATIO_EPS = 1e-8  # upstream's gdpo_filter_ratio_conflict_eps


def conflict_keep(
    z: Tensor, w: Tensor, valid: Tensor, num_generations: int, mode: str, tau: float
) -> tuple[Tensor, Tensor]:
    """z (N, K), NaN = absent; w (K,) or (N, K) > 0 where present; valid (N,) rows with a channel
    -> (keep (N,) bool, the share of its group's valid rows kept (N,)).

    A rollout is in conflict when one present channel's weighted Z is > 1e-8 and another's < -1e-8.
    mode "hard" drops every conflicting rollout; "snr" only those whose agreement ratio
    |sum_j w_j Z_j| / (sum_j w_j |Z_j| + 1e-8) is below tau (a weak net direction)."""
    wz = (z * w).nan_to_num(0.0)
    conflict = (wz > SIGN_EPS).any(-1) & (wz < -SIGN_EPS).any(-1)
    if mode == "snr":
        ratio = wz.sum(-1) / (wz.abs().sum(-1) + RATIO_EPS)
        conflict &= ratio.abs() < min(max(tau, 0.0), 1.0)  # upstream clamps tau to [0, 1]
    keep = ~conflict & valid
    kept = keep.to(z.dtype).reshape(-1, num_generations).sum(-1, keepdim=True)
    share = kept / valid.to(z.dtype).reshape(-1, num_generations).sum(-1, keepdim=True).clamp(min=1.0)
    return keep, share.expand(-1, num_generations).reshape(-1)


@register("gd2po")
@dataclass
class GD2PO(ZScoreAggregator):
    """GD²PO (arXiv 2606.16771; Qwen-Applications/GD2PO, `tool-calling/verl/trainer/ppo/
    ray_trainer.py`, estimators gdpo_filter_group_ratio = mode "hard" and
    gdpo_filter_ratio_conflict_group_ratio = mode "snr"): GDPO's per-channel Z; rollouts in
    conflict (see `conflict_keep`) get advantage 0 and leave the batch whitening; the others'
    sum_j w_j Z_j is scaled by the share of their group that was kept (of its rows with a
    channel), then whitened over the kept
    rollouts. `tau` = 0.8 is the threshold of upstream's SNR scripts (its code default is 0.2).
    Upstream tests signs on each rollout's Z summed over its tokens (same sign; the ratio then
    differs by 1e-8 / length in its denominator) and whitens over tokens (`whiten="token"`).
    """

    mode: str = "snr"
    tau: float = within(FINITE, 0.8)  # clamped to [0, 1], as upstream

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in CONFLICT_MODES:
            raise ValueError(f"mode = {self.mode!r}; expected one of {list(CONFLICT_MODES)}")

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        z, w, wsum = weighted_channels(z, w, present)
        keep, share = conflict_keep(z, w, wsum > 0, num_generations, self.mode, self.tau)
        total = weighted_row_sum(z.nan_to_num(0.0), w) * share
        return torch.where(keep, total, math.nan)

    def kept(self, rewards: Tensor, num_generations: int, weights=None) -> Tensor:
        """(N,) bool: the rollouts GD²PO keeps (for logs and tests)."""
        x, w = self._prepare(rewards, num_generations, weights)
        z, w, wsum = weighted_channels(self.zscores(x, num_generations)[0], w)
        return conflict_keep(z, w, wsum > 0, num_generations, self.mode, self.tau)[0]
