"""Reward aggregators: per-channel rewards (N, K) -> one advantage per rollout (N,).

Rows are ordered group by group: N = B*G and rows [b*G, (b+1)*G) are the G rollouts of prompt b.
NaN marks a channel that is absent for that row (a rubric shorter than K) or whose reward function
failed (returned None). Each aggregator is a pure, vectorised torch function; none loops over
groups or rows.

Shared semantics follow TRL 1.16's `GRPOTrainer._generate_and_score_completions`, so `grpo` and
`gdpo` reproduce its advantages: eps = 1e-4 is added to the std, stds are NaN-aware and
Bessel-corrected, and a row with no channel is left out of every mean and std and gets advantage 0.
A channel present in only one row of a group has no group std (TRL's nanstd is NaN there): its Z is
absent (NaN) for that group, so it adds nothing to GDPO's sum and is not counted by the mean,
SoftMin or min. One deliberate difference: a channel constant within a group gets Z = 0 exactly
(TRL can return about 1e4 * rounding error there, because sum/count of equal floats need not round
back).

Channel weights: `weights` of shape (K,) (one per channel) or (N, K) (one per rollout and channel,
e.g. rubric item weights that differ between prompts), finite and >= 0. GRPO: weighted NaN-aware
sum, then group normalisation. Z-score methods: weighted sum (gdpo), weighted mean / SoftMin /
variance; a zero weight marks the channel absent for that row.

GDPO comes in two named variants (which one the paper's baseline used is not known):
`reduce="sum"` (default) is TRL's normalize_then_sum, the sum of the present channels' Z;
`reduce="mean"` averages them before batch whitening and is exactly `rvpo` at `risk=0`. The two
differ when prompts have different channel counts (rubrics of 5 and 17 items).

Batch whitening (z-score methods), option `whiten`: "sequence" (default, TRL/GDPO: every rollout
counts once) or "token" (verl's masked_whiten: each rollout's advantage counted once per completion
token, so the call needs `lengths` (N,)); the std floor is `eps` in both (verl adds 1e-8 to the
variance instead; verl-GDPO's train_gdpo.sh uses a std eps of 1e-6).

An aggregator may name the TRL `loss_type` its method is defined with (`dr_grpo`: "dr_grpo");
`RVPOTrainer` applies it, so choosing the aggregator is enough.

    from rvpo_repro.aggregators import get_aggregator
    agg = get_aggregator("rvpo", risk_start=0.5, risk_end=2.0, schedule="linear")
    adv = agg(rewards, num_generations=G, weights=None, progress=step / max_steps)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from rvpo_repro.advantage_ops import (
    DEFAULT_EPS,
    GDPO_REDUCTIONS,
    GRPO_SCALES,
    SCHEDULES,
    WHITENINGS,
    _channels,
    _check_progress,
    _check_risk,
    _group_deviation,
    _mean_var,
    _presence,
    _softmin,
    _wdot,
    _zscores,
    batch_whiten,
    group_zscore,
    risk_schedule,
    softmin_weights,
    zscore_bound,
)

# ----------------------------------------------------------------------------- registry

AGGREGATORS: dict[str, type[Aggregator]] = {}


def register(name: str) -> Callable[[type[Aggregator]], type[Aggregator]]:
    """Class decorator adding an Aggregator subclass to AGGREGATORS under `name`."""

    def add(cls: type[Aggregator]) -> type[Aggregator]:
        if name in AGGREGATORS:
            raise ValueError(f"aggregator {name!r} is already registered by {AGGREGATORS[name].__qualname__}")
        cls.name = name
        AGGREGATORS[name] = cls
        return cls

    return add


def get_aggregator(name: str, **options: Any) -> Aggregator:
    """Build a registered aggregator; options given as None take the aggregator's default."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}; expected one of {sorted(AGGREGATORS)}")
    cls = AGGREGATORS[name]
    options = {k: v for k, v in options.items() if v is not None}
    accepted = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"option(s) {unknown} do not apply to aggregator {name!r}; it accepts {accepted}")
    return cls(**options)


