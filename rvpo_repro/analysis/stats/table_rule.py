"""The choice of test for a results table: which CI and which test each row gets, by the number of
seeds, and the Holm adjustment over the table's family of p-values (`holm`).

Rule (stated in every table's preamble, `RULE`):
- Fewer than `HIER_MIN_SEEDS` (5) seeds on either side: the headline test is seed-level, Welch's t
  over per-seed values (each seed's final metric), with the exact permutation test over seeds
  beside it (its smallest attainable p shown). With 3 seeds the seeds-then-examples bootstrap has
  only 10 distinct seed resamples, so its p-value is not trusted as the headline. The
  example-level bootstrap (examples resampled, seeds fixed) is shown as secondary, labelled
  "conditional on these seeds": it says whether these trained models differ on a new test set,
  not whether the methods do.
- 5 or more seeds on each side, with per-example scores: the hierarchical bootstrap (resample
  seeds, then examples) is the headline; Welch over seeds is shown beside it.
- Mean CIs follow the same rule: t-interval over seed means below 5 seeds, hierarchical
  bootstrap at 5 or more; one seed with per-example scores: example bootstrap of that seed.
- Derived rows (`*/bottleneck`: the lowest normalised channel mean, no per-example column) use
  the test of the row they equal: when every run's bottleneck is the same channel, its p-value is
  that channel's (affine maps keep p) and its CI the channel's, rescaled; otherwise the seed-level
  test, with a note.
- Bounded metrics (rates in [0, 1], or a declared `low`/`high` in the record's metric entry): a
  percentile bootstrap of means stays inside the bounds by construction; a t-interval is clipped
  to them and says so in `CI method`.
Per-example pairing reads each record's `example_columns` (metric -> examples.jsonl column); a
metric without one has no per-example test.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rvpo_repro.analysis.runs import Runs, examples
from rvpo_repro.analysis.stats.seeds import (
    hierarchical_bootstrap,
    hierarchical_mean_ci,
    seed_permutation,
    welch,
)

HIER_MIN_SEEDS = 5
N_RESAMPLES = 10_000
RULE = (
    f"Statistics rule: with fewer than {HIER_MIN_SEEDS} seeds per method the headline test is Welch's t over "
    "per-seed values (the exact permutation test over seeds is shown beside it with its smallest "
    "attainable p), and the example-level bootstrap is secondary, conditional on these seeds; with "
    f"{HIER_MIN_SEEDS}+ seeds and per-example scores the hierarchical bootstrap (seeds, then examples) is "
    "the headline. Bottleneck rows take the test of the channel row they equal. CIs of bounded "
    "metrics stay in their bounds (t-intervals clipped, as `CI method` says)."
)
RATE_PATTERNS = ("*/all_constraints", "*/bottleneck", "gpqa/*", "bfcl/*", "healthbench/score",
                 "healthbench/axis:*", "healthbench/theme:*", "healthbench/level:*", "healthbench/cluster:*")  # fmt: skip


def bounds(metric: str, entries: list[dict]) -> tuple[float, float] | None:
    """(low, high) of a metric: declared in its record entries (`low`/`high`), or [0, 1] for rates."""
    for e in entries:
        if e.get("low") is not None and e.get("high") is not None:
            return float(e["low"]), float(e["high"])
    if any(fnmatch.fnmatchcase(metric, p) for p in RATE_PATTERNS):
        return 0.0, 1.0
    return None


@functools.lru_cache(maxsize=1024)
def _examples(run_dir: str) -> pd.DataFrame:
    return examples(run_dir)


def example_matrix(runs: Runs, run_dirs: list[str], metric: str) -> tuple[np.ndarray | None, str]:
    """(n_runs, n_shared_examples) per-example scores of `metric` from each record's declared
    column, or (None, why). Examples not scored by every run (or NaN in one) are dropped."""
    series = []
    for d in run_dirs:
        column = runs.records[d].example_columns.get(metric)
        if column is None:
            return None, "no per-example column recorded"
        try:
            ex = _examples(d)
        except (FileNotFoundError, KeyError, ValueError):
            return None, "no per-example scores (examples.jsonl)"
        if column not in ex:
            return None, f"examples.jsonl of {runs.records[d].run_id} lacks column {column!r}"
        series.append(pd.to_numeric(ex[column], errors="coerce").astype(float))
    shared = functools.reduce(lambda a, b: a.intersection(b), (s.index for s in series))
    x = (
        np.stack([s.reindex(shared).to_numpy() for s in series])
        if len(shared)
        else np.empty((len(series), 0))
    )
    x = x[:, ~np.isnan(x).any(axis=0)]
    return (x, "") if x.shape[1] > 1 else (None, "fewer than 2 examples shared by all runs")


def _clip(low: float, high: float, bnd, how: str) -> tuple[float, float, str]:
    if bnd is None or math.isnan(low) or (bnd[0] <= low and high <= bnd[1]):
        return low, high, how
    return max(low, bnd[0]), min(high, bnd[1]), f"{how}, clipped to [{bnd[0]:g}, {bnd[1]:g}]"


def mean_ci(values: np.ndarray, x: np.ndarray | None, bnd, seed: int) -> tuple[float, float, str]:
    """95% CI of a method's mean over seeds, by the rule of the module docstring."""
    n = len(values)
    if x is not None and n >= HIER_MIN_SEEDS:
        return (*hierarchical_mean_ci(x, N_RESAMPLES, seed), "hier. bootstrap")
    if n >= 2:
        half = sps.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
        return _clip(float(values.mean() - half), float(values.mean() + half), bnd, "t over seeds")
    if x is not None:
        return (*hierarchical_mean_ci(x, N_RESAMPLES, seed), "example bootstrap (1 seed)")
    return math.nan, math.nan, "none: one seed, no per-example scores"


def _p(r) -> float:
    return np.nan if r.p_value is None else float(r.p_value)


def compare(va: np.ndarray, vb: np.ndarray, x: np.ndarray | None, why: str, bnd, seed: int) -> dict:
    """Columns of one method-vs-baseline comparison. va, vb: per-seed values; x: per-example
    scores of a's runs stacked over b's (or None, why)."""
    na, nb = len(va), len(vb)
    with warnings.catch_warnings(record=True) as caught:  # scipy: near-identical per-seed values
        warnings.simplefilter("always", RuntimeWarning)
        w = welch(va, vb)
    perm = seed_permutation(va, vb, seed=seed)
    notes = [f"Welch: {str(caught[0].message).split('.')[0].lower()}"] if caught else []
    out = {"p_welch": _p(w), "p_perm": _p(perm), "perm_note": perm.note if perm.p_value is not None else ""}
    cond = (
        hierarchical_bootstrap(x[:na], x[na:], N_RESAMPLES, seed, resample_seeds=False)
        if x is not None
        else None
    )
    out["p_examples"] = np.nan if cond is None else _p(cond)
    if x is not None and min(na, nb) >= HIER_MIN_SEEDS:
        h = hierarchical_bootstrap(x[:na], x[na:], N_RESAMPLES, seed)
        test, res = "hier. bootstrap", h
    else:
        test, res = "Welch (seeds)", w
        if x is None:
            notes.append(why)
    notes.append(res.note)
    low, high = res.ci if res.ci is not None else (np.nan, np.nan)
    if bnd is not None:  # a difference of two bounded means lies within +-(high - low)
        span = bnd[1] - bnd[0]
        if not math.isnan(low) and (low < -span or high > span):
            low, high = max(low, -span), min(high, span)
            notes.append(f"Δ CI clipped to [-{span:g}, {span:g}]")
    out |= {"delta": res.statistic, "delta_ci_low": low, "delta_ci_high": high, "test": test, "p": _p(res)}
    return out | {"note": "; ".join(n for n in notes if n)}


def bottleneck_source(runs: Runs, run_dirs: list[str], metric: str) -> str | None:
    """The channel metric a derived `<eval>/bottleneck` row equals in every run (same eval prefix),
    or None when the runs' bottlenecks are different channels (or it is not a derived row)."""
    if not metric.endswith("/bottleneck"):
        return None
    channels = {runs.records[d].metrics[metric].get("channel") for d in run_dirs}
    if len(channels) != 1 or None in channels:
        return None
    source = metric.rsplit("/", 1)[0] + "/" + channels.pop()
    return source if source in runs.metrics else None


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
