"""Interval estimates across runs: aggregate scores over runs and tasks with stratified-bootstrap CIs
(Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", the estimators of the
`rliable` library).

Computed with numpy and scipy rather than rliable 1.2.0: rliable installs with the pinned numpy, but
brings arch, statsmodels, seaborn, absl-py and five more packages for a few lines of arithmetic, and
takes each method's runs as one (runs, tasks) matrix, as many runs on every task (a benchmark stopped
part-way has not; the probability of improvement here takes any run counts).

A score matrix is (runs, tasks): one row per seed, one column per task, every task's score in the
same units (here each task's primary metric, a rate in [0, 1]). Every random draw takes a seed
(rvpo_repro.analysis.stats.base.seeded_rng).

- mean: the mean of all entries; IQM: the mean of the middle 50% of all entries (scipy's
  trim_mean with 25% cut at each end), robust to an outlying run yet using half the runs;
- stratified bootstrap: each task's runs are resampled with replacement on their own (strata =
  tasks), the statistic recomputed; the CI is the percentile interval;
- probability of improvement P(X > Y): for each task, the share of (run of X, run of Y) pairs in
  which X scores higher (ties count 1/2: the Mann-Whitney U over m n), averaged over tasks;
- performance profile: the share of entries above each threshold tau.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from rvpo_repro.analysis.stats.base import percentile_ci, seeded_rng

N_BOOT = 2000
CONFIDENCE = 0.95


def _matrix(scores: np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"scores of shape {x.shape} are invalid; expected a finite (runs, tasks) matrix")
    return x


def mean_score(scores: np.ndarray) -> float | np.ndarray:
    """Mean over every (run, task) entry; a stack (..., runs, tasks) gives one per leading index."""
    x = np.asarray(scores, dtype=float)
    return np.mean(x, axis=(-2, -1)) if x.ndim > 2 else float(np.mean(_matrix(x)))


def iqm(scores: np.ndarray) -> float | np.ndarray:
    """Interquartile mean over every (run, task) entry: the 25%-trimmed mean (a stack as mean_score)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim > 2:
        return stats.trim_mean(x.reshape(*x.shape[:-2], -1), 0.25, axis=-1)
    return float(stats.trim_mean(_matrix(x).ravel(), 0.25))


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, CI low, CI high) of `statistic` on a (runs, tasks) matrix, the runs of each
    task resampled with replacement on their own. `statistic` takes a matrix, or a stack
    (n_boot, runs, tasks) returning (n_boot,) (mean_score and iqm do)."""
    x = _matrix(scores)
    rng = seeded_rng(seed)
    n, t = x.shape
    idx = rng.integers(0, n, size=(n_boot, n, t))  # per task (column) its own row draws
    boot = np.asarray(statistic(np.take_along_axis(x[None], idx, axis=1)))
    return float(statistic(x)), *percentile_ci(boot, confidence)


def _pairwise_greater(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) with ties 1/2 over all pairs of x (m,) and y (n,)."""
    diff = x[:, None] - y[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """Average over tasks of P(X_task > Y_task); x and y hold one 1-D run array per task (run counts
    may differ between methods and tasks)."""
    if len(x) != len(y) or not len(x):
        raise ValueError(f"x has {len(x)} tasks and y {len(y)}; expected the same tasks, at least one")
    return float(
        np.mean(
            [_pairwise_greater(np.asarray(a, float), np.asarray(b, float)) for a, b in zip(x, y, strict=True)]
        )
    )


def probability_of_improvement_ci(
    x: Sequence[np.ndarray], y: Sequence[np.ndarray], n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """(P(X > Y), CI low, CI high): the runs of X and of Y resampled per task, independently."""
    rng = seeded_rng(seed)
    xs, ys = [np.asarray(a, float) for a in x], [np.asarray(b, float) for b in y]
    boot = np.zeros(n_boot)
    for a, c in zip(xs, ys, strict=True):
        da = a[rng.integers(0, len(a), (n_boot, len(a)))]
        dc = c[rng.integers(0, len(c), (n_boot, len(c)))]
        diff = da[:, :, None] - dc[:, None, :]
        boot += ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2)) / len(xs)
    return probability_of_improvement(xs, ys), *percentile_ci(boot, confidence)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Share of (run, task) entries scoring above each tau: (len(taus),), non-increasing in tau."""
    x = _matrix(scores).ravel()
    return (x[None, :] > np.asarray(taus, float)[:, None]).mean(axis=1)
