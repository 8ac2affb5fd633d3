"""GRPO and Dr. GRPO: a weighted sum of the raw channel rewards, then the group baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rvpo_repro.aggregators.base import Aggregator, register
from rvpo_repro.aggregators.tensor_ops import (
    GRPO_SCALES,
    MISSING_RULES,
    group_deviation,
    presence,
    renormalised_sum,
    weighted_row_sum,
)


def grpo_advantage(
    x: Tensor, num_generations: int, w: Tensor | None, scale: str, eps: float, missing: str = "renormalise"
) -> Tensor:
    """x (N, K) -> (N,): weighted sum (missing verdicts by `missing`), minus its group mean, over
    the std `scale` names (+ eps)."""
    w = x.new_ones(x.shape[-1]) if w is None else w
    if missing == "renormalise":
        total = renormalised_sum(x, w, num_generations)
    else:  # TRL's nansum: a missing verdict adds 0
        total = weighted_row_sum(x.nan_to_num(0.0), w)
        total = torch.where(presence(x).sum(-1) > 0, total, math.nan)  # unscorable rows, as TRL
    dev, var, _ = group_deviation(total.unsqueeze(-1), num_generations)
    if scale == "none":
        return dev.reshape(-1)
    if scale == "batch":  # std of the raw totals over the batch, as TRL
        var = group_deviation(total.unsqueeze(-1), max(len(total), 1))[1]
    return (dev / (var.sqrt() + eps)).reshape(-1)


@dataclass
class _RawSum(Aggregator):
    """Options shared by the raw-sum methods: `missing` = "renormalise" (default: a missing
    verdict is absent, the row's sum renormalised over its graded items; see the package
    docstring) or "nansum" (TRL's: a missing verdict adds 0, i.e. counts as a failed item)."""

    missing: str = "renormalise"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.missing not in MISSING_RULES:
            raise ValueError(f"missing = {self.missing!r}; expected one of {list(MISSING_RULES)}")

    @property
    def wants_item_weights(self) -> bool:
        return True


@register("grpo")
@dataclass
class GRPO(_RawSum):
    """Weighted sum over channels, then group baseline and scale (TRL "sum_then_normalize").

    Always takes per-rollout item weights when the task has them (the paper's GRPO is a weighted
    sum of raw rewards)."""

    scale: str = "group"  # group | batch | none, as TRL's scale_rewards

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale not in GRPO_SCALES:
            raise ValueError(f"scale = {self.scale!r}; expected one of {list(GRPO_SCALES)}")

    def _aggregate(self, x, num_generations, w, progress, lengths):
        return grpo_advantage(x, num_generations, w, self.scale, self.eps, self.missing)


@register("dr_grpo")
@dataclass
class DrGRPO(_RawSum):
    """Dr. GRPO: weighted sum minus its group mean (no std division), with TRL's loss_type
    "dr_grpo" (sum over tokens / a constant, no per-sequence length normalisation)."""

    loss_type: ClassVar[str | None] = "dr_grpo"

    def _aggregate(self, x, num_generations, w, progress, lengths):
        return grpo_advantage(x, num_generations, w, "none", self.eps, self.missing)
