"""Time the resampling tests of rvpo_repro.analysis.stats (paired, seeds) on seeded data.

Paired bootstrap and paired permutation with 10,000 resamples over 5,000 examples (target:
under 2 s each on 2 cores), the hierarchical bootstrap on 5 seeds x 5,000 examples per
method, and scipy's own bootstrap / permutation_test on the same data for comparison.
Run: python benchmarks/bench_stats.py
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import scipy
from scipy import stats as sps

from rvpo_repro.analysis.stats.base import CHUNK_ELEMS
from rvpo_repro.analysis.stats.paired import paired_bootstrap, paired_permutation
from rvpo_repro.analysis.stats.seeds import hierarchical_bootstrap

N_EXAMPLES, N_RESAMPLES, N_SEEDS, REPEATS = 5000, 10_000, 5, 3


def timed(fn, repeats: int = REPEATS) -> tuple[float, object]:
    """Median wall time of `repeats` calls (seconds) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def fmt_ci(ci) -> str:
    return f"({ci[0]:+.4f}, {ci[1]:+.4f})"


def main() -> None:
    rng = np.random.default_rng(20240607)
    a = rng.binomial(1, 0.62, N_EXAMPLES).astype(float)  # per-example 0/1 correctness, like an eval
    b = np.where(rng.random(N_EXAMPLES) < 0.9, a, 1 - a)  # a second run agreeing on 90% of examples
    runs_a = [rng.binomial(1, 0.62, N_EXAMPLES).astype(float) for _ in range(N_SEEDS)]
    runs_b = [rng.binomial(1, 0.60, N_EXAMPLES).astype(float) for _ in range(N_SEEDS)]
    chunk = CHUNK_ELEMS // N_EXAMPLES

    print(f"numpy {np.__version__}, scipy {scipy.__version__}, python {platform.python_version()}")
    print(f"data: {N_EXAMPLES} examples, {N_RESAMPLES} resamples, median of {REPEATS}")
    print(f"chunk: {chunk} resamples x {N_EXAMPLES} examples")
    mb = chunk * N_EXAMPLES / 2**20
    print(f"  bootstrap peak chunk memory ~{16 * mb:.0f} MiB (int64 indices + float64 gathered values)")
    print(f"  hierarchical: {chunk // 2} resamples a chunk, ~{12 * mb:.0f} MiB (example draws and counts)")
    print(
        f"  permutation peak chunk memory ~{9 * mb:.0f} MiB (uint8 sign bits + float64 copy for the mat-vec)"
    )

    t, res = timed(lambda: paired_bootstrap(a, b, N_RESAMPLES, seed=0))
    print(
        f"paired_bootstrap       {t:6.3f} s   diff={res.statistic:+.4f} ci={fmt_ci(res.ci)} p={res.p_value:.4g}"
    )
    t, res = timed(lambda: paired_permutation(a, b, N_RESAMPLES, seed=0))
    print(f"paired_permutation     {t:6.3f} s   p={res.p_value:.4g}")
    t, res = timed(lambda: hierarchical_bootstrap(runs_a, runs_b, N_RESAMPLES, seed=0))
    print(
        f"hierarchical_bootstrap {t:6.3f} s   ({N_SEEDS}+{N_SEEDS} seeds)   ci={fmt_ci(res.ci)} p={res.p_value:.4g}"
    )

    # scipy references on the same data (one call each: they are the slow path)
    def mean_diff(x, y, axis=-1):
        return np.mean(x - y, axis=axis)

    t, ref = timed(
        lambda: sps.bootstrap(
            (a, b), mean_diff, paired=True, n_resamples=N_RESAMPLES, method="percentile", batch=chunk, rng=0
        ),
        repeats=1,
    )
    ci = ref.confidence_interval
    print(f"scipy.stats.bootstrap (paired, percentile) {t:6.3f} s   ci={fmt_ci((ci.low, ci.high))}")
    t, ref = timed(
        lambda: sps.permutation_test(
            (a, b), mean_diff, permutation_type="samples", n_resamples=N_RESAMPLES, batch=chunk, rng=0
        ),
        repeats=1,
    )
    print(f"scipy.stats.permutation_test (samples)     {t:6.3f} s   p={ref.pvalue:.4g}")


if __name__ == "__main__":
    main()
