"""The pure tensor functions the aggregators share: group z-scores, batch whitening, SoftMin and
weighted moments over channels, risk schedules, and the option values they accept.

Shapes: rewards and Z are (N, K), rows ordered group by group (N = B*G), NaN = absent; channel
weights are (K,) or (N, K); reductions return (N,). See `rvpo_repro.aggregators` for the semantics
(TRL parity, lone values, missing verdicts, whitening over sequences or tokens).

The `*_of_channels` reductions take the triple (z, w, wsum) that `weighted_channels` returns, so a
method that already holds Z's presence mask prepares its channels once and reuses its buffers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_EPS = 1e-4  # as TRL 1.16
SCHEDULES = ("constant", "linear", "cosine")
GRPO_SCALES = ("group", "batch", "none")
GDPO_REDUCTIONS = ("sum", "mean")
WHITENINGS = ("sequence", "token", "none")
MISSING_RULES = ("renormalise", "nansum")  # grpo: a missing verdict is absent | TRL's 0
SATURATED_RULES = ("keep", "drop")  # z-score methods: a channel constant within its group


# ----------------------------------------------------------------------------- tensor helpers
# NaN marks absence and is carried by propagation; masks come from NaN arithmetic, nansum and
# nan_to_num rather than torch.where or boolean masks, and row sums over the short K axis are
# matrix-vector products. Rewards must therefore be finite or NaN. On CPU the cost of an (N, K)
# aggregation is mostly fresh (N, K) allocations (page faults), so the hot paths reuse their own
# temporaries in place (benchmarks/bench_aggregators.py).


def presence(x: Tensor) -> Tensor:
    """1.0 where x is present, 0.0 where NaN (same shape and dtype)."""
    return (x * 0.0).add_(1.0).nan_to_num_(0.0)


def group_deviation(x: Tensor, num_generations: int) -> tuple[Tensor, Tensor, Tensor]:
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


def _single(x: Tensor, num_generations: int) -> Tensor:
    """x (N, K) -> (N/G, 1, K): NaN where a channel has exactly one present row in its group, else 0."""
    n, k = x.shape
    count = presence(x).reshape(n // num_generations, num_generations, k).sum(1, keepdim=True)
    return torch.where(count == 1, math.nan, 0.0).to(x.dtype)


def zscores_with_presence(rewards: Tensor, num_generations: int, eps: float) -> tuple[Tensor, Tensor]:
    """rewards (N, K), NaN = absent -> Z (N, K), NaN where absent or alone in its group, and Z's
    presence mask (N, K)."""
    dev, var, buf = group_deviation(rewards, num_generations)
    dev /= var.sqrt_().add_(eps)
    if num_generations > 1:  # a lone value has no group std: absent, as TRL's nanstd (G = 1: TRL's 0)
        dev += _single(rewards, num_generations)
    present = buf.copy_(dev).mul_(0.0).add_(1.0).nan_to_num_(0.0)
    return dev.reshape(rewards.shape), present.reshape(rewards.shape)


def group_zscore(rewards: Tensor, num_generations: int, eps: float = DEFAULT_EPS) -> Tensor:
    """Per-channel z-score within each group: (r - mean_g r) / (std_g r + eps), std Bessel-corrected.

    rewards: (N, K), NaN = absent. Returns Z: (N, K), NaN where absent and where the channel is
    present in a single row of its group (no std; TRL's nanstd gives NaN there); exactly 0 for a
    channel constant within its group. Rewards are data: this function works in place on its
    temporaries and is not differentiable.
    """
    return zscores_with_presence(rewards, num_generations, eps)[0]


def batch_whiten(x: Tensor, eps: float = DEFAULT_EPS, lengths: Tensor | None = None) -> Tensor:
    """(x - mean) / (std + eps) over the batch; NaN rows are left out of the stats and return 0.

    x: (N,). Returns (N,). Bessel-corrected std, as TRL; a batch of <= 1 valid rows gives 0.
    lengths: None (every row counts once) or (N,) non-negative token counts: row i then counts
    lengths[i] times in the mean and the variance (verl's masked_whiten over the tokens of every
    completion, each carrying its sequence's advantage; Bessel over the token count).
    """
    if lengths is None:
        dev, var, _ = group_deviation(x.unsqueeze(-1), max(len(x), 1))  # the batch as one group
        return (dev / (var.sqrt() + eps)).reshape(-1).nan_to_num(0.0)
    w = lengths.to(x.dtype) * presence(x)
    total = w.sum()
    mean = (x.nan_to_num(0.0) * w).sum() / total.clamp(min=1.0)
    var = ((x - mean).nan_to_num(0.0).square() * w).sum() / (total - 1.0).clamp(min=1.0)
    return ((x - mean) / (var.sqrt() + eps)).nan_to_num(0.0)


def weighted_row_sum(x: Tensor, w: Tensor) -> Tensor:
    """Row-wise weighted sum: x (N, K) finite, w (K,) or (N, K) -> (N,)."""
    return x @ w if w.ndim == 1 else torch.mul(x, w).sum(-1)


def weighted_channels(
    z: Tensor, weights: Tensor | None, present: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """z (N, K) -> (z, w (K,) or (N, K), wsum (N,)): zero-weight channels marked absent (NaN), since
    they cannot move a weighted mean, softmin or min; w = 1 when weights is None; wsum = weight of
    present channels.
    """
    if present is None:
        present = presence(z)
    if weights is None:
        weights = z.new_ones(z.shape[-1])
    elif not bool((weights > 0).all()):
        z = z + torch.where(weights > 0, 0.0, math.nan)
    return z, weights, weighted_row_sum(present, weights)


def check_risk(k: float) -> float:
    """The risk coefficient k as a float; one line unless k >= 0 (inf = the min)."""
    k = float(k)
    if not k >= 0:  # also rejects NaN
        raise ValueError(f"risk coefficient k = {k} is invalid; expected k >= 0 (0 = mean, inf = min)")
    return k


def softmin(z: Tensor, k: float, weights: Tensor | None = None) -> Tensor:
    """SoftMin of each row over its present channels: -(1/k) log(sum_j w_j exp(-k z_j) / sum_j w_j).

    z: (N, K), NaN = absent; weights: (K,) or (N, K) >= 0, or None (all 1). Returns (N,), NaN for a row with
    no present (positive-weight) channel. k = 0 is exactly the weighted mean, k = inf the min.
    Differentiable: dA/dz = softmax(-k z) over the present channels, 0 for absent ones.
    """
    return softmin_of_channels(*weighted_channels(z, weights), check_risk(k))


def softmin_of_channels(
    z: Tensor, w: Tensor, wsum: Tensor, k: float, bound: float = math.inf, scratch: Tensor | None = None
) -> Tensor:
    """`softmin` of channels prepared by `weighted_channels`: z (N, K), w (K,) or (N, K), wsum (N,)
    -> (N,); k >= 0 already checked. scratch: an optional (N, K) buffer of z's dtype to overwrite.

    Computed as m - log1p(S) / k, S = mean_w expm1(-k (z - m)), for a detached row shift m.

    Accurate to a few ulp for every k: for small k the first-order terms of S carry no rounding of
    1 + x, and 1 + S is never a tiny difference (>= 1 by Jensen when m is the weighted mean, >= the
    min channel's weight share when m is the row min). m is the row min, where no expm1 argument is
    positive, unless `bound` >= max |z| (known for group z-scores) shows exp(k (mean - z)) cannot
    overflow: then m is the weighted mean, a matrix-vector product instead of a slow row min.
    """
    if k == 0.0:
        return weighted_row_sum(z.nan_to_num(0.0), w) / wsum
    if 2.0 * k * bound < 0.5 * math.log(torch.finfo(z.dtype).max):
        buf = torch.nan_to_num(z, 0.0, out=scratch)  # the one (N, K) temporary, reused in place below
        m = (weighted_row_sum(buf, w) / wsum).unsqueeze(-1)
        e = torch.sub(z, m, out=buf)
    else:
        buf = torch.nan_to_num(z, math.inf, out=scratch)
        m = buf.detach().amin(-1, keepdim=True)  # inf for a row with no channel
        if k > torch.finfo(z.dtype).max:  # inf, or a k the dtype rounds to inf: the min
            return torch.where(wsum > 0, m.squeeze(-1), math.nan)
        e = buf.sub_(m)
    # z - m is NaN or inf for absent channels and rows with none: all become expm1(-0.0) = 0.
    e = e.nan_to_num_(nan=0.0, posinf=0.0).mul_(-k).expm1_()
    return m.squeeze(-1) - torch.log1p(weighted_row_sum(e, w) / wsum) / k


def zscore_bound(num_generations: int) -> float:
    """Largest |Z| group_zscore can return for group size G: (G - 1) / sqrt(G) (Samuelson)."""
    return (num_generations - 1) / math.sqrt(num_generations)


def softmin_weights(z: Tensor, k: float, weights: Tensor | None = None) -> Tensor:
    """Weight SoftMin puts on each channel, softmax(-k z) over present channels (= dA/dz).

    z: (N, K), NaN = absent. Returns (N, K), rows summing to 1, 0 for absent channels and for rows
    with none. k = inf splits the weight evenly over the tied minima.
    """
    k = check_risk(k)
    z, w, _ = weighted_channels(z, weights)
    e = z - z.nan_to_num(math.inf).amin(-1, keepdim=True)
    p = w * ((e == 0).to(z.dtype) if k == math.inf else torch.exp(-k * e).nan_to_num(0.0))
    return (p / p.sum(-1, keepdim=True)).nan_to_num(0.0)


def weighted_mean_var(z: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Weighted mean and population variance over the present channels of each row.

    z: (N, K), NaN = absent. Returns (mean, var), each (N,), NaN for rows with no channel.
    """
    return mean_var_of_channels(*weighted_channels(z, weights))


def mean_var_of_channels(
    z: Tensor, w: Tensor, wsum: Tensor, scratch: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """`weighted_mean_var` of channels prepared by `weighted_channels`: z (N, K), w (K,) or (N, K),
    wsum (N,) -> (mean (N,), var (N,)). scratch: an optional (N, K) buffer of z's dtype to overwrite."""
    buf = torch.nan_to_num(z, 0.0, out=scratch)
    mean = weighted_row_sum(buf, w) / wsum
    sq = torch.sub(z, mean.unsqueeze(-1), out=buf).nan_to_num_(0.0).square_()
    return mean, weighted_row_sum(sq, w) / wsum


def risk_schedule(progress: float, start: float, end: float, schedule: str = "linear") -> float:
    """Risk coefficient k at `progress` in [0, 1]: constant (= start), linear or cosine start -> end."""
    progress = check_progress(progress)
    if schedule == "constant":
        return float(start)
    if schedule == "linear":
        t = progress
    elif schedule == "cosine":
        t = 0.5 * (1.0 - math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown risk schedule {schedule!r}; expected one of {list(SCHEDULES)}")
    return (1.0 - t) * start + t * end  # exact at both endpoints


def check_progress(progress: float) -> float:
    """The fraction of training done as a float; one line unless it is in [0, 1]."""
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress = {progress} is outside [0, 1]; expected the fraction of training done")
    return progress


def check_weight_values(w: Tensor) -> None:
    """Raise one line unless every weight is finite and >= 0."""
    if not (torch.isfinite(w).all() and (w >= 0).all()):
        bad = w[~(torch.isfinite(w) & (w >= 0))].tolist()[:5]
        shown = w.tolist() if w.numel() <= 32 else f"of shape {tuple(w.shape)} holding {bad}"
        raise ValueError(f"weights {shown} are invalid; expected finite non-negative channel weights")


def renormalised_sum(x: Tensor, w: Tensor, num_generations: int) -> Tensor:
    """Weighted sum of each row's graded channels, scaled to the weight its group is graded on.

    x: (N, K), NaN = absent; w: (K,) or (N, K). Returns (N,): sum_j w_j x_j * W_group / W_row, where
    W_row is the weight of the row's present channels and W_group that of the channels present in
    any row of its group (a rubric's items; trailing padding is in none). A row with every verdict
    exactly equals the plain sum (the factor is exactly 1); a missing verdict counts as the row's
    weighted mean of its graded items instead of 0. NaN for a row with no channel.
    """
    n, k = x.shape
    present = presence(x)
    graded = present.reshape(n // num_generations, num_generations, k).amax(1, keepdim=True)
    graded = graded.expand(-1, num_generations, -1).reshape(n, k)
    w_row, w_group = weighted_row_sum(present, w), weighted_row_sum(graded, w)
    total = weighted_row_sum(x.nan_to_num(0.0), w)
    return torch.where(present.sum(-1) > 0, total * (w_group / w_row).nan_to_num(1.0), math.nan)


def drop_saturated(z: Tensor, num_generations: int) -> Tensor:
    """Z (N, K) with the channels constant within their group (every present Z exactly 0: all
    rollouts met the item, or none did) marked absent (NaN). Returns a new tensor."""
    n, k = z.shape
    g = z.reshape(n // num_generations, num_generations, k)
    constant = g.nan_to_num(0.0).abs().amax(1, keepdim=True) == 0
    return (g + torch.where(constant, math.nan, 0.0).to(z.dtype)).reshape(n, k)
