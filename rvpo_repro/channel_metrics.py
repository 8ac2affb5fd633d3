"""Per-channel metrics of one batch: what every trainer integration logs beside the advantages.

One pure function, shared by the TRL trainer (`rvpo_repro.trainer`) and the verl estimators
(`rvpo_repro.integrations.verl`), so both log the same names with the same meaning:

    channels/bottleneck             weakest channel mean, normalised to [0, 1] by its declared range
    channels/<c>/satisfied          share of rollouts meeting binary channel c (reward == high)
    channels/all_constraints        share of rollouts meeting every binary channel present for them
    aggregator/risk                 the method's risk coefficient (RVPO), where it has one
    aggregator/weight/<c>           mean share of channel c in the advantage (SoftMin weights, SAW's,
                                    MGDA's alpha, Constrained GRPO's multipliers), where the method has one
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rvpo_repro.aggregators.base import Aggregator
from rvpo_repro.rewards import RewardChannel


def channel_metrics(
    aggregator: Aggregator,
    rewards: torch.Tensor,
    channels: Sequence[RewardChannel],
    num_generations: int,
    progress: float,
    weights: Any = None,
) -> dict[str, float]:
    """rewards (N, K), NaN = absent, rows group by group; channels: K specs; weights as the
    aggregator's call takes them -> {metric name: value}.

    Computed on the rewards' device and brought to the host in one transfer (a `.item()` per value
    would wait on the device once per value)."""
    k = rewards.shape[1]
    present = ~torch.isnan(rewards)
    parts = [torch.nanmean(rewards, dim=0)]  # (K,) channel means
    binary = [j for j, spec in enumerate(channels) if spec.binary]
    if binary:
        idx = torch.tensor(binary, device=rewards.device)
        high = torch.tensor([channels[j].high for j in binary], dtype=rewards.dtype, device=rewards.device)
        met, pres = rewards[:, idx] == high, present[:, idx]  # NaN never equals high
        count = pres.sum(0)
        parts += [count.to(rewards.dtype), met.sum(0) / count.clamp(min=1)]
        # an absent constraint does not fail the rollout
        parts.append((met | ~pres).all(dim=1).float().mean().to(rewards.dtype).reshape(1))
    shares = aggregator.channel_weights(
        rewards, num_generations=num_generations, weights=weights, progress=progress
    )  # (N, K) share of each channel in the advantage (RVPO: the SoftMin weights), or None
    if shares is not None:
        scorable = present.any(dim=1, keepdim=True).to(shares.dtype)
        n = scorable.sum()
        mean_w = torch.where(n > 0, (shares * scorable).sum(0) / n.clamp(min=1), shares.mean(dim=0))
        parts.append(mean_w.to(rewards.dtype))
    values = torch.cat(parts).tolist()  # the one device-to-host transfer
    means, rest = values[:k], values[k:]
    out: dict[str, float] = {}
    finite = [v for v in (spec.normalise(m) for spec, m in zip(channels, means, strict=True)) if v == v]
    if finite:
        out["channels/bottleneck"] = min(finite)
    if binary:
        b = len(binary)
        counts, rates, all_ok, rest = rest[:b], rest[b : 2 * b], rest[2 * b], rest[2 * b + 1 :]
        for j, c, r in zip(binary, counts, rates, strict=True):
            if c > 0:
                out[f"channels/{channels[j].name}/satisfied"] = r
        out["channels/all_constraints"] = all_ok
    risk = aggregator.risk_at(progress) if hasattr(aggregator, "risk_at") else None
    if risk is not None:
        out["aggregator/risk"] = float(risk)
    if shares is not None:
        for spec, w in zip(channels, rest, strict=True):
            out[f"aggregator/weight/{spec.name}"] = w
    return out
