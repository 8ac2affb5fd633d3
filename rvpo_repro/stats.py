"""Significance tests for comparing runs (public names of rvpo_repro.analysis.stats and
rvpo_repro.analysis.seed_stats, kept at this path for users' code and notebooks)."""

from rvpo_repro.analysis.seed_stats import (
    hierarchical_bootstrap,
    hierarchical_mean_ci,
    mann_whitney,
    min_permutation_p,
    seed_permutation,
    welch,
)
from rvpo_repro.analysis.stats import (
    _CHUNK_ELEMS,  # noqa: F401  (read by benchmarks/bench_stats.py)
    TestResult,
    cohens_d,
    cohens_dz,
    hedges_g,
    holm,
    paired_bootstrap,
    paired_permutation,
    paired_t,
    wilcoxon,
)

__all__ = [
    "TestResult",
    "cohens_d",
    "cohens_dz",
    "hedges_g",
    "hierarchical_bootstrap",
    "hierarchical_mean_ci",
    "holm",
    "mann_whitney",
    "min_permutation_p",
    "paired_bootstrap",
    "paired_permutation",
    "paired_t",
    "seed_permutation",
    "welch",
    "wilcoxon",
]