def aggregator_from_config(cfg: Any) -> Aggregator:
    """Aggregator from an AggregatorConfig (DictConfig, dataclass or plain mapping); None = default."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    elif is_dataclass(cfg):
        cfg = asdict(cfg)
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ValueError(f"aggregator config {cfg!r} has no 'name'; expected one of {sorted(AGGREGATORS)}")
    options = dict(cfg)
    return get_aggregator(options.pop("name"), **options)


# ----------------------------------------------------------------------------- aggregators


@dataclass
class Aggregator:
    """A callable holding one method's options: adv = agg(rewards, num_generations, weights, progress).

    Options common to all: eps (std floor), weights ((K,) non-negative channel weights, used when
    the call passes none) and use_item_weights (whether the trainer passes per-rollout (N, K) item
    weights, e.g. rubric item weights; GRPO always takes them). Subclasses add their options as
    dataclass fields and implement `_aggregate(rewards (N, K), G, weights (K,) | (N, K) | None,
    progress, lengths (N,) | None) -> (N,)`. `loss_type`: the TRL loss the method is defined with,
    or None (keep the trainer's).
    """

    eps: float = DEFAULT_EPS
    weights: Sequence[float] | None = None
    use_item_weights: bool = False
    name: ClassVar[str] = ""
    loss_type: ClassVar[str | None] = None

    @property
    def wants_item_weights(self) -> bool:
        """Whether the trainer should pass per-rollout item weights (N, K)."""
        return bool(self.use_item_weights)

    def __post_init__(self) -> None:
        if not self.eps > 0:
            raise ValueError(f"eps = {self.eps} is invalid; expected eps > 0 (TRL uses 1e-4)")
        if self.weights is not None:
            self.weights = [float(w) for w in self.weights]
            _check_weight_values(torch.tensor(self.weights))

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
        adv = self._aggregate(x, num_generations, w, _check_progress(progress), lengths)
        return adv.nan_to_num(0.0)

    def _aggregate(
        self, x: Tensor, num_generations: int, w: Tensor | None, progress: float, lengths: Tensor | None
    ) -> Tensor:
        raise NotImplementedError

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
        _check_weight_values(w)
        return x, w


def _check_weight_values(w: Tensor) -> None:
    if not (torch.isfinite(w).all() and (w >= 0).all()):
        bad = w[~(torch.isfinite(w) & (w >= 0))].tolist()[:5]
        shown = w.tolist() if w.numel() <= 32 else f"of shape {tuple(w.shape)} holding {bad}"
        raise ValueError(f"weights {shown} are invalid; expected finite non-negative channel weights")


def _grpo_advantage(x: Tensor, num_generations: int, w: Tensor | None, scale: str, eps: float) -> Tensor:
    """x (N, K) -> (N,): weighted nansum, minus its group mean, over the std `scale` names (+ eps)."""
    buf = x.nan_to_num(0.0)
    total = _wdot(buf, x.new_ones(x.shape[-1]) if w is None else w)
    present = torch.mul(x, 0.0, out=buf).add_(1.0).nan_to_num_(0.0)  # reuses the buffer
    total = torch.where(present.sum(-1) > 0, total, math.nan)  # unscorable rows, as TRL
    dev, var, _ = _group_deviation(total.unsqueeze(-1), num_generations)
    if scale == "none":
        return dev.reshape(-1)
    if scale == "batch":  # std of the raw totals over the batch, as TRL
        var = _group_deviation(total.unsqueeze(-1), max(len(total), 1))[1]
    return (dev / (var.sqrt() + eps)).reshape(-1)


@register("grpo")
@dataclass
class GRPO(Aggregator):
    """Weighted nansum over channels, then group baseline and scale (TRL "sum_then_normalize").

    Always takes per-rollout item weights when the task has them (the paper's GRPO is a weighted
    sum of raw rewards)."""

    scale: str = "group"  # group | batch | none, as TRL's scale_rewards

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale not in GRPO_SCALES:
            raise ValueError(f"scale = {self.scale!r}; expected one of {list(GRPO_SCALES)}")

    @property
    def wants_item_weights(self) -> bool:
        return True

    def _aggregate(self, x, num_generations, w, progress, lengths):
        return _grpo_advantage(x, num_generations, w, self.scale, self.eps)


@register("dr_grpo")
@dataclass
class DrGRPO(Aggregator):
    """Dr. GRPO: weighted sum minus its group mean (no std division), with TRL's loss_type
    "dr_grpo" (sum over tokens / a constant, no per-sequence length normalisation)."""

    loss_type: ClassVar[str | None] = "dr_grpo"

    @property
    def wants_item_weights(self) -> bool:
        return True

    def _aggregate(self, x, num_generations, w, progress, lengths):
        return _grpo_advantage(x, num_generations, w, "none", self.eps)


@dataclass
class _ZScoreAggregator(Aggregator):
    """Per-channel group z-scores Z, a row reduction over channels, then batch whitening over
    sequences or tokens (`whiten`, see the module docstring)."""

    whiten: str = "sequence"  # sequence | token

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.whiten not in WHITENINGS:
            raise ValueError(f"whiten = {self.whiten!r}; expected one of {list(WHITENINGS)}")

    def _aggregate(self, x, num_generations, w, progress, lengths):
        if self.whiten == "token" and lengths is None:
            raise ValueError("whiten='token' needs lengths= (N,) completion token counts")
        scorable = _presence(x).sum(-1) > 0  # rows with any reward (TRL's unscorable mask)
        z, present = _zscores(x, num_generations, self.eps)
        pre = self._reduce(z, w, present, num_generations, progress, scorable)
        return batch_whiten(pre, self.eps, lengths if self.whiten == "token" else None)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        """Z (N, K), NaN = absent, and its presence mask, both owned (reusable), and the rows with
        any reward (N,) -> (N,), NaN = no channel."""
        raise NotImplementedError


@register("gdpo")
@dataclass
class GDPO(_ZScoreAggregator):
    """GDPO: reduce="sum" (default) is the weighted nansum of Z (TRL "normalize_then_sum");
    reduce="mean" the weighted mean of the present channels' Z (= rvpo at risk 0)."""

    reduce: str = "sum"  # sum | mean

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduce not in GDPO_REDUCTIONS:
            raise ValueError(f"reduce = {self.reduce!r}; expected one of {list(GDPO_REDUCTIONS)}")

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        if self.reduce == "mean":
            return _softmin(*_channels(z, w, present), 0.0)
        total = _wdot(z.nan_to_num_(0.0), present.new_ones(present.shape[-1]) if w is None else w)
        return torch.where(scorable, total, math.nan)  # unscorable rows, as TRL


@register("rvpo")
@dataclass
class RVPO(_ZScoreAggregator):
    """SoftMin of Z over channels with risk k (see `softmin`).

    Either a constant `risk` (default 1.0), or `risk_start` -> `risk_end` with schedule linear
    (the default when they are given) or cosine over training progress.
    """

    risk: float | None = None
    risk_start: float | None = None
    risk_end: float | None = None
    schedule: str | None = None

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
            self.risk = _check_risk(1.0 if self.risk is None else self.risk)
        elif self.risk is not None or None in ends:
            raise ValueError(
                f"schedule {self.schedule!r} takes risk_start and risk_end (got {ends}), not risk (got {self.risk})"
            )
        elif not all(math.isfinite(_check_risk(k)) for k in ends):
            raise ValueError(f"risk_start, risk_end = {ends}; expected finite ends for a schedule")

    def risk_at(self, progress: float) -> float:
        """Risk coefficient k at `progress` in [0, 1] (what the trainer logs)."""
        if self.schedule == "constant":
            _check_progress(progress)
            return self.risk
        return risk_schedule(progress, self.risk_start, self.risk_end, self.schedule)

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        k, bound = self.risk_at(progress), zscore_bound(num_generations)
        return _softmin(*_channels(z, w, present), k, bound, scratch=present)

    def softmin_weights(
        self, rewards: Tensor, num_generations: int, weights: Any = None, progress: float = 0.0
    ):
        """(N, K) weight on each channel, softmax(-k Z) over present channels, 0 where absent."""
        x, w = self._prepare(rewards, num_generations, weights)
        return softmin_weights(group_zscore(x, num_generations, self.eps), self.risk_at(progress), w)


@register("variance_penalty")
@dataclass
class VariancePenalty(_ZScoreAggregator):
    """mean_j Z_j - beta * var_j Z_j (population, over present channels); RVPO to second order at
    beta = k/2."""

    beta: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta = {self.beta}; expected a finite beta >= 0")

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        mean, var = _mean_var(*_channels(z, w, present), scratch=present)
        return mean - self.beta * var


@register("hard_min")
@dataclass
class HardMin(_ZScoreAggregator):
    """min_j Z_j over present channels (RVPO at k = inf)."""

    def _reduce(self, z, w, present, num_generations, progress, scorable):
        return _softmin(*_channels(z, w, present), math.inf, scratch=present)
