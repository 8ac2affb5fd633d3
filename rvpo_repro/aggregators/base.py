"""The aggregator contract (`Aggregator`) and the registry every method module registers in.

See `rvpo_repro.aggregators` for the conventions (row order, NaN, weights) they all follow.

A method's dataclass fields are its options, their one home: registering a method also makes its
config schema (`options_schema`: the init fields, with their types, defaults and ranges, plus
`name`), which `rvpo_repro.config` stores for Hydra as `<name>_schema`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from rvpo_repro.aggregators.tensor_ops import DEFAULT_EPS, check_progress, check_weight_values
from rvpo_repro.ranges import POSITIVE, field_ranges, out_of_range, within

AGGREGATORS: dict[str, type[Aggregator]] = {}


def register(name: str) -> Callable[[type[Aggregator]], type[Aggregator]]:
    """Class decorator adding an Aggregator subclass to AGGREGATORS under `name`."""

    def add(cls: type[Aggregator]) -> type[Aggregator]:
        if name in AGGREGATORS:
            raise ValueError(f"aggregator {name!r} is already registered by {AGGREGATORS[name].__qualname__}")
        cls.name = name
        cls.schema = options_schema(cls, name)
        AGGREGATORS[name] = cls
        return cls

    return add


def options_schema(cls: type[Aggregator], name: str) -> type:
    """The config schema of method `cls` registered as `name`: a dataclass of its init fields (same
    types, defaults and range metadata) and `name`, so a composed config holds its options only."""
    hints = typing.get_type_hints(cls)
    specs: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=name))]
    for f in fields(cls):
        if f.init:
            spec = dataclasses.field(
                default=f.default, default_factory=f.default_factory, metadata=f.metadata
            )
            specs.append((f.name, hints[f.name], spec))
    return dataclasses.make_dataclass(f"{cls.__name__}Options", specs)


def foreign_options(name: str, options: typing.Iterable[str]) -> str | None:
    """One line refusing those of `options` that aggregator `name` does not take, naming what it
    accepts; None when they all apply."""
    accepted = [f.name for f in fields(AGGREGATORS[name]) if f.init]
    unknown = sorted(set(options) - set(accepted))
    if not unknown:
        return None
    return f"option(s) {unknown} do not apply to aggregator {name!r}; it accepts {accepted}"


@dataclass
class Aggregator:
    """A callable holding one method's options: adv = agg(rewards, num_generations, weights, progress).

    Options common to all: eps (std floor), weights ((K,) non-negative channel weights, used when
    the call passes none) and use_item_weights (whether the trainer passes per-rollout (N, K) item
    weights, e.g. rubric item weights; GRPO always takes them). Subclasses add their options as
    dataclass fields and implement `_aggregate(rewards (N, K), G, weights (K,) | (N, K) | None,
    progress, lengths (N,) | None) -> (N,)`. `loss_type`: the TRL loss the method is defined with,
    or None (keep the trainer's). `per_rollout_weights`: False for a method that refuses (N, K).
    """

    eps: float = within(POSITIVE, DEFAULT_EPS)  # TRL uses 1e-4
    weights: list[float] | None = None
    use_item_weights: bool = False
    name: ClassVar[str] = ""
    schema: ClassVar[type]  # set by `register`: the method's config schema (`options_schema`)
    loss_type: ClassVar[str | None] = None
    per_rollout_weights: ClassVar[bool] = True

    @property
    def wants_item_weights(self) -> bool:
        """Whether the trainer should pass per-rollout item weights (N, K)."""
        return bool(self.use_item_weights)

    @property
    def wants_lengths(self) -> bool:
        """Whether the call needs the completions' token counts (whitening over tokens)."""
        return False

    def __post_init__(self) -> None:
        for key, rng in field_ranges(type(self)).items():  # the ranges declared on the fields
            if problem := out_of_range(key, getattr(self, key), rng):
                raise ValueError(problem)
        if self.weights is not None:
            self.weights = [float(w) for w in self.weights]
            check_weight_values(torch.tensor(self.weights))
        if self.use_item_weights and not self.per_rollout_weights:
            raise ValueError(
                f"use_item_weights = true does not apply to {self.name!r}: it takes (K,) weights only"
            )

    def __call__(
        self,
        rewards: Tensor,
        num_generations: int,
        weights: Tensor | Sequence[float] | None = None,
        progress: float = 0.0,
        lengths: Tensor | Sequence[int] | None = None,
    ) -> Tensor:
        """rewards (N, K), NaN = absent; weights (K,) or (N, K); lengths (N,) completion token
        counts (used by token whitening) -> advantages (N,) in the rewards' float dtype."""
        x, w = self._prepare(rewards, num_generations, weights)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (x.shape[0],) or bool((lengths < 0).any()):
                raise ValueError(
                    f"lengths has shape {tuple(lengths.shape)}; expected ({x.shape[0]},) non-negative "
                    "completion token counts"
                )
        adv = self._aggregate(x, num_generations, w, check_progress(progress), lengths)
        return adv.nan_to_num(0.0)

    def _aggregate(
        self, x: Tensor, num_generations: int, w: Tensor | None, progress: float, lengths: Tensor | None
    ) -> Tensor:
        raise NotImplementedError

    def channel_weights(
        self, rewards: Tensor, num_generations: int, weights: Any = None, progress: float = 0.0
    ) -> Tensor | None:
        """(N, K) share of each channel in each rollout's advantage (rows sum to 1 over present
        channels), for the per-channel logs; None where the share is just the configured channel
        weights (grpo, dr_grpo, gdpo, mo_grpo, gd2po)."""
        return None

    def update(self, rewards: Tensor, weights: Any = None) -> None:
        """Called by the trainer after each training step's advantages; stateless methods ignore it."""

    def _prepare(self, rewards: Tensor, num_generations: int, weights: Any) -> tuple[Tensor, Tensor | None]:
        x = torch.as_tensor(rewards)
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        if x.ndim != 2:
            raise ValueError(f"rewards has shape {tuple(x.shape)}; expected (N, K) = (rows, reward channels)")
        if not isinstance(num_generations, int) or num_generations < 1:
            raise ValueError(f"num_generations = {num_generations!r}; expected a positive int (group size G)")
        n, k = x.shape
        if n % num_generations:
            raise ValueError(
                f"N = {n} rows is not divisible by num_generations = {num_generations}; "
                "expected N = B*G rows ordered group by group"
            )
        weights = self.weights if weights is None else weights
        if weights is None:
            return x, None
        w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
        if w.shape not in {(k,), (n, k)}:
            raise ValueError(
                f"weights has shape {tuple(w.shape)}; expected ({k},), one per channel, or ({n}, {k}), "
                "one per rollout and channel"
            )
        if w.ndim == 2 and not self.per_rollout_weights:
            raise ValueError(
                f"weights has shape {tuple(w.shape)}; {self.name!r} takes ({k},) channel weights only "
                "(its channel weights are one per batch)"
            )
        check_weight_values(w)
        return x, w


# The method modules register themselves; imported last because they subclass Aggregator.
