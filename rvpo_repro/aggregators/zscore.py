"""The z-score methods' shared pipeline, and GDPO and MO-GRPO, which sum the channels' Z.

Pipeline: per-channel group z-scores Z (N, K), a row reduction over channels, then batch whitening
over sequences or tokens (`whiten`: "sequence", the default, as TRL/GDPO: every rollout counts
once; "token", as verl's masked_whiten: each rollout counted once per completion token, so the call
needs `lengths` (N,); "none": no batch whitening). The std floor is `eps` (verl adds 1e-8 to the
variance instead; verl-GDPO's train_gdpo.sh uses a std eps of 1e-6).

Saturated channels (`saturated`): a channel that every rollout of a group met, or none did, is
constant there and has Z = 0. "keep" (default) counts that 0 in the row's mean, SoftMin, min or
variance, as the paper's formula does (its mean runs over all K channels); "drop" leaves the
channel out for that group, so the reduction runs over the channels that tell the rollouts apart
(a group whose channels all saturate then has no channel: advantage 0, out of the whitening). The
default keeps the paper's formula and the committed results; with many saturated items, "keep"
pulls a row's SoftMin towards 0 (each saturated item adds a Z of 0 to the average inside the log),
which "drop" removes. A sum (GDPO, MO-GRPO) is the same under both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rvpo_repro.aggregators.base import Aggregator, register
from rvpo_repro.aggregators.tensor_ops import (
    GDPO_REDUCTIONS,
    SATURATED_RULES,
    WHITENINGS,
    batch_whiten,
    drop_saturated,
    presence,
    softmin_of_channels,
    weighted_channels,
    weighted_row_sum,
    zscores_with_presence,
)


@dataclass
class ZScoreAggregator(Aggregator):
    """Z = per-channel group z-scores; subclasses implement `_reduce` (N, K) -> (N,)."""

    whiten: str = "sequence"  # sequence | token | none
    saturated: str = "keep"  # keep | drop

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.whiten not in WHITENINGS:
            raise ValueError(f"whiten = {self.whiten!r}; expected one of {list(WHITENINGS)}")
        if self.saturated not in SATURATED_RULES:
            raise ValueError(f"saturated = {self.saturated!r}; expected one of {list(SATURATED_RULES)}")

    @property
    def wants_lengths(self) -> bool:
        return self.whiten == "token"

    def zscores(self, x, num_generations):
        """Z (N, K) and its presence mask, with saturated channels dropped if so configured."""
        z, present = zscores_with_presence(x, num_generations, self.eps)
        if self.saturated == "drop":
            z = drop_saturated(z, num_generations)
            present = presence(z)
        return z, present

    def _aggregate(self, x, num_generations, w, progress, lengths):
        if self.whiten == "token" and lengths is None:
            raise ValueError("whiten='token' needs lengths= (N,) completion token counts")
        scorable = presence(x).sum(-1) > 0  # rows with any reward (TRL's unscorable mask)
        z, present = self.zscores(x, num_generations)
        pre = self._reduce(z, w, present, num_generations, progress, scorable)
        return self.finish(pre, lengths)

    def finish(self, pre, lengths):
        """(N,) pre-advantages, NaN = no channel -> whitened (N,)."""
        if self.whiten == "none":
            return pre
        return batch_whiten(pre, self.eps, lengths if self.whiten == "token" else None)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        """Z (N, K), NaN = absent, and its presence mask, both owned (reusable), and the rows with
        any reward (N,) -> (N,), NaN = no channel."""
        raise NotImplementedError

    def share(self, rewards, num_generations, weights, factor=None):
        """(N, K) each present channel's weight (times `factor` (K,)) over the row's total."""
        x, w = self._prepare(rewards, num_generations, weights)
        if factor is not None:
            w = factor(x) if w is None else w * factor(x)
        z, w, wsum = weighted_channels(self.zscores(x, num_generations)[0], w)
        return (presence(z) * w / wsum.unsqueeze(-1)).nan_to_num(0.0)


def weighted_zsum(z, w, present, scorable):
    """Weighted nansum of Z (TRL normalize_then_sum); NaN only for rows with no reward at all."""
    total = weighted_row_sum(z.nan_to_num_(0.0), present.new_ones(present.shape[-1]) if w is None else w)
    return torch.where(scorable, total, math.nan)


@register("gdpo")
@dataclass
class GDPO(ZScoreAggregator):
    """GDPO (NVlabs/GDPO; TRL 1.16 "normalize_then_sum"): reduce="sum" (default) is the weighted nansum of Z
    (TRL "normalize_then_sum"); reduce="mean" the weighted mean of the present channels' Z
    (= rvpo at risk 0). Which one the paper's GDPO baseline used is not known; the two differ when
    prompts have different channel counts (rubrics of 5 and 17 items)."""

    reduce: str = "sum"  # sum | mean

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduce not in GDPO_REDUCTIONS:
            raise ValueError(f"reduce = {self.reduce!r}; expected one of {list(GDPO_REDUCTIONS)}")

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        if self.reduce == "mean":
            return softmin_of_channels(*weighted_channels(z, w, present), 0.0)
        return weighted_zsum(z, w, present, scorable)


@register("mo_grpo")
@dataclass
class MOGRPO(ZScoreAggregator):
    """MO-GRPO (Ichihara et al., arXiv 2509.22047, Sec. 3, the MO-GRPO advantage): each reward
    normalised by its own group mean and std, then summed, A = sum_j w_j Z_j, with no batch
    whitening after the sum (whiten="none" by default), so every channel moves the advantage by a
    comparable amount whatever its scale. Equal to GDPO's sum before GDPO's batch whitening."""

    whiten: str = "none"

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        return weighted_zsum(z, w, present, scorable)
