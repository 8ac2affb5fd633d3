"""RVPO and its limits: the SoftMin of the channels' Z (hard min at k = inf), and the explicit
variance penalty it equals to second order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from rvpo_repro.aggregators.base import register
from rvpo_repro.aggregators.tensor_ops import (
    SCHEDULES,
    check_progress,
    mean_var_of_channels,
    presence,
    risk_schedule,
    softmin_of_channels,
    softmin_weights,
    weighted_channels,
    zscore_bound,
)
from rvpo_repro.aggregators.zscore import ZScoreAggregator
from rvpo_repro.ranges import FINITE_NON_NEGATIVE, NON_NEGATIVE, within


@register("rvpo")
@dataclass
class RVPO(ZScoreAggregator):
    """RVPO (arXiv 2605.05750, the SoftMin advantage): SoftMin of Z over channels with risk k
    (see `rvpo_repro.aggregators.tensor_ops.softmin`), then batch whitening.

    Either a constant `risk` (default `default_risk`), or `risk_start` -> `risk_end` with schedule
    linear (the default when they are given) or cosine over training progress.
    """

    risk: float | None = within(NON_NEGATIVE, None)  # 0 = mean, inf = min
    risk_start: float | None = within(NON_NEGATIVE, None)
    risk_end: float | None = within(NON_NEGATIVE, None)
    schedule: str | None = None  # constant | linear | cosine
    default_risk: ClassVar[float] = 1.0  # the constant k when neither risk nor a schedule is given

    def __post_init__(self) -> None:
        super().__post_init__()
        ends = (self.risk_start, self.risk_end)
        if self.schedule is None:
            self.schedule = "constant" if ends == (None, None) else "linear"
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule = {self.schedule!r}; expected one of {list(SCHEDULES)}")
        if self.schedule == "constant":
            if ends != (None, None):
                raise ValueError(
                    f"risk_start, risk_end = {ends} need schedule 'linear' or 'cosine', not 'constant'"
                )
            self.risk = self.default_risk if self.risk is None else float(self.risk)
        elif self.risk is not None or None in ends:
            raise ValueError(
                f"schedule {self.schedule!r} takes risk_start and risk_end (got {ends}), not risk (got {self.risk})"
            )
        elif not all(math.isfinite(k) for k in ends):
            raise ValueError(f"risk_start, risk_end = {ends}; expected finite ends for a schedule")

    def risk_at(self, progress: float) -> float:
        """Risk coefficient k at `progress` in [0, 1] (what the trainer logs)."""
        if self.schedule == "constant":
            check_progress(progress)
            return self.risk
        return risk_schedule(progress, self.risk_start, self.risk_end, self.schedule)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        k, bound = self.risk_at(progress), zscore_bound(num_generations)
        return softmin_of_channels(*weighted_channels(z, w, present), k, bound, scratch=present)

    def softmin_weights(
        self, rewards: Tensor, num_generations: int, weights: Any = None, progress: float = 0.0
    ):
        """(N, K) weight on each channel, softmax(-k Z) over present channels, 0 where absent."""
        x, w = self._prepare(rewards, num_generations, weights)
        return softmin_weights(self.zscores(x, num_generations)[0], self.risk_at(progress), w)

    channel_weights = softmin_weights


@register("variance_penalty")
@dataclass
class VariancePenalty(ZScoreAggregator):
    """mean_j Z_j - beta * var_j Z_j (population, over present channels); RVPO to second order at
    beta = k/2 (arXiv 2605.05750, its Taylor expansion of the SoftMin)."""

    beta: float = within(FINITE_NON_NEGATIVE, 0.5)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        mean, var = mean_var_of_channels(*weighted_channels(z, w, present), scratch=present)
        return mean - self.beta * var

    def channel_weights(self, rewards, num_generations, weights=None, progress=0.0):
        """dA/dZ_j = (w_j / W) (1 - 2 beta (Z_j - mean)): sums to 1 over present channels."""
        x, w = self._prepare(rewards, num_generations, weights)
        z, w, wsum = weighted_channels(self.zscores(x, num_generations)[0], w)
        mean = (z.nan_to_num(0.0) * w).sum(-1, keepdim=True) / wsum.unsqueeze(-1)
        grad = presence(z) * w / wsum.unsqueeze(-1) * (1 - 2 * self.beta * (z - mean))
        return grad.nan_to_num(0.0)


@register("hard_min")
@dataclass
class HardMin(ZScoreAggregator):
    """min_j Z_j over present channels (RVPO at k = inf)."""

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        return softmin_of_channels(*weighted_channels(z, w, present), math.inf, scratch=present)

    def channel_weights(self, rewards, num_generations, weights=None, progress=0.0):
        x, w = self._prepare(rewards, num_generations, weights)
        return softmin_weights(self.zscores(x, num_generations)[0], math.inf, w)
