"""Significance tests for comparing runs, on scipy and numpy.

Two designs:

* paired, across examples: two runs scored on the same examples, ``a`` and ``b`` of shape
  (n_examples,) or pandas Series indexed by example id -- ``paired_bootstrap``,
  ``paired_permutation``, ``wilcoxon``, ``paired_t``;
* across seeds: several runs per method -- ``welch``, ``mann_whitney`` and
  ``seed_permutation`` on per-seed scores of shape (n_seeds,), and ``hierarchical_bootstrap``
  on per-seed arrays of per-example scores, each (n_examples,); these live in
  rvpo_repro.analysis.stats.seeds.

Every test returns a frozen ``TestResult`` whose ``statistic`` is the mean difference
``a - b``; the test's own statistic (t, W, U) is in ``test_statistic``. ``holm`` adjusts a
family of p-values. Every random draw comes from ``numpy.random.default_rng(seed)``.

p-value conventions
-------------------
* permutation (sign flips of the paired differences): ``(1 + #{|T*| >= |T_obs|}) /
  (1 + n_resamples)``, the observed statistic counted once, as scipy's
  ``permutation_test`` does; when ``2**n <= n_resamples`` all ``2**n`` sign vectors are
  enumerated and ``p = #{|T*| >= |T_obs|} / 2**n`` (exact, as scipy).
* bootstrap (paired and hierarchical): two-sided percentile p-value from the bootstrap
  distribution d* of the mean difference, ``p = min(1, 2 * (1 + min(#{d* <= 0},
  #{d* >= 0})) / (1 + n_resamples))``. Since ``d* <= 0`` iff ``d* - d_obs <= -d_obs``,
  this is the usual centred tail ``P(d* - d_obs <= -d_obs)`` doubled; up to the add-one
  (which keeps a Monte-Carlo p-value from reading 0) and quantile interpolation, p < alpha
  exactly when 0 lies outside the (1 - alpha) percentile CI.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from scipy import special, stats

Seed = int | np.random.Generator
Ids = Sequence | None

# Resampling loops draw chunks of at most this many index entries (500 resamples x 5000
# examples): int64 indices plus gathered float64 values stay near 40 MB whatever n is.
_CHUNK_ELEMS = 2_500_000


@dataclasses.dataclass(frozen=True)
class TestResult:
    """Outcome of one comparison.

    statistic: mean difference a - b (paired: mean of per-example differences; across
    seeds: mean of a's seeds minus mean of b's). p_value and ci are None when the test
    cannot run (``note`` says why). n: complete pairs (paired) or seeds of a; n_b: seeds of
    b (None for paired tests); n_dropped: pairs, seeds or examples dropped for NaN.
    """

    __test__ = False  # keep pytest from collecting this class

    test: str
    statistic: float
    p_value: float | None
    ci: tuple[float, float] | None
    n: int
    n_dropped: int = 0
    n_b: int | None = None
    test_statistic: float | None = None
    df: float | None = None
    effect_size: float | None = None
    effect_name: str | None = None
    confidence: float = 0.95
    n_resamples: int | None = None
    note: str = ""


# ---------------------------------------------------------------------------- inputs
def _as_1d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per example or seed), got shape {arr.shape}")
    return arr


def _ids_of(x: Any, ids: Ids) -> list | None:
    if ids is not None:
        return list(ids)
    if hasattr(x, "index") and hasattr(x, "to_numpy"):  # pandas Series: ids are its index
        return x.index.tolist()
    return None


def _align(a: Any, b: Any, ids_a: Ids, ids_b: Ids) -> tuple[np.ndarray, np.ndarray]:
    ka, kb = _ids_of(a, ids_a), _ids_of(b, ids_b)
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if (ka is None) != (kb is None):
        raise ValueError("example ids known for only one side: pass Series or ids_a/ids_b for both a and b")
    if ka is None:
        if a.size != b.size:
            raise ValueError(f"a and b must score the same examples: len(a)={a.size}, len(b)={b.size}")
        return a, b
    for ids, arr, side in ((ka, a, "a"), (kb, b, "b")):
        if len(ids) != arr.size:
            raise ValueError(f"ids_{side} has {len(ids)} ids for {arr.size} scores")
        if len(set(ids)) != len(ids):
            dup = [k for k, c in Counter(ids).items() if c > 1][:5]
            raise ValueError(f"duplicate example ids in {side}: {dup}")
    pos_b, set_a = {k: i for i, k in enumerate(kb)}, set(ka)
    only_a, only_b = [k for k in ka if k not in pos_b], [k for k in kb if k not in set_a]
    if only_a or only_b:
        raise ValueError(
            f"example ids differ: {len(only_a)} missing from b (e.g. {only_a[:5]}), "
            f"{len(only_b)} missing from a (e.g. {only_b[:5]})"
        )
    return a, b[[pos_b[k] for k in ka]]


def _paired(a: Any, b: Any, ids_a: Ids, ids_b: Ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Align by id, drop pairs with a NaN on either side. Returns (a, b, a - b), each (n,), and n_dropped."""
    a, b = _align(a, b, ids_a, ids_b)
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        raise ValueError(f"no complete pairs: all {a.size} pairs have a NaN score (or there are none)")
    a, b = a[keep], b[keep]
    return a, b, a - b, int(keep.size - keep.sum())


