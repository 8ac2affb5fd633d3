"""The methods beyond GRPO/GDPO/RVPO, each against a reference re-derived from its public code or
paper in plain loops; missing verdicts and saturated channels; limits and invariances."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rvpo_repro.aggregators import get_aggregator
from rvpo_repro.aggregators.tensor_ops import group_zscore

NAN = math.nan
NEW = ["mo_grpo", "saw", "gd2po", "mgda", "gapo", "constrained_grpo"]


def table(seed, B=4, G=4, K=3, nan_frac=0.15, binary=False):
    rng = np.random.default_rng(seed)
    r = rng.integers(0, 2, size=(B * G, K)).astype(float) if binary else rng.normal(size=(B * G, K))
    r[rng.random(r.shape) < nan_frac] = np.nan
    return torch.from_numpy(r)


# ------------------------------------------------------------------ plain re-derivations of upstream code


def verl_group_adv(scores, G, eps=1e-6):
    """verl's compute_grpo_outcome_advantage on sequence scores: (s - mean) / (std + eps), torch.std
    (Bessel) within each group of G."""
    out = []
    for b in range(len(scores) // G):
        g = scores[b * G : (b + 1) * G]
        m = sum(g) / G
        s = math.sqrt(sum((v - m) ** 2 for v in g) / (G - 1))
        out += [(v - m) / (s + eps) for v in g]
    return out


def verl_masked_whiten(values, lengths, keep=None):
    """verl's masked_whiten of a per-sequence value broadcast over its tokens (unbiased variance
    over the kept tokens, rsqrt(var + 1e-8)); dropped sequences get 0."""
    keep = keep or [True] * len(values)
    toks = [v for v, n, k in zip(values, lengths, keep, strict=True) if k for _ in range(n)]
    m = sum(toks) / len(toks)
    var = sum((t - m) ** 2 for t in toks) / (len(toks) - 1)
    return [(v - m) / math.sqrt(var + 1e-8) if k else 0.0 for v, k in zip(values, keep, strict=True)]


def gd2po_reference(r, G, lengths, mode, tau):
    """Qwen-Applications/GD2PO tool-calling ray_trainer.py: per-channel verl advantages, rollout
    advantages summed over tokens, the mixed-sign conflict mask (and SNR ratio), the group keep ratio
    scaling, masked whitening over kept tokens."""
    n, K = r.shape
    z = [verl_group_adv([r[i, j] for i in range(n)], G) for j in range(K)]
    roll = [[z[j][i] * lengths[i] for i in range(n)] for j in range(K)]  # summed over tokens
    keep = []
    for i in range(n):
        col = [roll[j][i] for j in range(K)]
        conflict = any(v > 1e-8 for v in col) and any(v < -1e-8 for v in col)
        if mode == "snr":
            ratio = sum(col) / (sum(abs(v) for v in col) + 1e-8)
            conflict = conflict and abs(ratio) < max(min(tau, 1.0), 0.0)
        keep.append(not conflict)
    share = [sum(keep[b * G : (b + 1) * G]) / G for b in range(n // G) for _ in range(G)]
    total = [sum(z[j][i] for j in range(K)) * share[i] for i in range(n)]
    return verl_masked_whiten(total, lengths, keep)


def saw_reference(r, G, lengths, offsets):
    """Zhaolutuan/SAW ray_trainer.py "gdpo-h": batch CV weights of the offset scores, times 2.0 (the
    number of channels) over their sum, on per-channel verl advantages, then masked whitening."""
    n, K = r.shape
    cv = []
    for j in range(K):
        s = [r[i, j] + offsets[j] for i in range(n)]
        m = sum(s) / n
        std = math.sqrt(sum((v - m) ** 2 for v in s) / (n - 1))
        cv.append(std / (abs(m) + 1e-8))
    w = [c / (sum(cv) + 1e-8) * K for c in cv]
    z = [verl_group_adv([r[i, j] for i in range(n)], G) for j in range(K)]
    return verl_masked_whiten([sum(w[j] * z[j][i] for j in range(K)) for i in range(n)], lengths)


def amo_min_norm(vecs):
    """Artessay/Amo _frank_wolfe_min_norm / _min_norm_two_vectors, in plain Python."""
    m = len(vecs)
    dot = [[sum(a * b for a, b in zip(u, v, strict=True)) for v in vecs] for u in vecs]
    if m == 1:
        return [1.0]
    if m == 2:
        den = dot[0][0] - 2 * dot[0][1] + dot[1][1]
        g = 0.5 if den <= 1e-12 else min(1.0, max(0.0, (dot[1][1] - dot[0][1]) / den))
        return [g, 1 - g]
    alpha = [1.0 / m] * m
    for _ in range(50):
        grad = [sum(dot[i][j] * alpha[j] for j in range(m)) for i in range(m)]
        t = grad.index(min(grad))
        d = [(1.0 if i == t else 0.0) - alpha[i] for i in range(m)]
        gd = [sum(dot[i][j] * d[j] for j in range(m)) for i in range(m)]
        dgd, agd = sum(d[i] * gd[i] for i in range(m)), sum(alpha[i] * gd[i] for i in range(m))
        step = 0.0 if dgd <= 1e-12 else min(1.0, max(0.0, -agd / dgd))
        alpha = [a + step * e for a, e in zip(alpha, d, strict=True)]
        if step < 1e-9:
            break
    return [a / sum(alpha) for a in alpha]


def amo_reference(r, G, lengths, gapo_p=None, weights=None):
    """Amo compute_mgda_advantage with equal-length rollouts (one token each: a = Z)."""
    n, K = r.shape
    a = [verl_group_adv([r[i, j] for i in range(n)], G) for j in range(K)]
    vecs = [list(v) for v in a]
    if gapo_p is not None:
        vecs = [[x / max(math.sqrt(sum(y * y for y in v)), 1e-12) ** gapo_p for x in v] for v in vecs]
    if weights is not None:
        vecs = [[x * w / sum(weights) for x in v] for v, w in zip(vecs, weights, strict=True)]
    alpha = amo_min_norm(vecs)
    return verl_masked_whiten([sum(alpha[j] * a[j][i] for j in range(K)) for i in range(n)], lengths)


# ------------------------------------------------------------------ parity with the public code


@pytest.mark.parametrize("mode", ["hard", "snr"])
@pytest.mark.parametrize("seed", range(4))
def test_gd2po_matches_its_public_code(mode, seed):
    r = table(seed, B=4, G=4, K=3, nan_frac=0.0, binary=seed % 2 == 0)
    r[0] = r[1]  # a tie: Z exactly 0 in no channel is fine, but mixed groups are the point
    lengths = np.random.default_rng(seed).integers(1, 9, size=16).tolist()
    agg = get_aggregator("gd2po", mode=mode, tau=0.8, eps=1e-6, whiten="token")
    got = agg(r, 4, lengths=torch.tensor(lengths))
    want = gd2po_reference(r.numpy(), 4, lengths, mode, 0.8)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    assert (got == 0).any() and (got != 0).any()  # something dropped, something kept


@pytest.mark.parametrize("seed", range(4))
def test_saw_matches_its_public_code(seed):
    r = table(seed, B=4, G=4, K=2, nan_frac=0.0)
    r[:, 0] = r[:, 0].clamp(-3, 3)  # ToolRL's correctness range, shifted +3 upstream
    r[:, 1] = r[:, 1].abs()
    lengths = np.random.default_rng(seed).integers(1, 9, size=16).tolist()
    got = get_aggregator("saw", offsets=[3.0, 0.0], eps=1e-6, whiten="token")(
        r, 4, lengths=torch.tensor(lengths)
    )
    np.testing.assert_allclose(got.numpy(), saw_reference(r.numpy(), 4, lengths, [3.0, 0.0]), atol=1e-5)


@pytest.mark.parametrize(("name", "p"), [("mgda", None), ("gapo", 1.0)])
@pytest.mark.parametrize("K", [1, 2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_mgda_and_gapo_match_amo(name, p, K, weighted):
    r = table(K, B=3, G=4, K=K, nan_frac=0.0)
    if K > 1:  # a constant group: channel 1's Z vector is shorter (GAPO rescales it), alpha not uniform
        r[:4, 1] = 0.5
    w = [1.0 + j for j in range(K)] if weighted else None
    got = get_aggregator(name, eps=1e-6)(r, 4, weights=w)
    np.testing.assert_allclose(got.numpy(), amo_reference(r.numpy(), 4, [1] * 12, p, w), atol=1e-5)


def test_mgda_takes_channel_weights_only_and_a_zero_weight_is_absence():
    r = table(1, K=3, nan_frac=0.0)
    with pytest.raises(ValueError, match=r"'mgda' takes \(3,\) channel weights only"):
        get_aggregator("mgda")(r, 4, weights=torch.ones(16, 3))
    with pytest.raises(ValueError, match="use_item_weights = true does not apply to 'gapo'"):
        get_aggregator("gapo", use_item_weights=True)
    dropped = r.clone()
    dropped[:, 1] = NAN
    torch.testing.assert_close(
        get_aggregator("mgda")(r, 4, weights=[1.0, 0.0, 2.0]),
        get_aggregator("mgda")(dropped, 4, weights=[1.0, 1.0, 2.0]),
    )


def test_mgda_of_one_channel_and_of_opposed_channels():
    r = table(2, K=1, nan_frac=0.0)
    torch.testing.assert_close(get_aggregator("mgda")(r, 4), get_aggregator("gdpo")(r, 4))
    # two channels in exact opposition: the min-norm point is 0 (alpha = 1/2 each): no direction
    both = torch.cat([r, -r], dim=1)
    assert torch.equal(get_aggregator("mgda")(both, 4), torch.zeros(16, dtype=r.dtype))


# ------------------------------------------------------------------ MO-GRPO, constrained GRPO


def test_mo_grpo_is_the_sum_of_group_zscores_without_whitening():
    r = table(3, K=4)
    z = group_zscore(r, 4)
    want = z.nansum(-1)
    got = get_aggregator("mo_grpo")(r, 4)
    torch.testing.assert_close(got, torch.where(r.isnan().all(-1), 0.0, want).to(r.dtype))
    # whitened, it is GDPO's sum
    torch.testing.assert_close(
        get_aggregator("mo_grpo", whiten="sequence")(r, 4), get_aggregator("gdpo")(r, 4)
    )


@pytest.mark.parametrize("name", ["mo_grpo", "saw", "gd2po", "mgda", "gapo"])
def test_a_channel_rescaled_or_shifted_changes_nothing(name):
    """Z is invariant to a positive affine map of a channel; SAW's CV is invariant to its scale."""
    r = table(4, K=3, nan_frac=0.0).abs() + 0.5
    moved = r.clone()
    moved[:, 1] *= 7.0
    if name != "saw":  # the CV depends on the level (std / |mean|): only the scale is free there
        moved[:, 2] = moved[:, 2] * 0.1 + 3.0
    agg = get_aggregator(name, eps=1e-12)
    torch.testing.assert_close(agg(moved, 4), agg(r, 4), atol=1e-6, rtol=0)


