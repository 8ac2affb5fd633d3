"""MGDA and GAPO in advantage space: the min-norm convex combination of the channels' Z vectors.

An adaptation, labelled as such by its source (Artessay/Amo, `verl/trainer/ppo/
amo_mo_advantages.py`, `compute_mgda_advantage`): MGDA (Sener & Koltun 2018) and GAPO solve the
min-norm problem on per-objective policy gradients; here each channel's Z over the batch, a vector
in R^N, stands in for its gradient, and the advantage is sum_j alpha_j Z_j, then whitened. It
isolates the aggregation rule; it is not a full-parameter-gradient MGDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from rvpo_repro.aggregators.base import register
from rvpo_repro.aggregators.tensor_ops import presence
from rvpo_repro.aggregators.zscore import ZScoreAggregator
from rvpo_repro.ranges import FINITE_NON_NEGATIVE, within

FW_ITERS = 50  # Frank-Wolfe iterations, as Amo


def min_norm_weights(vectors: np.ndarray, iters: int = FW_ITERS) -> np.ndarray:
    """(m, N) rows g_j -> alpha (m,) on the simplex minimising ||sum_j alpha_j g_j||^2.

    m = 1: [1]; m = 2: the closed form clipped to [0, 1] (1/2 when the two coincide); m > 2:
    Frank-Wolfe from the uniform point with exact line search, stopping when a step is < 1e-9."""
    m = vectors.shape[0]
    if m == 1:
        return np.ones(1)
    gram = vectors @ vectors.T
    if m == 2:
        denom = gram[0, 0] - 2 * gram[0, 1] + gram[1, 1]
        gamma = 0.5 if denom <= 1e-12 else min(1.0, max(0.0, (gram[1, 1] - gram[0, 1]) / denom))
        return np.array([gamma, 1.0 - gamma])
    alpha = np.full(m, 1.0 / m)
    for _ in range(iters):
        t = int(np.argmin(gram @ alpha))
        d = -alpha.copy()
        d[t] += 1.0
        dgd = float(d @ gram @ d)
        step = 0.0 if dgd <= 1e-12 else min(1.0, max(0.0, -float(alpha @ gram @ d) / dgd))
        alpha = alpha + step * d
        if step < 1e-9:
            break
    alpha = np.clip(alpha, 0.0, None)
    return alpha / alpha.sum() if alpha.sum() > 0 else np.full(m, 1.0 / m)


@register("mgda")
@dataclass
class MGDA(ZScoreAggregator):
    """Advantage-space MGDA (an adaptation; see the module docstring): alpha = argmin over the
    simplex of ||sum_j alpha_j v_j||, v_j = channel j's Z over the batch (absent entries 0) times
    its normalised weight w_j / sum w (Amo's P-GAPO preference weighting), divided by ||Z_j||^p
    when `gapo_p` is set (GAPO); A = whiten(sum_j alpha_j Z_j). One alpha per batch, so channel
    weights are (K,) only; channels with no Z in the batch, or a zero weight, take no part. Amo sums each rollout's Z
    over its tokens (length-scaled vectors and advantages); here a rollout counts once (equal
    lengths: the same alpha)."""

    gapo_p: float | None = within(FINITE_NON_NEGATIVE, None)  # none: MGDA; GAPO: 1.0
    per_rollout_weights: ClassVar[bool] = False

    def alpha(self, z: Tensor, w: Tensor | None) -> Tensor:
        """Z (N, K), NaN = absent -> alpha (K,), 0 for channels with no Z in the batch."""
        a = z.nan_to_num(0.0).T.double().cpu().numpy()  # (K, N)
        counts = presence(z).sum(0)
        if w is not None:  # a zero weight marks the channel absent (Amo would put all alpha on it)
            counts = counts * (w > 0)
        active = np.flatnonzero(counts.cpu().numpy() > 0)
        out = np.zeros(z.shape[1])
        if active.size:
            vecs = a[active]
            if self.gapo_p is not None:
                vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12) ** self.gapo_p
            if w is not None:
                share = w.double().cpu().numpy()[active]
                vecs = vecs * (share / share.sum() if share.sum() > 0 else share)[:, None]
            out[active] = min_norm_weights(vecs)
        return torch.as_tensor(out, dtype=z.dtype, device=z.device)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        alpha = self.alpha(z, w)
        total = z.nan_to_num(0.0) @ alpha
        return torch.where(present.sum(-1) > 0, total, math.nan)

    def channel_weights(self, rewards, num_generations, weights=None, progress=0.0):
        x, w = self._prepare(rewards, num_generations, weights)
        z = self.zscores(x, num_generations)[0]
        p = presence(z) * self.alpha(z, w)
        return (p / p.sum(-1, keepdim=True)).nan_to_num(0.0)


@register("gapo")
@dataclass
class GAPO(MGDA):
    """GAPO in advantage space (Amo's `gapo`, an adaptation): MGDA with each channel's Z vector
    rescaled by 1 / ||Z_j||^p before the min-norm solve; p = 1 as Amo's scripts
    (`scripts/trainers/gapo/method.sh`)."""

    gapo_p: float | None = within(FINITE_NON_NEGATIVE, 1.0)
