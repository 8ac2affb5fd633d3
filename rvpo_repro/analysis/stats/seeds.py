"""Tests across seeds: several training runs per method (TestResult and the p-value conventions:
rvpo_repro.analysis.stats.base).

* ``welch``, ``mann_whitney``, ``seed_permutation``: per-seed scores of shape (n_seeds,);
* ``hierarchical_bootstrap``: per-seed arrays of per-example scores, each (n_examples,),
  resampling seeds and then examples -- or examples only (``resample_seeds=False``: the
  comparison *conditional on these seeds*);
* ``hierarchical_mean_ci``: the same two-level bootstrap for one method's grand mean;
* ``cohens_d``, ``hedges_g``: the two-sample effect sizes.

Seeds with a NaN score are dropped and counted. The seeds-then-examples draw lives in one place,
``_hier_sums``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from rvpo_repro.analysis.stats.base import (
    Seed,
    TestResult,
    as_1d,
    bootstrap_summary,
    cannot_run,
    check_args,
    chunks,
    percentile_ci,
    seeded_rng,
    standardised,
    zero_spread,
)


# ---------------------------------------------------------------------------- inputs
def _two_samples(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, int]:
    a, b = as_1d(a, "a"), as_1d(b, "b")
    dropped = int(np.isnan(a).sum() + np.isnan(b).sum())
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        raise ValueError(f"no scores left after dropping NaN: {a.size} for a, {b.size} for b")
    return a, b, dropped


# ---------------------------------------------------------------------- effect sizes
def cohens_d(a: Any, b: Any) -> float:
    """Two-sample Cohen's d with the pooled sd (ddof=1). a: (n_a,), b: (n_b,), n_a + n_b >= 3."""
    a, b = as_1d(a, "a"), as_1d(b, "b")
    df = a.size + b.size - 2
    if a.size < 1 or b.size < 1 or df < 1:
        raise ValueError(f"Cohen's d needs n_a + n_b >= 3 with both non-empty, got {a.size} and {b.size}")
    ss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    return standardised(a.mean() - b.mean(), math.sqrt(ss / df))


def hedges_g(a: Any, b: Any) -> float:
    """Cohen's d times the exact small-sample correction J(df) = G(df/2) / (sqrt(df/2) G((df-1)/2)).

    a: (n_a,), b: (n_b,), df = n_a + n_b - 2 >= 2 (J(1) = 0 makes g meaningless below that).
    """
    df = np.size(a) + np.size(b) - 2
    if df < 2:
        raise ValueError(f"Hedges' g needs n_a + n_b >= 4, got {np.size(a)} and {np.size(b)}")
    return (
        cohens_d(a, b) * math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    )


# --------------------------------------------------------------- across-seed tests
def _seed_need(test: str, na: int, nb: int) -> str:
    return f"{test} needs at least 2 seeds per method, got {na} and {nb}: one run has no seed-to-seed spread"


def welch(a: Any, b: Any, confidence: float = 0.95) -> TestResult:
    """Welch's t-test (scipy.stats.ttest_ind, equal_var=False) on per-seed scores a: (n_a,), b: (n_b,).

    statistic: mean(a) - mean(b); test_statistic: t; ci: Welch CI of the difference;
    effect: Hedges' g. With fewer than 2 seeds on a side, p_value and ci are None.
    """
    check_args(confidence)
    a, b, dropped = _two_samples(a, b)
    diff, kw = float(a.mean() - b.mean()), {"n_b": b.size, "confidence": confidence}
    if min(a.size, b.size) < 2:
        return cannot_run("welch", diff, a.size, dropped, _seed_need("Welch's t-test", a.size, b.size), **kw)
    kw |= {"effect_size": hedges_g(a, b), "effect_name": "hedges_g"}
    if a.std() == 0 and b.std() == 0:
        return zero_spread("welch", diff, a.size, dropped, True, **kw)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci, t = res.confidence_interval(confidence), float(res.statistic)
    kw |= {"test_statistic": t, "df": float(res.df)}
    return TestResult(
        "welch", diff, float(res.pvalue), (float(ci.low), float(ci.high)), a.size, dropped, **kw
    )