def test_constrained_grpo_scalarises_zscores_with_its_multipliers_and_steps_them():
    r = table(5, K=3, nan_frac=0.0, binary=True)
    z = group_zscore(r, 4)
    agg = get_aggregator("constrained_grpo", lambda_init=0.5, lagrange_lr=0.2, threshold=0.1)
    torch.testing.assert_close(agg(r, 4), z[:, 0] + 0.5 * (z[:, 1] + z[:, 2]))
    violation = 1.0 - r.mean(0)
    agg.update(r)
    want = [1.0] + [max(0.0, 0.5 + 0.2 * (float(v) - 0.1)) for v in violation[1:]]
    np.testing.assert_allclose(agg.multipliers, want)
    torch.testing.assert_close(agg(r, 4), z[:, 0] + want[1] * z[:, 1] + want[2] * z[:, 2])
    met = torch.ones_like(r)  # every constraint met: the multipliers fall to 0, not below
    for _ in range(100):
        agg.update(met)
    assert agg.multipliers == [1.0, 0.0, 0.0]
    torch.testing.assert_close(agg(r, 4), z[:, 0])
    with pytest.raises(ValueError, match="objective = 3 but the rewards have 3 channels"):
        get_aggregator("constrained_grpo", objective=3)(r, 4)
    with pytest.raises(ValueError, match=r"^lagrange_lr=-1.0: must be in \[0, inf\)$"):
        get_aggregator("constrained_grpo", lagrange_lr=-1.0)


