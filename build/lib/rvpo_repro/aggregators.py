"""Reward aggregators: per-channel rewards (N, K) -> one advantage per rollout (N,).

Rows are ordered group by group: N = B*G and rows [b*G, (b+1)*G) are the G rollouts of prompt b.
NaN marks a channel that is absent for that row (a rubric shorter than K) or whose reward function
failed (returned None). Each aggregator is a pure, vectorised torch function; none loops over
groups or rows.

Shared semantics follow TRL 1.16's `GRPOTrainer._generate_and_score_completions`, so `grpo` and
`gdpo` reproduce its advantages: eps = 1e-4 is added to the std, stds are NaN-aware and
Bessel-corrected, and a row with no channel is left out of every mean and std and gets advantage 0.
One deliberate difference: a channel constant within a group gets Z = 0 exactly (TRL can return
about 1e4 * rounding error there, because sum/count of equal floats need not round back).

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

DEFAULT_EPS = 1e-4  # as TRL 1.16
SCHEDULES = ("constant", "linear", "cosine")
GRPO_SCALES = ("group", "batch", "none")


# ----------------------------------------------------------------------------- tensor helpers
# NaN marks absence and is carried by propagation; masks come from NaN arithmetic, nansum and
# nan_to_num rather than torch.where or boolean masks, and row sums over the short K axis are
# matrix-vector products. Rewards must therefore be finite or NaN. On CPU the cost of an (N, K)
# aggregation is mostly fresh (N, K) allocations (page faults), so the hot paths reuse their own
# temporaries in place (benchmarks/bench_aggregators.py).


def _presence(x: Tensor) -> Tensor:
    """1.0 where x is present, 0.0 where NaN (same shape and dtype)."""
    return (x * 0.0).add_(1.0).nan_to_num_(0.0)


def _group_deviation(x: Tensor, num_generations: int) -> tuple[Tensor, Tensor, Tensor]:
    """x (N, K), NaN = absent -> (dev, var, scratch).

    dev (N/G, G, K): deviation from the group mean over present rows, NaN where absent.
    var (N/G, 1, K): Bessel-corrected group variance, 0 where fewer than two rows are present.
    scratch (N/G, G, K): a spare buffer, NaN exactly where absent, for the caller to reuse.
    """
    n, k = x.shape
    g = x.reshape(n // num_generations, num_generations, k)
    buf = (g * 0.0).add_(1.0)  # 1 where present, NaN where absent
    count = buf.nansum(1, keepdim=True).clamp_(min=1.0)
    dev = g - g.nansum(1, keepdim=True) / count
    # Second pass: removes the rounding left by the first mean and makes a constant group's
    # deviation exactly 0 (its residues are equal multiples of one ulp, which average exactly).
    dev -= dev.nansum(1, keepdim=True) / count
    var = torch.mul(dev, dev, out=buf).nansum(1, keepdim=True) / (count - 1.0).clamp_(min=1.0)
    return dev, var, buf


def _zscores(rewards: Tensor, num_generations: int, eps: float) -> tuple[Tensor, Tensor]:
    """rewards (N, K), NaN = absent -> Z (N, K), NaN where absent, and the presence mask (N, K)."""
    dev, var, buf = _group_deviation(rewards, num_generations)
    dev /= var.sqrt_().add_(eps)  # var = 0 where fewer than two rows are present: Z = 0 there
    present = buf.mul_(0.0).add_(1.0).nan_to_num_(0.0)
    return dev.reshape(rewards.shape), present.reshape(rewards.shape)


def group_zscore(rewards: Tensor, num_generations: int, eps: float = DEFAULT_EPS) -> Tensor:
    """Per-channel z-score within each group: (r - mean_g r) / (std_g r + eps), std Bessel-corrected.

    rewards: (N, K), NaN = absent. Returns Z: (N, K), NaN where absent; exactly 0 for a channel
    constant within its group or present in a single row of it (TRL: NaN std there, then 0).
    Rewards are data: this function works in place on its temporaries and is not differentiable.
    """
    return _zscores(rewards, num_generations, eps)[0]


def batch_whiten(x: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """(x - mean) / (std + eps) over the batch; NaN rows are left out of the stats and return 0.

    x: (N,). Returns (N,). Bessel-corrected std, as TRL; a batch of <= 1 valid rows gives 0.
    """
    dev, var, _ = _group_deviation(x.unsqueeze(-1), max(len(x), 1))  # the batch as one group
    return (dev / (var.sqrt() + eps)).reshape(-1).nan_to_num(0.0)


def _channels(
    z: Tensor, weights: Tensor | None, present: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """z (N, K) -> (z, w (K,), wsum (N,)): zero-weight channels marked absent (NaN), since they cannot
    move a weighted mean, softmin or min; w = 1 when weights is None; wsum = weight of present channels.
    """
    if present is None:
        present = _presence(z)
    if weights is None:
        weights = z.new_ones(z.shape[-1])
    elif not bool((weights > 0).all()):
        z = z + torch.where(weights > 0, 0.0, math.nan)
    return z, weights, present @ weights


def _check_risk(k: float) -> float:
    k = float(k)
    if not k >= 0:  # also rejects NaN
        raise ValueError(f"risk coefficient k = {k} is invalid; expected k >= 0 (0 = mean, inf = min)")
    return k


def softmin(z: Tensor, k: float, weights: Tensor | None = None) -> Tensor:
    """SoftMin of each row over its present channels: -(1/k) log(sum_j w_j exp(-k z_j) / sum_j w_j).

    z: (N, K), NaN = absent; weights: (K,) >= 0 or None (all 1). Returns (N,), NaN for a row with
    no present (positive-weight) channel. k = 0 is exactly the weighted mean, k = inf the min.
    Differentiable: dA/dz = softmax(-k z) over the present channels, 0 for absent ones.
    """
    return _softmin(*_channels(z, weights), _check_risk(k))


def _softmin(
    z: Tensor, w: Tensor, wsum: Tensor, k: float, bound: float = math.inf, scratch: Tensor | None = None
) -> Tensor:
    """Computed as m - log1p(S) / k, S = mean_w expm1(-k (z - m)), for a detached row shift m.

    Accurate to a few ulp for every k: for small k the first-order terms of S carry no rounding of
    1 + x, and 1 + S is never a tiny difference (>= 1 by Jensen when m is the weighted mean, >= the
    min channel's weight share when m is the row min). m is the row min, where no expm1 argument is
    positive, unless `bound` >= max |z| (known for group z-scores) shows exp(k (mean - z)) cannot
    overflow: then m is the weighted mean, a matrix-vector product instead of a slow row min.
    """
    if k == 0.0:
        return (z.nan_to_num(0.0) @ w) / wsum
    if 2.0 * k * bound < 0.5 * math.log(torch.finfo(z.dtype).max):
        buf = torch.nan_to_num(z, 0.0, out=scratch)  # the one (N, K) temporary, reused in place below
        m = ((buf @ w) / wsum).unsqueeze(-1)
        e = torch.sub(z, m, out=buf)
    else:
        buf = torch.nan_to_num(z, math.inf, out=scratch)
        m = buf.detach().amin(-1, keepdim=True)  # inf for a row with no channel
        if k > torch.finfo(z.dtype).max:  # inf, or a k the dtype rounds to inf: the min
            return torch.where(wsum > 0, m.squeeze(-1), math.nan)
        e = buf.sub_(m)
    # z - m is NaN or inf for absent channels and rows with none: all become expm1(-0.0) = 0.
    e = e.nan_to_num_(nan=0.0, posinf=0.0).mul_(-k).expm1_()
    return m.squeeze(-1) - torch.log1p((e @ w) / wsum) / k


def zscore_bound(num_generations: int) -> float:
    """Largest |Z| group_zscore can return for group size G: (G - 1) / sqrt(G) (Samuelson)."""
    return (num_generations - 1) / math.sqrt(num_generations)


def softmin_weights(z: Tensor, k: float, weights: Tensor | None = None) -> Tensor:
    """Weight SoftMin puts on each channel, softmax(-k z) over present channels (= dA/dz).

    z: (N, K), NaN = absent. Returns (N, K), rows summing to 1, 0 for absent channels and for rows
    with none. k = inf splits the weight evenly over the tied minima.
    """
    k = _check_risk(k)
    z, w, _ = _channels(z, weights)
    e = z - z.nan_to_num(math.inf).amin(-1, keepdim=True)
    p = w * ((e == 0).to(z.dtype) if k == math.inf else torch.exp(-k * e).nan_to_num(0.0))
    return (p / p.sum(-1, keepdim=True)).nan_to_num(0.0)


def weighted_mean_var(z: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Weighted mean and population variance over the present channels of each row.

    z: (N, K), NaN = absent. Returns (mean, var), each (N,), NaN for rows with no channel.
    """
    return _mean_var(*_channels(z, weights))


def _mean_var(z: Tensor, w: Tensor, wsum: Tensor, scratch: Tensor | None = None) -> tuple[Tensor, Tensor]:
    buf = torch.nan_to_num(z, 0.0, out=scratch)
    mean = (buf @ w) / wsum
    sq = torch.sub(z, mean.unsqueeze(-1), out=buf).nan_to_num_(0.0).square_()
    return mean, (sq @ w) / wsum


def risk_schedule(progress: float, start: float, end: float, schedule: str = "linear") -> float:
    """Risk coefficient k at `progress` in [0, 1]: constant (= start), linear or cosine start -> end."""
    progress = _check_progress(progress)
    if schedule == "constant":
        return float(start)
    if schedule == "linear":
        t = progress
    elif schedule == "cosine":
        t = 0.5 * (1.0 - math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown risk schedule {schedule!r}; expected one of {list(SCHEDULES)}")
    return (1.0 - t) * start + t * end  # exact at both endpoints


def _check_progress(progress: float) -> float:
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress = {progress} is outside [0, 1]; expected the fraction of training done")
    return progress


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

    Options common to all: eps (std floor) and weights ((K,) non-negative channel weights, used
    when the call passes none). Subclasses add their options as dataclass fields and implement
    `_aggregate(rewards (N, K), G, weights (K,) | None, progress) -> (N,)`.
    """

    eps: float = DEFAULT_EPS
    weights: Sequence[float] | None = None
    name: ClassVar[str] = ""

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
    ) -> Tensor:
        """rewards (N, K), NaN = absent -> advantages (N,) in the rewards' float dtype."""
        x, w = self._prepare(rewards, num_generations, weights)
        adv = self._aggregate(x, num_generations, w, _check_progress(progress))
        return adv.nan_to_num(0.0)

    def _aggregate(self, x: Tensor, num_generations: int, w: Tensor | None, progress: float) -> Tensor:
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
        if w.shape != (k,):
            raise ValueError(
                f"weights {w.tolist()} has shape {tuple(w.shape)}; expected ({k},), one per channel"
            )
        _check_weight_values(w)
        return x, w


def _check_weight_values(w: Tensor) -> None:
    if not (torch.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"weights {w.tolist()} are invalid; expected finite non-negative channel weights")


def _grpo_advantage(x: Tensor, num_generations: int, w: Tensor | None, scale: str, eps: float) -> Tensor:
    """x (N, K) -> (N,): weighted nansum, minus its group mean, over the std `scale` names (+ eps)."""
    buf = x.nan_to_num(0.0)
    total = buf @ (x.new_ones(x.shape[-1]) if w is None else w)
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
    """Weighted nansum over channels, then group baseline and scale (TRL "sum_then_normalize")."""

    scale: str = "group"  # group | batch | none, as TRL's scale_rewards

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale not in GRPO_SCALES:
            raise ValueError(f"scale = {self.scale!r}; expected one of {list(GRPO_SCALES)}")

    def _aggregate(self, x, num_generations, w, progress):
        return _grpo_advantage(x, num_generations, w, self.scale, self.eps)


@register("dr_grpo")
@dataclass
class DrGRPO(Aggregator):
    """GRPO without the std division (Dr. GRPO): weighted sum minus its group mean."""

    def _aggregate(self, x, num_generations, w, progress):
        return _grpo_advantage(x, num_generations, w, "none", self.eps)


class _ZScoreAggregator(Aggregator):
    """Per-channel group z-scores Z, a row reduction over channels, then batch whitening."""

    def _aggregate(self, x, num_generations, w, progress):
        z, present = _zscores(x, num_generations, self.eps)
        return batch_whiten(self._reduce(z, w, present, num_generations, progress), self.eps)

    def _reduce(self, z: Tensor, w: Tensor | None, present: Tensor, num_generations: int, progress: float):
        """Z (N, K), NaN = absent, and its presence mask, both owned (reusable) -> (N,), NaN = no channel."""
        raise NotImplementedError


@register("gdpo")
@dataclass
class GDPO(_ZScoreAggregator):
    """Weighted nansum of Z (TRL "normalize_then_sum")."""

    def _reduce(self, z, w, present, num_generations, progress):
        ones = present.new_ones(present.shape[-1])
        total = z.nan_to_num_(0.0) @ (ones if w is None else w)
        return torch.where(present @ ones > 0, total, math.nan)  # unscorable rows, as TRL


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

    def _reduce(self, z, w, present, num_generations, progress):
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

    def _reduce(self, z, w, present, num_generations, progress):
        mean, var = _mean_var(*_channels(z, w, present), scratch=present)
        return mean - self.beta * var


@register("hard_min")
@dataclass
class HardMin(_ZScoreAggregator):
    """min_j Z_j over present channels (RVPO at k = inf)."""

    def _reduce(self, z, w, present, num_generations, progress):
        return _softmin(*_channels(z, w, present), math.inf, scratch=present)
