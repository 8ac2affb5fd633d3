"""Reward aggregators: per-channel rewards (N, K) -> one advantage per rollout (N,).

Rows are ordered group by group: `N = B*G` and rows `[b*G, (b+1)*G)` are the G rollouts of prompt b.
NaN marks a channel that is absent for that row (a rubric shorter than K) or whose reward function
failed (returned None, a missing judge verdict). Each aggregator is a pure, vectorised torch
function; none loops over groups or rows.

This package holds the constructors (`get_aggregator`, `aggregator_from_config`); the contract (the
`Aggregator` base class) and the registry are in `base`;
each method lives in a module of its own (`grpo`, `zscore`, `rvpo`, `saw`, `conflict`, `mgda`,
`constrained`) and registers itself on import. The pure tensor functions they share (group
z-scores, whitening, SoftMin, weighted moments over channels) are public in `tensor_ops`.

Shared semantics follow TRL 1.16's `GRPOTrainer._generate_and_score_completions`, so `grpo`
(with `missing="nansum"`) and `gdpo` reproduce its advantages: eps = 1e-4 is added to the std,
stds are NaN-aware and Bessel-corrected, and a row with no channel is left out of every mean and
std and gets advantage 0. A channel present in only one row of a group has no group std (TRL's
nanstd is NaN there): its Z is absent (NaN) for that group. One deliberate difference: a channel
constant within a group gets Z = 0 exactly (TRL can return about 1e4 * rounding error there).

A missing verdict is absent for every method. Z-score methods leave its Z out of the row's
reduction. GRPO's raw weighted sum renormalises over the graded items by default (`missing=
"renormalise"`: the row's sum is scaled by the weight of the channels its group is graded on over
the weight of those it has), so a missing item neither counts as failed nor as met; TRL's nansum,
which reads a missing verdict as 0 (a failed item, or a met pitfall), is `missing="nansum"`.

Channel weights: `weights` of shape (K,) (one per channel) or (N, K) (one per rollout and channel,
e.g. rubric item weights that differ between prompts), finite and >= 0; a zero weight marks the
channel absent for that row in the z-score methods. A method that cannot take one of the shapes
refuses it in one line.

An aggregator may name the TRL `loss_type` its method is defined with (`dr_grpo`: "dr_grpo");
`RVPOTrainer` applies it. `channel_weights(...)` gives the (N, K) share of each channel in the
advantage for the per-channel logs; `update(rewards, weights)` is called after each training step
by methods with state (`constrained_grpo`'s Lagrange multipliers).

    from rvpo_repro.aggregators import get_aggregator
    agg = get_aggregator("rvpo", risk_start=0.5, risk_end=2.0, schedule="linear")
    adv = agg(rewards, num_generations=G, weights=None, progress=step / max_steps)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields, is_dataclass
from typing import Any

from rvpo_repro.aggregators import conflict, constrained, grpo, mgda, rvpo, saw, zscore  # noqa: F401  (they register)
from rvpo_repro.aggregators.base import AGGREGATORS, Aggregator, foreign_options


def get_aggregator(name: str, **options: Any) -> Aggregator:
    """Build a registered aggregator; options given as None take the aggregator's default."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; expected one of {sorted(AGGREGATORS)}")
    options = {k: v for k, v in options.items() if v is not None}
    if problem := foreign_options(name, options):
        raise ValueError(problem)
    return AGGREGATORS[name](**options)


@functools.cache
def option_defaults(name: str) -> dict[str, Any]:
    """{option: default} of the registered aggregator `name`, read from its class without building
    one ({} for a name no longer registered)."""
    cls = AGGREGATORS.get(name)
    return {} if cls is None else {f.name: f.default for f in fields(cls.schema) if f.default is not MISSING}


def aggregator_from_config(cfg: Any) -> Aggregator:
    """Aggregator from its config: a DictConfig, a dataclass (the method's `schema`) or a plain
    mapping, with `name`; None = default."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    elif is_dataclass(cfg):
        cfg = asdict(cfg)
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ValueError(f"aggregator config {cfg!r} has no 'name'; expected one of {sorted(AGGREGATORS)}")
    options = dict(cfg)
    return get_aggregator(options.pop("name"), **options)
