"""Estimator faults: one-line slips in the aggregators and the leaderboard's estimators that once
passed every test. Each expected value is worked out here by hand or with numpy, never by calling
the code under test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rvpo_repro.aggregators import get_aggregator
from rvpo_repro.aggregators.conflict import conflict_keep
from rvpo_repro.analysis.leaderboard import ALL, leaderboard
from rvpo_repro.analysis.stats import intervals

pytestmark = pytest.mark.faults
NAN = math.nan


def _hand_zscores(x: np.ndarray, g: int, eps: float) -> np.ndarray:
    """Per-channel group z-scores, Bessel std, NaN where absent (numpy, nan-aware)."""
    z = np.full_like(x, np.nan)
    for start in range(0, len(x), g):
        grp = x[start : start + g]
        for j in range(x.shape[1]):
            col = grp[:, j]
            ok = ~np.isnan(col)
            if ok.sum() > 1:
                z[start : start + g, j][ok] = (col[ok] - col[ok].mean()) / (col[ok].std(ddof=1) + eps)
    return z


def test_saw_weights_count_only_the_channels_present_in_the_batch():
    """K' in K' cv_j / sum cv is the number of channels with a CV: a channel absent everywhere
    (a judge that never answered it) takes no share, and the others are not scaled up by K / K'."""
    rows = np.array(
        [[1.0, 0.0, NAN], [0.0, 1.0, NAN], [1.0, 1.0, NAN], [0.5, 0.0, NAN],
         [0.0, 0.5, NAN], [1.0, 0.0, NAN], [0.5, 1.0, NAN], [0.0, 0.0, NAN]]
    )  # fmt: skip
    eps = 1e-4
    agg = get_aggregator("saw", whiten="none", eps=eps)
    got = agg(torch.tensor(rows, dtype=torch.float64), num_generations=4).numpy()

    present = rows[:, :2]  # the two channels that have rewards
    cv = present.std(0, ddof=1) / (np.abs(present.mean(0)) + 1e-8)
    c = 2 * cv / (cv.sum() + 1e-8)  # K' = 2 channels with a CV, not K = 3
    z = _hand_zscores(present, 4, eps)
    expected = (z * c).sum(1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_gd2po_snr_threshold_is_strict_at_tau():
    """A rollout is dropped when its agreement ratio is BELOW tau: at tau = 0 a perfectly balanced
    conflict (ratio exactly 0) is kept; a rollout without conflict is kept whatever tau."""
    z = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-0.5, 0.5], [2.0, 0.0]], dtype=torch.float64)
    w = torch.ones(2, dtype=torch.float64)
    valid = torch.ones(4, dtype=torch.bool)
    keep, share = conflict_keep(z, w, valid, num_generations=4, mode="snr", tau=0.0)
    assert keep.tolist() == [True, True, True, True]  # ratio 0 is not < 0
    assert share.tolist() == [1.0] * 4
    keep, share = conflict_keep(z, w, valid, num_generations=4, mode="snr", tau=0.5)
    assert keep.tolist() == [False, True, False, True]  # the two balanced conflicts (ratio 0 < 0.5)
    assert share.tolist() == [0.5] * 4


def test_constrained_grpo_multiplier_moves_when_one_verdict_is_missing():
    """One missing verdict (NaN) in a constraint's column leaves the other rollouts' violation rate:
    lambda_k <- max(0, lambda_k + lr (1 - nanmean_k - threshold)), not frozen at its old value."""
    agg = get_aggregator("constrained_grpo", lambda_init=1.0, lagrange_lr=0.5, threshold=0.1)
    r = torch.tensor([[0.3, 1.0, 0.0], [0.7, NAN, 0.0], [0.1, 0.0, 1.0], [0.9, 0.0, NAN]])
    agg.update(r)
    c1 = 1.0 - (1.0 + 0.0 + 0.0) / 3  # channel 1: two of three present verdicts are violations
    c2 = 1.0 - (0.0 + 0.0 + 1.0) / 3
    expected = [1.0, max(0.0, 1.0 + 0.5 * (c1 - 0.1)), max(0.0, 1.0 + 0.5 * (c2 - 0.1))]
    assert agg.multipliers == pytest.approx(expected)
    assert agg.multipliers[1] != 1.0 and agg.multipliers[2] != 1.0


def _hand_iqm(values: np.ndarray) -> float:
    """The interquartile mean: sort, cut floor(n / 4) entries at each end, average the rest."""
    v = np.sort(values.ravel())
    cut = len(v) // 4
    return float(v[cut : len(v) - cut].mean())


def test_bootstrapped_iqm_trims_a_quarter_at_each_end():
    """The bootstrap's IQM (the stacked path) cuts 25% at each end: with 8 entries, 2 (a 20% cut
    would take 1). Skewed values, so the two cuts give different means."""
    x = np.array([[0.0], [0.1], [0.15], [0.2], [0.4], [0.45], [0.9], [1.0]])
    stack = np.stack([x, x[::-1] ** 2])
    np.testing.assert_allclose(intervals.iqm(stack), [_hand_iqm(stack[0]), _hand_iqm(stack[1])])
    # the CI: the same resamples drawn with numpy, each reduced by hand
    n_boot, seed = 300, 3
    idx = np.random.default_rng(seed).integers(0, 8, size=(n_boot, 8, 1))
    boots = [_hand_iqm(x[idx[b, :, 0], 0]) for b in range(n_boot)]
    expected = (_hand_iqm(x), *np.quantile(boots, [0.025, 0.975]))
    assert intervals.stratified_bootstrap_ci(x, intervals.iqm, n_boot=n_boot, seed=seed) == pytest.approx(
        expected
    )


def test_leaderboard_channel_over_tasks_is_the_mean_of_the_task_means():
    rows = []
    for task, rates in (("a", [0.2, 0.4]), ("b", [0.9, 0.7, 0.8])):
        for seed, rate in enumerate(rates):
            rows.append({"task": task, "method": "gdpo", "aggregator": "gdpo", "seed": seed, "metric": "m",
                         "score": 0.5, "rewards/digit": rate})  # fmt: skip
    tab = leaderboard(pd.DataFrame(rows))
    by_scope = tab.set_index("task")["channel/digit"]
    assert by_scope["a"] == pytest.approx(0.3) and by_scope["b"] == pytest.approx(0.8)
    assert by_scope[ALL] == pytest.approx((0.3 + 0.8) / 2)  # not the best task's 0.8