# ------------------------------------------------------------------ limits shared with GDPO


def test_gd2po_without_conflicts_is_gdpo():
    r = table(6, K=3)
    gdpo = get_aggregator("gdpo")(r, 4)
    torch.testing.assert_close(get_aggregator("gd2po", mode="snr", tau=0.0)(r, 4), gdpo)  # nothing is weak
    one = r[:, :1].clone()
    torch.testing.assert_close(get_aggregator("gd2po", mode="hard")(one, 4), get_aggregator("gdpo")(one, 4))
    with pytest.raises(ValueError, match=r"mode = 'soft'; expected one of \['hard', 'snr'\]"):
        get_aggregator("gd2po", mode="soft")


def test_saw_with_equal_cvs_is_gdpo_and_refuses_bad_offsets():
    r = table(7, K=2, nan_frac=0.0).abs() + 0.1
    same = torch.cat([r[:, :1], r[:, :1] * 3.0], dim=1)  # equal CVs: weights 1, 1
    torch.testing.assert_close(get_aggregator("saw")(same, 4), get_aggregator("gdpo")(same, 4))
    with pytest.raises(ValueError, match="offsets has 3 entries; expected 2, one per channel"):
        get_aggregator("saw", offsets=[0.0, 1.0, 2.0])(r, 4)


@pytest.mark.parametrize("name", NEW)
def test_per_rollout_weights_and_zero_weights(name):
    """(N, K) weights equal to a repeated (K,) row give the (K,) result; a zero weight is absence."""
    r = table(8, K=3, nan_frac=0.0)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=r.dtype)
    agg = get_aggregator(name)
    if name in ("mgda", "gapo"):
        return  # (K,) only: tested above
    torch.testing.assert_close(agg(r, 4, weights=w.expand(16, 3).clone()), agg(r, 4, weights=w))
    if name == "saw":
        return  # the CV weights come from the batch's rewards, which a zero weight does not remove
    zero = w.clone()
    zero[1] = 0.0
    dropped = r.clone()
    dropped[:, 1] = NAN
    torch.testing.assert_close(agg(r, 4, weights=zero), agg(dropped, 4, weights=w))


# ------------------------------------------------------------------ a missing verdict; saturated items


def test_a_missing_verdict_is_absent_for_grpo_not_a_failed_item():
    r = torch.tensor([[1.0, 1.0], [1.0, NAN], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    w = [5.0, 3.0]
    zeroed = r.nan_to_num(0.0)
    grpo = get_aggregator("grpo")
    assert not torch.allclose(grpo(r, 4, weights=w), grpo(zeroed, 4, weights=w))
    # renormalised over its graded items: the missing item counts as the row's mean (here 1), so
    # row 1 totals 8, as if it had both verdicts at its graded rate
    imputed = r.nan_to_num(1.0)
    torch.testing.assert_close(grpo(r, 4, weights=w), grpo(imputed, 4, weights=w), rtol=0, atol=1e-12)
    # TRL's nansum, kept as an option: the missing verdict is a failed item
    nansum = get_aggregator("grpo", missing="nansum")
    torch.testing.assert_close(nansum(r, 4, weights=w), grpo(zeroed, 4, weights=w), rtol=0, atol=0)
    for name in ("dr_grpo",):
        agg = get_aggregator(name)
        torch.testing.assert_close(agg(r, 4, weights=w), agg(imputed, 4, weights=w), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"missing = 'zero'; expected one of \['renormalise', 'nansum'\]"):
        get_aggregator("grpo", missing="zero")


def test_without_missing_verdicts_the_rule_changes_no_bit():
    """Rubric padding (a channel absent from a whole group) is not a missing verdict: both rules
    give the same bits, so runs without missing verdicts (the toy task) are unchanged."""
    r = table(9, K=5, nan_frac=0.0)
    r[4:8, 3:] = NAN  # prompt 1 has a 3-item rubric
    w = torch.rand(16, 5, dtype=r.dtype, generator=torch.Generator().manual_seed(0))
    for scale in ("group", "batch", "none"):
        a = get_aggregator("grpo", scale=scale)(r, 4, weights=w)
        b = get_aggregator("grpo", scale=scale, missing="nansum")(r, 4, weights=w)
        assert torch.equal(a, b)
    r32 = r.float()
    assert torch.equal(get_aggregator("grpo")(r32, 4), get_aggregator("grpo", missing="nansum")(r32, 4))


@pytest.mark.parametrize("name", ["rvpo", "hard_min", "variance_penalty", "gdpo"])
def test_saturated_channels_are_kept_by_default_and_dropped_on_request(name):
    r = table(10, K=4, nan_frac=0.0, binary=True)
    r[:4, 1] = 1.0  # every rollout of prompt 0 met item 1
    r[4:8, 2] = 0.0  # none of prompt 1 met item 2
    options = {"reduce": "mean"} if name == "gdpo" else {}
    keep = get_aggregator(name, **options)
    drop = get_aggregator(name, saturated="drop", **options)
    assert torch.equal(keep(r, 4), get_aggregator(name, saturated="keep", **options)(r, 4))
    # drop = the saturated items absent for their group (its other groups untouched)
    absent = r.clone()
    absent[:4, 1] = NAN
    absent[4:8, 2] = NAN
    saturated = (r.reshape(4, 4, 4).amax(1) == r.reshape(4, 4, 4).amin(1)).repeat_interleave(4, 0)
    absent[saturated] = NAN
    torch.testing.assert_close(drop(r, 4), keep(absent, 4))
    assert not torch.allclose(drop(r, 4), keep(r, 4))
    # a sum does not see a Z of 0
    torch.testing.assert_close(get_aggregator("gdpo", saturated="drop")(r, 4), get_aggregator("gdpo")(r, 4))
    with pytest.raises(ValueError, match=r"saturated = 'skip'; expected one of \['keep', 'drop'\]"):
        get_aggregator(name, saturated="skip")


def test_a_fully_saturated_group_gets_no_advantage_when_dropped():
    r = table(11, K=2, nan_frac=0.0, binary=True)
    r[:4] = 1.0
    got = get_aggregator("rvpo", saturated="drop")(r, 4)
    assert torch.equal(got[:4], torch.zeros(4, dtype=r.dtype))


@pytest.mark.parametrize("name", NEW)
def test_channel_weights_are_shares_of_the_present_channels(name):
    r = table(12, K=3)
    cw = get_aggregator(name).channel_weights(r, 4)
    if cw is None:
        assert name in ("mo_grpo", "gd2po")
        return
    assert cw.shape == r.shape and (cw >= 0).all()
    scorable = ~group_zscore(r, 4).isnan().all(-1)
    torch.testing.assert_close(cw.sum(-1)[scorable], torch.ones(int(scorable.sum()), dtype=r.dtype))


FAMILIES = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize(
    ("override", "name"),
    [(f"experiment={f}", NEW[i % len(NEW)]) for i, f in enumerate(FAMILIES)]
    + [("task=custom", NEW[(len(FAMILIES) + 1) % len(NEW)])],
)
def test_the_new_methods_compose_in_every_experiment_family_and_in_the_custom_task(override, name):
    """Each family and task=custom takes aggregator=<name> (each new method in at least one)."""
    from rvpo_repro.aggregators import aggregator_from_config
    from rvpo_repro.config import compose

    assert len(FAMILIES) + 1 >= len(NEW)
    assert aggregator_from_config(compose([override, f"aggregator={name}"]).aggregator).name == name
