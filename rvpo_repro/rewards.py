"""Reward channels: named, optionally multi-channel reward functions in TRL's calling convention.

TRL calls each reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`
and expects one float (or None = absent) per completion. A `MultiChannelReward` returns K values
per completion from one pass (e.g. one judge pass over all rubric items); `expand_reward_funcs`
turns it into K single-channel views sharing that pass, so TRL's own per-function logging, NaN
handling and reward weights apply channel by channel.

A reward value is a finite number within ±MAX_ABS_REWARD, or None for a missing one. NaN, ±inf and
larger magnitudes are refused (`out_of_domain`), never read as missing: a user's reward where it
returns them (tasks.custom.user_code), any reward in the trainer's reward matrix (RVPOTrainer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The largest reward magnitude accepted. Rewards are float32 tensors in TRL; a group's variance
# squares their deviations, which overflows float32 (3.4e38) near 1e19 and loses every difference
# between rollouts long before: ±1e308 becomes inf, then NaN advantages. 1e9 leaves room to spare
# for any reward scale in use (rates in [0, 1], ToolRL's [-3, 3], counts, lengths).
MAX_ABS_REWARD = 1e9


def out_of_domain(value: float) -> str | None:
    """Why a reward value is refused (NaN, ±inf, |value| > MAX_ABS_REWARD), or None when it is usable.

    A missing reward is None, never NaN: NaN is refused, so a reward that cannot score a completion
    says so explicitly and its channel's absence is counted, not hidden."""
    if math.isnan(value):
        return "NaN (return None for a missing reward)"
    if math.isinf(value) or abs(value) > MAX_ABS_REWARD:
        return f"{value!r}, outside [-{MAX_ABS_REWARD:g}, {MAX_ABS_REWARD:g}]"
    return None


class NoUsableRewardError(RuntimeError):
    """A training step in which every reward of every rollout is missing (NaN): nothing to learn."""


def completion_text(completion: Any) -> str:
    """The text of a completion; TRL hands conversational ones as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion)


@dataclass(frozen=True)
class RewardChannel:
    """Metadata of one channel: binary channels count as constraints (satisfied iff reward == high)."""

    name: str
    binary: bool = False
    low: float = 0.0
    high: float = 1.0

    def normalise(self, value: float) -> float:
        """Map a reward onto [0, 1] by the channel's declared range (for the bottleneck metric)."""
        return (value - self.low) / (self.high - self.low)


class MultiChannelReward:
    """Base for rewards that score K channels in one pass.

    Subclasses set `channels` and implement `score(prompts, completions, **kwargs)`, returning one
    list of K values (float or None) per completion.
    """

    channels: list[RewardChannel] = []

    def score(self, prompts: list, completions: list, **kwargs: Any) -> list[list[float | None]]:
        raise NotImplementedError

    def item_weights(self, inputs: list[dict]) -> list[list[float]] | None:
        """Per-rollout channel weights (one list of K non-negative floats per input row, read from
        the dataset columns), or None when the channels carry no weights of their own (the default).
        RVPOTrainer hands them to the aggregator as (N, K) weights (see `wants_item_weights`)."""
        return None

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[list[float | None]]:
        rows = self.score(prompts, completions, **kwargs)
        k = len(self.channels)
        for i, row in enumerate(rows):
            if len(row) != k:
                raise ValueError(
                    f"{type(self).__name__}.score returned {len(row)} values for completion {i}, expected {k} "
                    f"(one per channel: {[c.name for c in self.channels]})"
                )
        return rows


class _ChannelView:
    """Channel `index` of a MultiChannelReward, as a single-value TRL reward function."""

    def __init__(self, parent: MultiChannelReward, index: int, cache: dict):
        self.parent, self.index, self._cache = parent, index, cache
        self.__name__ = parent.channels[index].name  # TRL names the reward by __name__

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        # TRL passes the same list objects to every reward function of one step: score them once.
        if self._cache.get("completions") is not completions or self._cache.get("prompts") is not prompts:
            self._cache.update(
                prompts=prompts, completions=completions, rows=self.parent(prompts, completions, **kwargs)
            )
        return [row[self.index] for row in self._cache["rows"]]


def item_weight_sources(
    funcs: Sequence[Callable | MultiChannelReward],
) -> list[tuple[int, MultiChannelReward]]:
    """(first flat channel index, reward) for every MultiChannelReward, in the order
    `expand_reward_funcs` lays the channels out."""
    out, offset = [], 0
    for func in funcs:
        if isinstance(func, MultiChannelReward):
            out.append((offset, func))
            offset += len(func.channels)
        else:
            offset += 1
    return out


def expand_reward_funcs(
    funcs: Sequence[Callable | MultiChannelReward], channels: Sequence[RewardChannel] | None = None
) -> tuple[list[Callable], list[RewardChannel]]:
    """Flatten reward functions into single-channel callables, with one RewardChannel each.

    Plain functions keep their own metadata from `channels` (matched by __name__) or get a
    continuous default; names must be unique, since TRL logs by name.
    """
    given = {c.name: c for c in channels or []}
    flat: list[Callable] = []
    specs: list[RewardChannel] = []
    for func in funcs:
        if isinstance(func, MultiChannelReward):
            cache: dict = {}
            for i, spec in enumerate(func.channels):
                flat.append(_ChannelView(func, i, cache))
                specs.append(spec)
        else:
            name = getattr(func, "__name__", type(func).__name__)
            flat.append(func)
            specs.append(given.get(name, RewardChannel(name)))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"reward channel names must be unique; repeated: {duplicates}")
    return flat, specs
