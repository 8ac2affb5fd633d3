"""What the significance tests share: their result, their p-value conventions and the small steps
every test takes (a seeded generator, checked arguments, resampling in chunks, the percentile
summary of a bootstrap, the result of a sample with no spread or too few values).

Every test (rvpo_repro.analysis.stats.paired, .seeds) returns a frozen ``TestResult`` whose
``statistic`` is the mean difference ``a - b``; the test's own statistic (t, W, U) is in
``test_statistic``. Every random draw comes from ``numpy.random.default_rng(seed)``.

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
from collections.abc import Iterator
from typing import Any

import numpy as np

Seed = int | np.random.Generator

# Resampling loops draw chunks of at most this many index entries (500 resamples x 5000
# examples): int64 indices plus gathered float64 values stay near 40 MB whatever n is.
CHUNK_ELEMS = 2_500_000


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


def as_1d(x: Any, name: str) -> np.ndarray:
    """x as a float array of shape (n,); any other shape is an error naming `name`."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per example or seed), got shape {arr.shape}")
    return arr


def seeded_rng(seed: Seed) -> np.random.Generator:
    """numpy's default generator for an int seed (or the Generator itself); None is refused."""
    if seed is None:
        raise ValueError("seed=None: pass an int or numpy.random.Generator so results are reproducible")
    return np.random.default_rng(seed)


def check_args(confidence: float | None, n_resamples: int | None = None) -> None:
    """Refuse a confidence outside (0, 1) and a resample count that is not a positive integer."""
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples is not None and (not isinstance(n_resamples, int | np.integer) or n_resamples < 1):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")


def chunks(total: int, width: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges over `total` resamples of `width` entries each, CHUNK_ELEMS at most a chunk."""
    step = max(1, CHUNK_ELEMS // max(width, 1))
    for start in range(0, total, step):
        yield start, min(start + step, total)


def percentile_ci(dist: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of a bootstrap distribution dist (B,)."""
    alpha = 1 - confidence
    low, high = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_summary(dist: np.ndarray, confidence: float) -> tuple[tuple[float, float], float]:
    """Percentile CI and two-sided p (module docstring) from a bootstrap distribution (B,) of a - b."""
    tail = min(np.count_nonzero(dist <= 0), np.count_nonzero(dist >= 0))
    return percentile_ci(dist, confidence), min(1.0, 2 * (1 + int(tail)) / (1 + dist.size))


def standardised(mean: float, sd: float) -> float:
    """mean / sd, the form of every effect size here. A zero spread makes the standardised effect 0
    (no difference) or infinite, never NaN."""
    if sd > 0:
        return float(mean / sd)
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


def zero_spread(test: str, diff: float, n: int, dropped: int, with_ci: bool, **kw: Any) -> TestResult:
    """Result for zero spread, where scipy would divide 0 by 0: no difference at all (p = 1)
    or the same non-zero difference everywhere (t infinite, p = 0)."""
    stat = math.copysign(math.inf, diff) if diff else 0.0
    note = "zero variance: every difference is the same non-zero value" if diff else "all scores equal"
    ci = (diff, diff) if with_ci else None
    return TestResult(test, diff, 0.0 if diff else 1.0, ci, n, dropped, test_statistic=stat, note=note, **kw)


def cannot_run(test: str, diff: float, n: int, dropped: int, need: str, **kw: Any) -> TestResult:
    """Result of a test with too few values to run: no p-value, no CI, `need` in the note."""
    return TestResult(test, diff, None, None, n, dropped, note=f"cannot run: {need}", **kw)