def _two_samples(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, int]:
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    dropped = int(np.isnan(a).sum() + np.isnan(b).sum())
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        raise ValueError(f"no scores left after dropping NaN: {a.size} for a, {b.size} for b")
    return a, b, dropped


def _rng(seed: Seed) -> np.random.Generator:
    if seed is None:
        raise ValueError("seed=None: pass an int or numpy.random.Generator so results are reproducible")
    return np.random.default_rng(seed)


def _check(confidence: float | None, n_resamples: int | None = None) -> None:
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples is not None and (not isinstance(n_resamples, int | np.integer) or n_resamples < 1):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")


def _chunks(total: int, width: int) -> Iterator[tuple[int, int]]:
    step = max(1, _CHUNK_ELEMS // max(width, 1))
    for start in range(0, total, step):
        yield start, min(start + step, total)


# ---------------------------------------------------------------------- effect sizes
def _ratio(mean: float, sd: float) -> float:
    # A zero spread makes the standardised effect 0 (no difference) or infinite, never NaN.
    if sd > 0:
        return float(mean / sd)
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


def cohens_dz(a: Any, b: Any) -> float:
    """Paired effect size d_z = mean(a - b) / sd(a - b), ddof=1. a, b: (n,), n >= 2."""
    d = _as_1d(a, "a") - _as_1d(b, "b")
    if d.size < 2:
        raise ValueError(f"d_z needs at least 2 pairs, got {d.size}")
    return _ratio(d.mean(), d.std(ddof=1))


def cohens_d(a: Any, b: Any) -> float:
    """Two-sample Cohen's d with the pooled sd (ddof=1). a: (n_a,), b: (n_b,), n_a + n_b >= 3."""
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    df = a.size + b.size - 2
    if a.size < 1 or b.size < 1 or df < 1:
        raise ValueError(f"Cohen's d needs n_a + n_b >= 3 with both non-empty, got {a.size} and {b.size}")
    ss = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    return _ratio(a.mean() - b.mean(), math.sqrt(ss / df))


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


# -------------------------------------------------------------------------- helpers
def _boot_summary(dist: np.ndarray, confidence: float) -> tuple[tuple[float, float], float]:
    """Percentile CI and two-sided p (module docstring) from a bootstrap distribution (B,)."""
    alpha = 1 - confidence
    low, high = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    tail = min(np.count_nonzero(dist <= 0), np.count_nonzero(dist >= 0))
    return (float(low), float(high)), min(1.0, 2 * (1 + int(tail)) / (1 + dist.size))


def _degenerate(test: str, diff: float, n: int, dropped: int, with_ci: bool, **kw: Any) -> TestResult:
    """Result for zero spread, where scipy would divide 0 by 0: no difference at all (p = 1)
    or the same non-zero difference everywhere (t infinite, p = 0)."""
    stat = math.copysign(math.inf, diff) if diff else 0.0
    note = "zero variance: every difference is the same non-zero value" if diff else "all scores equal"
    ci = (diff, diff) if with_ci else None
    return TestResult(test, diff, 0.0 if diff else 1.0, ci, n, dropped, test_statistic=stat, note=note, **kw)


def _too_few(test: str, diff: float, n: int, dropped: int, need: str, **kw: Any) -> TestResult:
    return TestResult(test, diff, None, None, n, dropped, note=f"cannot run: {need}", **kw)


def _dz(d: np.ndarray) -> dict[str, Any]:
    return {"effect_size": _ratio(d.mean(), d.std(ddof=1)) if d.size > 1 else None, "effect_name": "d_z"}


# --------------------------------------------------------------------- paired tests
def paired_bootstrap(
    a: Any, b: Any, n_resamples: int = 10000, seed: Seed = 0, confidence: float = 0.95, *, ids_a: Ids = None,
    ids_b: Ids = None
) -> TestResult:  # fmt: skip
    """Paired bootstrap of the mean difference: resample examples (pairs) with replacement.

    a, b: (n,) scores on the same examples (or Series indexed by example id, or ids_a/ids_b).
    Percentile CI and the two-sided bootstrap p of the module docstring.
    """
    _check(confidence, n_resamples)
    a, b, d, dropped = _paired(a, b, ids_a, ids_b)
    n, diff = d.size, float(d.mean())
    if n < 2:
        return _too_few("bootstrap", diff, n, dropped, "the bootstrap needs at least 2 complete pairs")
    # Own loop, not scipy.stats.bootstrap: one pass gives both CI and p from the same draws,
    # with bounded chunk memory, and is ~2x faster at n=5000 (benchmarks/bench_stats.py).
    rng, dist = _rng(seed), np.empty(n_resamples)
    for start, stop in _chunks(n_resamples, n):
        dist[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    ci, p = _boot_summary(dist, confidence)
    kw = {"confidence": confidence, "n_resamples": n_resamples, **_dz(d)}
    return TestResult("bootstrap", diff, p, ci, n, dropped, **kw)


def paired_permutation(
    a: Any, b: Any, n_resamples: int = 10000, seed: Seed = 0, *, ids_a: Ids = None, ids_b: Ids = None
) -> TestResult:
    """Paired permutation test: flip the sign of each difference a_i - b_i at random.

    a, b: (n,) as for paired_bootstrap. T = mean of signed differences; p as in the module
    docstring (exact enumeration when 2**n <= n_resamples). No CI (ci is None).
    """
    _check(None, n_resamples)
    a, b, d, dropped = _paired(a, b, ids_a, ids_b)
    n, total = d.size, float(d.sum())
    exact = 2**n <= n_resamples
    count_of = 2**n if exact else n_resamples
    # Float sums of the same terms in another order differ by rounding: count those as ties.
    threshold = abs(total) / n - 1e-9 * float(np.abs(d).mean())
    # Own loop, not scipy.stats.permutation_test: with a 0/1 "keep sign" matrix B the
    # statistics are one mat-vec (2 B @ d - sum d) / n, ~20x faster than scipy at n=5000.
    rng, hits = _rng(seed), 0
    for start, stop in _chunks(count_of, n):
        if exact:  # row k holds the bits of k: every sign vector once, the observed (all 1s) too
            keep = ((np.arange(start, stop)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(stop - start, (n + 7) // 8), dtype=np.uint8)
            keep = np.unpackbits(raw, axis=1, count=n)
        hits += int(np.count_nonzero(np.abs(2 * (keep @ d) - total) / n >= threshold))
    p = hits / count_of if exact else (1 + hits) / (1 + n_resamples)
    kw = {"n_resamples": count_of, "note": f"exact: all 2**{n} sign vectors" if exact else "", **_dz(d)}
    return TestResult("permutation", total / n, min(p, 1.0), None, n, dropped, test_statistic=total / n, **kw)


def wilcoxon(
    a: Any, b: Any, zero_method: str = "wilcox", method: str = "auto", *, ids_a: Ids = None, ids_b: Ids = None
) -> TestResult:
    """Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided) on paired a, b of shape (n,).

    test_statistic is scipy's W; with zero_method='wilcox' zero differences are discarded by
    the test (counted in ``note``). No CI.
    """
    a, b, d, dropped = _paired(a, b, ids_a, ids_b)
    n, diff = d.size, float(d.mean())
    if not d.any():  # scipy would warn and divide 0 by 0 here
        return _degenerate("wilcoxon", 0.0, n, dropped, False, **_dz(d))
    res = stats.wilcoxon(a, b, zero_method=zero_method, method=method)
    zeros = n - int(np.count_nonzero(d))
    note = f"{zeros} zero differences discarded by the test" if zeros and zero_method == "wilcox" else ""
    kw = {"test_statistic": float(res.statistic), "note": note, **_dz(d)}
    return TestResult("wilcoxon", diff, float(res.pvalue), None, n, dropped, **kw)


def paired_t(a: Any, b: Any, confidence: float = 0.95, *, ids_a: Ids = None, ids_b: Ids = None) -> TestResult:
    """Paired t-test (scipy.stats.ttest_rel) with its t-based CI of the mean difference. a, b: (n,)."""
    _check(confidence)
    a, b, d, dropped = _paired(a, b, ids_a, ids_b)
    n, diff = d.size, float(d.mean())
    if n < 2:
        return _too_few("paired-t", diff, n, dropped, "the t-test needs at least 2 complete pairs")
    kw = {"df": float(n - 1), "confidence": confidence, **_dz(d)}
    if d.std() == 0:
        return _degenerate("paired-t", diff, n, dropped, True, **kw)
    res = stats.ttest_rel(a, b)
    ci, kw["test_statistic"] = res.confidence_interval(confidence), float(res.statistic)
    return TestResult("paired-t", diff, float(res.pvalue), (float(ci.low), float(ci.high)), n, dropped, **kw)


# ------------------------------------------------------------------- multiplicity
def holm(pvalues: Sequence[float | None]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, shape (m,), in input order.

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)) (1-based), so the
    adjusted values keep the order of the raw ones and never exceed 1. Untestable entries
    (None or NaN) are an error: leave them out of the family.
    """
    p = np.array([np.nan if v is None else v for v in pvalues], dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be a flat sequence, got shape {p.shape}")
    bad = np.flatnonzero(~((p >= 0) & (p <= 1)))  # NaN fails both comparisons
    if bad.size:
        raise ValueError(f"p-values must lie in [0, 1]; bad at positions {bad[:10].tolist()}: {p[bad[:10]]}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted
