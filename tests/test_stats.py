"""Tests for rvpo_repro.analysis.stats (paired, seeds, table_rule.holm): agreement with scipy, textbook Holm,
degenerate inputs, example ids."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from rvpo_repro.analysis.stats.paired import (
    cohens_dz,
    paired_bootstrap,
    paired_permutation,
    paired_t,
    wilcoxon,
)
from rvpo_repro.analysis.stats.seeds import cohens_d, hedges_g, hierarchical_bootstrap, mann_whitney, welch
from rvpo_repro.analysis.stats.table_rule import holm

B = 10_000  # resamples for the Monte-Carlo comparisons with scipy


def mean_diff(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


def mc_tol(p: float, n_resamples: int = B) -> float:
    """Five standard errors of the difference of two independent Monte-Carlo p estimates, plus slack
    for scipy's doubling of the add-one one-sided p-values (2/B)."""
    return 5 * math.sqrt(2 * max(p * (1 - p), 0.01) / n_resamples) + 3 / n_resamples


@pytest.fixture(scope="module")
def pair():
    """Two runs on 80 examples with a small effect (p near 0.05, where Monte-Carlo error matters)."""
    rng = np.random.default_rng(2)  # t-test p = 0.048 for this draw
    a = rng.normal(size=80)
    return a, a - rng.normal(0.22, 1.0, 80)


# ------------------------------------------------------------------ against scipy
def test_bootstrap_ci_and_p_match_scipy(pair):
    a, b = pair
    ours = paired_bootstrap(a, b, n_resamples=B, seed=1)
    ref = sps.bootstrap((a, b), mean_diff, paired=True, method="percentile", n_resamples=B, rng=2)
    se = np.std(a - b, ddof=1) / math.sqrt(a.size)
    assert ours.ci[0] == pytest.approx(ref.confidence_interval.low, abs=0.15 * se)
    assert ours.ci[1] == pytest.approx(ref.confidence_interval.high, abs=0.15 * se)
    # scipy gives no bootstrap p: apply the documented rule to scipy's bootstrap distribution
    dist = ref.bootstrap_distribution
    p_ref = min(1.0, 2 * (1 + min((dist <= 0).sum(), (dist >= 0).sum())) / (1 + B))
    assert ours.p_value == pytest.approx(p_ref, abs=mc_tol(p_ref))
    assert 0.001 < ours.p_value < 0.5  # the comparison is informative, not two zeros
    assert ours.statistic == pytest.approx(np.mean(a - b))
    assert (ours.n, ours.n_dropped, ours.n_resamples, ours.test) == (80, 0, B, "bootstrap")


def test_bootstrap_p_agrees_with_its_ci():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.1, 0.25, 0.5):
        a = rng.normal(size=120)
        r = paired_bootstrap(a, a - rng.normal(shift, 1, 120), n_resamples=4000, seed=0)
        if r.p_value < 0.04:
            assert not r.ci[0] <= 0 <= r.ci[1]
        if r.p_value > 0.06:
            assert r.ci[0] <= 0 <= r.ci[1]


def test_bootstrap_p_never_reads_zero():
    """Every resampled difference above 0: the add-one rule gives the smallest p, 2 / (1 + B), not 0."""
    a = np.linspace(0.0, 1.0, 30)
    b = a - 1 - 0.1 * np.sin(np.arange(30))
    assert paired_bootstrap(a, b, n_resamples=999, seed=0).p_value == 2 / 1000
    h = hierarchical_bootstrap([a + 1, a + 1.1], [a, a + 0.05], n_resamples=999, seed=0)
    assert h.p_value == 2 / 1000


def test_permutation_p_matches_scipy_randomised(pair):
    a, b = pair
    ours = paired_permutation(a, b, n_resamples=B, seed=1)
    ref = sps.permutation_test((a, b), mean_diff, permutation_type="samples", n_resamples=B, rng=2)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=mc_tol(ref.pvalue))
    assert 0.001 < ours.p_value < 0.5
    assert ours.note == "" and ours.n_resamples == B and ours.ci is None


@pytest.mark.parametrize("kind", ["normal", "binary"])
def test_permutation_exact_equals_scipy(kind):
    rng = np.random.default_rng(11)
    if kind == "normal":
        a, b = rng.normal(size=11), rng.normal(0.5, 1, 11)
    else:  # 0/1 correctness: many tied |T*|, where a rounding slip would change the count
        a, b = rng.binomial(1, 0.7, 12).astype(float), rng.binomial(1, 0.4, 12).astype(float)
    ours = paired_permutation(a, b, n_resamples=B)
    ref = sps.permutation_test((a, b), mean_diff, permutation_type="samples", n_resamples=B)
    assert ours.note.startswith("exact") and ours.n_resamples == 2**a.size
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_permutation_exact_by_hand():
    # d = (1, 2, 3): the 8 signed sums are +-6, +-4, +-2, 0, 0; |T*| >= |T_obs| = 2 for +-6 only
    r = paired_permutation([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], n_resamples=8)
    assert r.p_value == pytest.approx(2 / 8)
    assert r.statistic == pytest.approx(2.0)


def test_wilcoxon_equals_scipy():
    rng = np.random.default_rng(5)
    a = np.round(rng.normal(size=40), 1)
    b = np.round(a + rng.normal(0.3, 1, 40), 1)
    b[:4] = a[:4]  # zero differences
    for method in ("auto", "approx"):
        ours, ref = wilcoxon(a, b, method=method), sps.wilcoxon(a, b, method=method)
        assert (ours.p_value, ours.test_statistic) == (ref.pvalue, ref.statistic)
    ours, zeros = wilcoxon(a, b), int(np.sum(a == b))
    assert zeros >= 4 and f"{zeros} zero differences" in ours.note and ours.n == 40
    small = wilcoxon(a[4:14], b[4:14])  # exact distribution branch
    assert small.p_value == sps.wilcoxon(a[4:14], b[4:14]).pvalue


def test_paired_t_equals_scipy(pair):
    a, b = pair
    ours, ref = paired_t(a, b, confidence=0.9), sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.9)
    assert (ours.p_value, ours.test_statistic, ours.df) == (ref.pvalue, ref.statistic, ref.df)
    assert ours.ci == (ci.low, ci.high) and ours.confidence == 0.9
    assert ours.effect_size == pytest.approx(np.mean(a - b) / np.std(a - b, ddof=1))


def test_welch_and_mann_whitney_equal_scipy():
    a, b = np.array([0.61, 0.58, 0.66, 0.63]), np.array([0.55, 0.57, 0.52, 0.59, 0.50])
    ours, ref = welch(a, b), sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (ours.p_value, ours.test_statistic, ours.df, ours.ci) == (
        ref.pvalue,
        ref.statistic,
        ref.df,
        (ci.low, ci.high),
    )
    assert ours.statistic == pytest.approx(a.mean() - b.mean())
    assert (ours.n, ours.n_b, ours.effect_name) == (4, 5, "hedges_g")
    mw, ref = mann_whitney(a, b), sps.mannwhitneyu(a, b, alternative="two-sided")
    assert (mw.p_value, mw.test_statistic) == (ref.pvalue, ref.statistic)
    assert mw.effect_size == pytest.approx(2 * ref.statistic / 20 - 1)


def test_effect_sizes_by_formula():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 5.0])
    pooled = math.sqrt((np.var(a, ddof=1) * 3 + np.var(b, ddof=1) * 2) / 5)
    d = (a.mean() - b.mean()) / pooled
    assert cohens_d(a, b) == pytest.approx(d)
    # exact J(df=5) = G(2.5) / (sqrt(2.5) G(2)); the usual approximation is 1 - 3 / (4 df - 1)
    j = math.gamma(2.5) / (math.sqrt(2.5) * math.gamma(2.0))
    assert hedges_g(a, b) == pytest.approx(d * j)
    assert j == pytest.approx(1 - 3 / 19, abs=3e-3)
    with pytest.raises(ValueError, match="Hedges' g needs"):
        hedges_g([1.0, 2.0], [3.0])
    assert cohens_dz([1.0, 2.0, 4.0], [0.0, 0.0, 0.0]) == pytest.approx(7 / 3 / np.std([1, 2, 4], ddof=1))


# ------------------------------------------------------------------------- Holm
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x = 0.02, 0.03, 0.06, 0.04; the last is
        # raised to 0.06 to keep the order (monotonicity)
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        # 3 x 0.02 = 0.06; 2 x 0.6 = 1.2 capped at 1; 0.9 raised to 1
        ([0.6, 0.9, 0.02], [1.0, 1.0, 0.06]),
        ([0.02, 0.02], [0.04, 0.04]),  # ties
        ([0.3], [0.3]),
        ([], []),
    ],
)
def test_holm_textbook_values(raw, expected):
    for given_as in (raw, np.array(raw, dtype=float)):
        out = holm(given_as)
        assert isinstance(out, np.ndarray) and out.shape == (len(raw),)
        np.testing.assert_allclose(out, expected, rtol=1e-12)


def _holm_textbook(p):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=12))
def test_holm_properties(raw):
    out = holm(raw)
    np.testing.assert_allclose(out, _holm_textbook(raw), rtol=1e-12, atol=0)
    assert np.all(out >= np.asarray(raw)) and np.all(out <= 1)


@pytest.mark.parametrize("bad", [[0.1, None], [0.1, float("nan")], [1.5], [-0.1]])
def test_holm_rejects_untestable(bad):
    with pytest.raises(ValueError, match="bad at positions"):
        holm(bad)


# -------------------------------------------------------------------- determinism
@pytest.mark.parametrize(
    "run",
    [
        lambda a, b, seed: paired_bootstrap(a, b, n_resamples=2000, seed=seed),
        lambda a, b, seed: paired_permutation(a, b, n_resamples=2000, seed=seed),
        lambda a, b, seed: hierarchical_bootstrap([a, b, a + b], [b, a, a], n_resamples=2000, seed=seed),
    ],
    ids=["bootstrap", "permutation", "hierarchical"],
)
def test_same_seed_same_numbers_other_seed_other_draws(pair, run):
    a, b = pair
    assert run(a, b, 3) == run(a, b, 3)
    assert run(a, b, 3) == run(a, b, np.random.default_rng(3))
    first, other = run(a, b, 3), run(a, b, 4)
    assert (first.p_value, first.ci) != (other.p_value, other.ci)


def test_seed_none_is_refused(pair):
    with pytest.raises(ValueError, match="seed=None"):
        paired_bootstrap(*pair, seed=None)


# ---------------------------------------------------------------- degenerate inputs
def test_identical_runs():
    a = np.array([0.2, 0.9, 0.4, 0.4, 1.0])
    for fn in (paired_bootstrap, paired_t):
        r = fn(a, a.copy())
        assert (r.p_value, r.ci, r.statistic, r.effect_size) == (1.0, (0.0, 0.0), 0.0, 0.0)
    assert paired_permutation(a, a).p_value == 1.0
    r = wilcoxon(a, a)
    assert r.p_value == 1.0 and r.note
    r = welch([0.5, 0.5], [0.5, 0.5])
    assert (r.p_value, r.ci, r.effect_size) == (1.0, (0.0, 0.0), 0.0) and r.note


def test_constant_nonzero_difference():
    r = paired_t([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert (r.p_value, r.ci, r.test_statistic) == (0.0, (1.0, 1.0), math.inf) and "zero variance" in r.note
    # no spread makes the standardised effect infinite (or 0 for no difference), never NaN
    assert r.effect_size == math.inf
    assert cohens_dz([0.0, 1.0], [1.0, 2.0]) == -math.inf and hedges_g([2.0, 2.0], [1.0, 1.0]) == math.inf


def test_one_seed_per_method_cannot_run():
    runs = [np.array([0.1, 0.5, 0.9])]
    for r in (
        welch([0.6], [0.5, 0.4]),
        mann_whitney([0.6], [0.5, 0.4]),
        hierarchical_bootstrap(runs, [np.array([0.2, 0.4, 0.6])] * 2),
    ):
        assert r.p_value is None and r.ci is None
        assert "at least 2 seeds" in r.note and "got 1 and 2" in r.note
        assert math.isfinite(r.statistic)


def test_single_pair_cannot_run():
    r = paired_bootstrap([1.0, np.nan], [0.0, 0.0])
    assert r.p_value is None and r.n == 1 and r.n_dropped == 1 and "at least 2" in r.note


def test_nan_pairs_dropped_and_counted(pair):
    a, b = pair[0].copy(), pair[1].copy()
    a[[0, 5]], b[[5, 9]] = np.nan, np.nan
    keep = np.ones(a.size, bool)
    keep[[0, 5, 9]] = False
    for fn in (paired_bootstrap, paired_permutation, paired_t, wilcoxon):
        r = fn(a, b)
        assert (r.n, r.n_dropped) == (77, 3)
        assert r == dataclasses.replace(fn(a[keep], b[keep]), n_dropped=3)
    r = welch([0.5, np.nan, 0.6, 0.7], [0.4, 0.3, np.nan])
    assert (r.n, r.n_b, r.n_dropped) == (3, 2, 2)


def test_all_nan_is_an_error():
    with pytest.raises(ValueError, match="no complete pairs"):
        paired_t([np.nan, 1.0], [0.0, np.nan])
    with pytest.raises(ValueError, match="no scores left"):
        welch([np.nan, np.nan], [0.1, 0.2])


def test_bad_shapes_and_parameters():
    with pytest.raises(ValueError, match=r"len\(a\)=5, len\(b\)=4"):
        paired_bootstrap(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="1-D"):
        paired_t(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(np.zeros(5), np.ones(5), confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_permutation(np.zeros(5), np.ones(5), n_resamples=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        paired_t([1.0, 2.0], [0.0, 0.5]).p_value = 0.0


# ----------------------------------------------------------------------- example ids
def test_series_are_aligned_by_example_id(pair):
    a, b = pair
    ids = [f"ex{i}" for i in range(a.size)]
    shuffled = np.random.default_rng(0).permutation(a.size)
    sa, sb = pd.Series(a, index=ids), pd.Series(b, index=ids).iloc[shuffled]
    for fn in (paired_bootstrap, paired_permutation, paired_t, wilcoxon):
        assert fn(sa, sb) == fn(a, b)
    assert paired_t(a, b[shuffled], ids_a=ids, ids_b=[ids[i] for i in shuffled]) == paired_t(a, b)


def test_mismatched_ids_name_the_missing_ones():
    sa = pd.Series([0.1, 0.2, 0.3], index=["q1", "q2", "q3"])
    sb = pd.Series([0.1, 0.2, 0.3], index=["q1", "q2", "q9"])
    with pytest.raises(
        ValueError, match=r"1 missing from b \(e\.g\. \['q3'\]\), 1 missing from a \(e\.g\. \['q9'\]\)"
    ):
        paired_t(sa, sb)
    with pytest.raises(ValueError, match="only one side"):
        paired_t(sa, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="duplicate example ids in b"):
        paired_t(sa, [0.1, 0.2, 0.3], ids_b=["q1", "q1", "q2"])
    with pytest.raises(ValueError, match="ids_a has 2 ids for 3 scores"):
        paired_t([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], ids_a=["q1", "q2"], ids_b=["q1", "q2", "q3"])


# -------------------------------------------------------------- hierarchical bootstrap
def _hier_reference(xa, xb, n_resamples, rng):
    """Plain index resampling: seeds per method, one example draw shared by every run."""
    e = xa.shape[1]
    out = np.empty(n_resamples)
    for r in range(n_resamples):
        ex = rng.integers(0, e, e)
        sa, sb = rng.integers(0, len(xa), len(xa)), rng.integers(0, len(xb), len(xb))
        out[r] = xa[sa][:, ex].mean() - xb[sb][:, ex].mean()
    return out


def test_hierarchical_bootstrap_matches_index_resampling():
    rng = np.random.default_rng(2)
    difficulty = rng.normal(size=60)  # shared by every run: the crossed design
    xa = np.array([difficulty + rng.normal(0.3 + 0.2 * s, 0.5, 60) for s in range(4)])
    xb = np.array([difficulty + rng.normal(0.1 * s, 0.5, 60) for s in range(3)])
    ours = hierarchical_bootstrap(list(xa), list(xb), n_resamples=4000, seed=0)
    dist = _hier_reference(xa, xb, 4000, np.random.default_rng(1))
    sd = dist.std()
    assert ours.statistic == pytest.approx(xa.mean() - xb.mean())
    assert ours.ci[0] == pytest.approx(np.quantile(dist, 0.025), abs=0.25 * sd)
    assert ours.ci[1] == pytest.approx(np.quantile(dist, 0.975), abs=0.25 * sd)
    assert (ours.n, ours.n_b, ours.effect_name) == (4, 3, "hedges_g")


def test_hierarchical_bootstrap_nan_examples_and_shapes():
    rng = np.random.default_rng(4)
    runs_a, runs_b = [rng.random(30) for _ in range(3)], [rng.random(30) for _ in range(2)]
    runs_a[1][[2, 7]] = np.nan
    runs_b[0][7] = np.nan
    r = hierarchical_bootstrap(runs_a, runs_b, n_resamples=500)
    assert r.n_dropped == 2 and np.isfinite(r.p_value)
    with pytest.raises(ValueError, match="lengths found: \\[29, 30\\]"):
        hierarchical_bootstrap([rng.random(30), rng.random(29)], runs_b)
    with pytest.raises(ValueError, match="runs_a score 30 examples, runs_b 20"):
        hierarchical_bootstrap(runs_a, [rng.random(20)] * 2)


def test_hierarchical_bootstrap_identical_methods():
    rng = np.random.default_rng(6)
    runs = [rng.random(50) for _ in range(3)]
    r = hierarchical_bootstrap(runs, [x.copy() for x in runs], n_resamples=2000)
    assert r.statistic == 0.0 and r.ci[0] < 0 < r.ci[1] and r.p_value > 0.9