def mann_whitney(a: Any, b: Any, method: str = "auto") -> TestResult:
    """Mann-Whitney U test (scipy.stats.mannwhitneyu, two-sided) on per-seed scores a: (n_a,), b: (n_b,).

    test_statistic: U of a; effect: rank-biserial r = 2U / (n_a n_b) - 1. No CI.
    """
    a, b, dropped = _two_samples(a, b)
    diff, na, nb = float(a.mean() - b.mean()), a.size, b.size
    if min(na, nb) < 2:
        return cannot_run("mann-whitney", diff, na, dropped, _seed_need("Mann-Whitney U", na, nb), n_b=nb)
    res = stats.mannwhitneyu(a, b, alternative="two-sided", method=method)
    u = float(res.statistic)
    kw = {
        "n_b": nb,
        "test_statistic": u,
        "effect_size": 2 * u / (na * nb) - 1,
        "effect_name": "rank_biserial",
    }
    return TestResult("mann-whitney", diff, float(res.pvalue), None, na, dropped, **kw)


def _stack(runs: Sequence[Any], name: str) -> np.ndarray:
    arrays = [as_1d(r, f"{name}[{i}]") for i, r in enumerate(runs)]
    lengths = sorted({x.size for x in arrays})
    if len(lengths) != 1:
        raise ValueError(f"every run in {name} must score the same examples; lengths found: {lengths}")
    return np.stack(arrays)


def _counts(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """(m, k) multiplicities of k items drawn k times with replacement, m times over."""
    idx = rng.integers(0, k, size=(m, k))
    idx += k * np.arange(m)[:, None]  # row r counts into bins r*k .. r*k + k - 1 of one bincount
    return np.bincount(idx.ravel(), minlength=m * k).reshape(m, k).astype(float)


def seed_permutation(a: Any, b: Any, n_resamples: int = 10000, seed: Seed = 0) -> TestResult:
    """Two-sample permutation test of mean(a) - mean(b) over per-seed scores a: (n_a,), b: (n_b,)
    (scipy.stats.permutation_test, independent samples, two-sided).

    Exact (every split of the pooled seeds into groups of n_a and n_b) when there are at most
    n_resamples splits; then the smallest attainable p, 2 / C(n_a + n_b, n_a), is in ``note``
    and ``test_statistic``-free: with 3 seeds a side it is 0.1, so no result reaches 0.05.
    """
    check_args(None, n_resamples)
    a, b, dropped = _two_samples(a, b)
    diff, na, nb = float(a.mean() - b.mean()), a.size, b.size
    if min(na, nb) < 2:
        return cannot_run(
            "permutation", diff, na, dropped, _seed_need("the permutation test", na, nb), n_b=nb
        )
    splits = math.comb(na + nb, na)
    res = stats.permutation_test(
        (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), permutation_type="independent",
        vectorized=True, n_resamples=n_resamples, alternative="two-sided", rng=seeded_rng(seed),
    )  # fmt: skip
    exact = splits <= n_resamples
    note = (
        f"exact over all {splits} splits of the seeds; smallest attainable p = {min(1.0, 2 / splits):.3g}"
        if exact
        else f"{n_resamples} random splits of {splits}"
    )
    kw = {"n_b": nb, "n_resamples": splits if exact else n_resamples, "note": note}
    return TestResult("permutation", diff, float(res.pvalue), None, na, dropped, test_statistic=diff, **kw)


def _hier_sums(xs: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator,
               resample_seeds: bool = True) -> np.ndarray:  # fmt: skip
    """(len(xs), n_resamples) bootstrap replicates of each method's grand mean times n_examples.

    xs: one (n_seeds_i, n_examples) array per method, all on the same examples. Per replicate,
    each method's seeds are drawn with replacement (in the order of xs; kept as they are when
    resample_seeds is False), then one draw of the examples applies to every run of every
    method: all runs share the test set, so this crossed ("pigeonhole", Owen 2007) scheme mimics
    drawing a new test set. The mean over resampled seeds and examples is
    sum_s c_s (sum_e w_e x[s, e]) / (S E), with c, w the draw multiplicities: one (m, E) @ (E, S)
    product per method and chunk, no gathered copies. Returned without the final / E.
    """
    e = xs[0].shape[1]
    out = np.empty((len(xs), n_resamples))
    for start, stop in chunks(n_resamples, len(xs) * e):
        m = stop - start
        cs = [_counts(rng, m, x.shape[0]) if resample_seeds else np.ones((m, x.shape[0])) for x in xs]
        w = _counts(rng, m, e)
        for i, (c, x) in enumerate(zip(cs, xs, strict=True)):
            out[i, start:stop] = (c * (w @ x.T)).sum(1) / x.shape[0]
    return out


def hierarchical_bootstrap(
    runs_a: Sequence[Any], runs_b: Sequence[Any], n_resamples: int = 10000, seed: Seed = 0,
    confidence: float = 0.95, resample_seeds: bool = True,
) -> TestResult:  # fmt: skip
    """Two-level bootstrap of the difference in mean score: resample seeds, then examples.

    runs_a: n_seeds_a arrays of shape (n_examples,), one per seed, all scored on the same
    examples in the same order (likewise runs_b). statistic: grand mean of a minus that of b.
    Seeds are resampled independently per method (separate training runs); examples once per
    replicate for every run of both methods (see ``_hier_sums``). With resample_seeds=False
    only the examples are resampled: the answer is conditional on these seeds (test
    "example-bootstrap"), and one seed per method suffices. Examples with a NaN in any run are
    dropped (n_dropped). Percentile CI and bootstrap p as in rvpo_repro.analysis.stats.base;
    effect: Hedges' g on seed means (when each side has 2 seeds).
    """
    check_args(confidence, n_resamples)
    xa, xb = _stack(runs_a, "runs_a"), _stack(runs_b, "runs_b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"runs_a score {xa.shape[1]} examples, runs_b {xb.shape[1]}; they must share them")
    keep = ~(np.isnan(xa).any(axis=0) | np.isnan(xb).any(axis=0))
    if not keep.any():
        raise ValueError(f"no example is scored (non-NaN) in every run: all {keep.size} dropped")
    xa, xb, dropped = xa[:, keep], xb[:, keep], int(keep.size - keep.sum())
    (sa, e), sb = xa.shape, xb.shape[0]
    diff = float(xa.mean() - xb.mean())
    name = "hier-bootstrap" if resample_seeds else "example-bootstrap"
    if resample_seeds and min(sa, sb) < 2:
        return cannot_run(name, diff, sa, dropped, _seed_need("the hierarchical bootstrap", sa, sb), n_b=sb)
    if e < 2:
        return cannot_run(name, diff, sa, dropped, "the bootstrap needs at least 2 shared examples", n_b=sb)
    sums = _hier_sums([xa, xb], n_resamples, seeded_rng(seed), resample_seeds)
    ci, p = bootstrap_summary((sums[0] - sums[1]) / e, confidence)
    kw = {"confidence": confidence, "n_resamples": n_resamples, "effect_name": "hedges_g"}
    g = hedges_g(xa.mean(1), xb.mean(1)) if min(sa, sb) >= 2 else None
    note = "" if resample_seeds else "conditional on these seeds: examples resampled, seeds fixed"
    return TestResult(name, diff, p, ci, sa, dropped, n_b=sb, effect_size=g, note=note, **kw)


def hierarchical_mean_ci(
    x: Any, n_resamples: int = 10000, seed: Seed = 0, confidence: float = 0.95, resample_seeds: bool = True
) -> tuple[float, float]:
    """Percentile CI of the grand mean of x (n_seeds, n_examples), by the draw of ``_hier_sums``
    for one method. A percentile CI of means never leaves [min(x), max(x)]."""
    check_args(confidence, n_resamples)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must be (n_seeds, n_examples) with n_examples >= 2, got shape {x.shape}")
    x = x[:, ~np.isnan(x).any(axis=0)]
    dist = _hier_sums([x], n_resamples, seeded_rng(seed), resample_seeds)[0] / x.shape[1]
    return percentile_ci(dist, confidence)
