"""Aggregators: API and errors, edge cases, a loop reference for every method, SoftMin properties."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rvpo_repro.aggregators import aggregator_from_config, get_aggregator
from rvpo_repro.aggregators.base import AGGREGATORS, Aggregator, register
from rvpo_repro.aggregators.tensor_ops import (
    batch_whiten,
    group_zscore,
    risk_schedule,
    softmin,
    softmin_weights,
    weighted_mean_var,
    zscore_bound,
)

NAMES = ["grpo", "dr_grpo", "gdpo", "rvpo", "variance_penalty", "hard_min"]  # with a loop reference here
NEW = ["mo_grpo", "saw", "gd2po", "mgda", "gapo", "constrained_grpo"]  # tests/test_aggregators_methods.py
EPS = 1e-4
NAN = math.nan
FAST = settings(max_examples=40, deadline=None)

# ------------------------------------------------------------------ a plain-loop float64 reference


def _mean_std(vals):
    """Mean and Bessel std of a list (std 0 for fewer than two values)."""
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s


def _whiten(vals):
    """Entries None are left out and come back 0."""
    present = [v for v in vals if v is not None]
    if not present:
        return [0.0] * len(vals)
    m, s = _mean_std(present)
    return [0.0 if v is None else (v - m) / (s + EPS) for v in vals]


def _zscores(r, G):
    n, k = r.shape
    z = np.full((n, k), np.nan)
    for b in range(n // G):
        for j in range(k):
            rows = [i for i in range(b * G, (b + 1) * G) if not np.isnan(r[i, j])]
            if len(rows) > 1:  # a lone value has no group std: absent, as TRL's nanstd
                m, s = _mean_std([r[i, j] for i in rows])
                for i in rows:
                    z[i, j] = (r[i, j] - m) / (s + EPS)
    return z


def _row(z, w, fn):
    """Apply fn(values, weights) to each row's present positive-weight channels; None if none.
    w: (N, K) weights."""
    out = []
    for i in range(z.shape[0]):
        js = [j for j in range(z.shape[1]) if not np.isnan(z[i, j]) and w[i, j] > 0]
        out.append(fn([z[i, j] for j in js], [w[i, j] for j in js]) if js else None)
    return out


def _ref_softmin(vals, ws, k):
    if k == 0:
        return sum(w * v for v, w in zip(vals, ws, strict=True)) / sum(ws)
    if k == math.inf:
        return min(vals)
    lo = min(vals)  # shifted so that large k does not underflow
    return (
        lo - math.log(sum(w * math.exp(-k * (v - lo)) for v, w in zip(vals, ws, strict=True)) / sum(ws)) / k
    )


def _ref_meanvar(vals, ws, beta):
    m = sum(w * v for v, w in zip(vals, ws, strict=True)) / sum(ws)
    return m - beta * sum(w * (v - m) ** 2 for v, w in zip(vals, ws, strict=True)) / sum(ws)


def _graded_sum(r, w, i, G, missing):
    """Row i's weighted sum; "renormalise": times the weight of the channels graded anywhere in
    its group over the weight of those graded in row i (a missing verdict is absent)."""
    K = r.shape[1]
    own = [j for j in range(K) if not np.isnan(r[i, j])]
    total = sum(w[i, j] * r[i, j] for j in own)
    if missing == "nansum":
        return total
    group = range(i // G * G, (i // G + 1) * G)
    graded = [j for j in range(K) if any(not np.isnan(r[g, j]) for g in group)]
    w_row, w_group = sum(w[i, j] for j in own), sum(w[i, j] for j in graded)
    return total if w_row == 0 else total * w_group / w_row


def reference(name, r, G, w=None, k=1.0, beta=0.5, scale="group", missing="renormalise"):
    """Advantages (N,) of aggregator `name`, with loops over groups, rows and channels.
    w: None, (K,) or (N, K) weights."""
    n, K = r.shape
    w = np.broadcast_to(np.ones(K) if w is None else np.asarray(w, dtype=float), (n, K))
    if name in ("grpo", "dr_grpo"):
        total = [None if np.isnan(r[i]).all() else _graded_sum(r, w, i, G, missing) for i in range(n)]
        scale = "none" if name == "dr_grpo" else scale
        batch = [t for t in total if t is not None]
        batch_std = _mean_std(batch)[1] if batch else 0.0
        adv = []
        for i, t in enumerate(total):
            group = [u for u in total[i // G * G : (i // G + 1) * G] if u is not None]
            if t is None:
                adv.append(0.0)
                continue
            m, s = _mean_std(group)
            s = batch_std if scale == "batch" else s
            adv.append((t - m) if scale == "none" else (t - m) / (s + EPS))
        return np.array(adv)
    z = _zscores(r, G)
    if name == "gdpo":
        pre = [  # a row is scorable when it has any reward (TRL), even if none of its Z exists
            None
            if np.isnan(r[i]).all()
            else sum(w[i, j] * z[i, j] for j in range(K) if not np.isnan(z[i, j]))
            for i in range(n)
        ]
    elif name == "rvpo":
        pre = _row(z, w, lambda v, ws: _ref_softmin(v, ws, k))
    elif name == "hard_min":
        pre = _row(z, w, lambda v, ws: min(v))
    else:
        pre = _row(z, w, lambda v, ws: _ref_meanvar(v, ws, beta))
    return np.array(_whiten(pre))


def random_rewards(seed, B, G, K, nan_frac=0.3, discrete=False):
    """(B*G, K) float64 rewards with NaNs, all-NaN rows and per-group trailing-NaN channels."""
    rng = np.random.default_rng(seed)
    r = rng.choice([0.0, 0.5, 1.0], size=(B * G, K)) if discrete else rng.normal(size=(B * G, K))
    r[rng.random(r.shape) < nan_frac] = np.nan
    r[rng.random(B * G) < 0.1] = np.nan  # unscorable rows
    for b in range(B):  # rubric of its own length per prompt
        r[b * G : (b + 1) * G, rng.integers(1, K + 1) :] = np.nan
    return r


# ------------------------------------------------------------------ API, registry, errors


def test_registry_holds_every_method():
    assert set(NAMES + NEW) == set(AGGREGATORS)
    for name in NAMES + NEW:
        agg = get_aggregator(name)
        assert isinstance(agg, Aggregator) and agg.name == name


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match=r"unknown aggregator 'rvp0'.*'gdpo'.*'rvpo'"):
        get_aggregator("rvp0")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'rvpo' is already registered by RVPO"):

        @register("rvpo")
        @dataclass
        class Other(Aggregator):
            pass


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "grpo",
            {"risk": 2.0},
            r"\['risk'\] do not apply to aggregator 'grpo'; it accepts \['eps', 'weights', 'use_item_weights', 'missing', 'scale'\]",
        ),
        ("gdpo", {"beta": 1.0}, r"\['beta'\] do not apply to aggregator 'gdpo'"),
        ("dr_grpo", {"scale": "group"}, r"\['scale'\] do not apply to aggregator 'dr_grpo'"),
        ("hard_min", {"risk": 1.0}, r"\['risk'\] do not apply"),
        (
            "rvpo",
            {"schedule": "step"},
            r"schedule = 'step'; expected one of \['constant', 'linear', 'cosine'\]",
        ),
        ("rvpo", {"risk": 1.0, "schedule": "linear"}, r"takes risk_start and risk_end"),
        (
            "rvpo",
            {"risk_start": 0.5, "schedule": "linear"},
            r"takes risk_start and risk_end \(got \(0.5, None\)\)",
        ),
        (
            "rvpo",
            {"risk_start": 0.5, "risk_end": 2.0, "schedule": "constant"},
            r"risk_start, risk_end = \(0.5, 2.0\) need schedule 'linear' or 'cosine'",
        ),
        ("rvpo", {"risk_start": 0.5, "risk_end": math.inf}, r"expected finite ends"),
        (
            "grpo",
            {"scale": "group_std"},
            r"scale = 'group_std'; expected one of \['group', 'batch', 'none'\]",
        ),
        ("variance_penalty", {"beta": -0.1}, r"^beta=-0.1: must be in \[0, inf\)$"),
        ("variance_penalty", {"beta": math.inf}, r"^beta=inf: must be in \[0, inf\)$"),
        ("rvpo", {"risk": -1.0}, r"^risk=-1.0: must be >= 0$"),
        ("rvpo", {"risk": math.nan}, r"^risk=nan: must be >= 0$"),
        ("rvpo", {"risk_start": -0.5, "risk_end": 2.0}, r"^risk_start=-0.5: must be >= 0$"),
        ("gdpo", {"eps": 0.0}, r"^eps=0.0: must be > 0$"),
        ("gd2po", {"tau": math.nan}, r"^tau=nan: must be in \(-inf, inf\)$"),
        ("mgda", {"gapo_p": -1.0}, r"^gapo_p=-1.0: must be in \[0, inf\)$"),
        (
            "gdpo",
            {"weights": [1.0, -1.0]},
            r"weights \[1.0, -1.0\] are invalid; expected finite non-negative",
        ),
    ],
)
def test_bad_options_raise_naming_the_value(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_aggregator(name, **options)


def test_none_options_mean_default():
    unset = {
        f: None for f in ("scale", "risk", "risk_start", "risk_end", "schedule", "beta", "eps", "weights")
    }
    assert get_aggregator("grpo", **unset) == get_aggregator("grpo")
    assert get_aggregator("rvpo", **{**unset, "risk": 2.0}).risk == 2.0
    assert get_aggregator("rvpo", **unset).risk_at(0.7) == 1.0


def test_call_errors_name_value_and_expectation():
    agg = get_aggregator("rvpo")
    r = torch.zeros(6, 3)
    with pytest.raises(ValueError, match=r"N = 6 rows is not divisible by num_generations = 4"):
        agg(r, num_generations=4)
    with pytest.raises(
        ValueError, match=r"weights has shape \(2,\); expected \(3,\), one per channel, or \(6, 3\)"
    ):
        agg(r, 2, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"weights has shape \(2,\); expected \(3,\)"):
        get_aggregator("gdpo", weights=[1.0, 1.0])(r, 2)
    with pytest.raises(ValueError, match=r"weights \[1.0, -2.0, 0.0\] are invalid"):
        agg(r, 2, weights=torch.tensor([1.0, -2.0, 0.0]))
    with pytest.raises(ValueError, match=r"rewards has shape \(6,\); expected \(N, K\)"):
        agg(torch.zeros(6), 2)
    with pytest.raises(ValueError, match=r"num_generations = 0"):
        agg(r, 0)
    with pytest.raises(ValueError, match=r"progress = 1.5 is outside \[0, 1\]"):
        agg(r, 2, progress=1.5)
    with pytest.raises(ValueError, match=r"k = -1.0 is invalid"):
        softmin(r, -1.0)


@pytest.mark.parametrize(
    "option", sorted(f.stem for f in (Path(__file__).parents[1] / "conf" / "aggregator").glob("*.yaml"))
)
def test_every_config_file_builds_its_aggregator(option):
    from rvpo_repro.config import compose

    agg = aggregator_from_config(compose([f"aggregator={option}"]).aggregator)
    assert agg.name == {"rvpo_annealed": "rvpo", "rvpo_k5": "rvpo", "gdpo_mean": "gdpo"}.get(option, option)
    assert agg(torch.rand(8, 3), 4).shape == (8,)
    if option == "rvpo_annealed":
        assert (agg.schedule, agg.risk_at(0.0), agg.risk_at(1.0)) == ("linear", 0.5, 2.0)
    if option == "rvpo_k5":
        assert (agg.schedule, agg.risk) == ("constant", 5.0)
    if option.startswith("gdpo"):
        assert agg.reduce == ("mean" if option == "gdpo_mean" else "sum")


def test_aggregator_from_config_accepts_dataclass_and_dict():
    assert aggregator_from_config(AGGREGATORS["rvpo"].schema(risk=2.0)).risk == 2.0
    assert aggregator_from_config({"name": "variance_penalty", "beta": 0.25, "risk": None}).beta == 0.25
    with pytest.raises(ValueError, match="has no 'name'"):
        aggregator_from_config({"risk": 1.0})


# ------------------------------------------------------------------ every aggregator vs the loop reference


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    B=st.integers(1, 4),
    G=st.integers(1, 5),
    K=st.integers(1, 6),
    discrete=st.booleans(),
    weighted=st.booleans(),
)
def test_matches_loop_reference(name, seed, B, G, K, discrete, weighted):
    r = random_rewards(seed, B, G, K, discrete=discrete)
    w = np.random.default_rng(seed + 1).choice([0.0, 0.5, 1.0, 2.0], size=K) if weighted else None
    options = {"rvpo": {"risk": 1.5}, "variance_penalty": {"beta": 0.3}}.get(name, {})
    got = get_aggregator(name, **options)(torch.from_numpy(r), G, weights=w)
    ref = reference(name, r, G, w, k=1.5, beta=0.3)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("k", [0.0, 1e-3, 0.5, 2.0, 5.9, 20.0, 300.0, math.inf])
def test_rvpo_matches_reference_for_every_k(k):
    """Covers both SoftMin paths: unshifted for k * max|Z| small, shifted by the row min otherwise."""
    r = random_rewards(13, 8, 16, 17)
    got = get_aggregator("rvpo", risk=k)(torch.from_numpy(r), 16)
    np.testing.assert_allclose(got.numpy(), reference("rvpo", r, 16, k=k), atol=1e-8, rtol=1e-8)
    # float32, as in training: within float32 rounding of the float64 result
    got32 = get_aggregator("rvpo", risk=k)(torch.from_numpy(r).float(), 16)
    np.testing.assert_allclose(got32.numpy(), got.numpy(), atol=2e-6, rtol=0)


@FAST
@given(seed=st.integers(0, 2**32 - 1), G=st.integers(1, 16), scale=st.floats(1e-3, 1e3))
def test_zscores_never_exceed_the_samuelson_bound(seed, G, scale):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(3 * G, 4)) * scale
    r[rng.random(r.shape) < 0.3] = np.nan
    r[:G, 0] = 0.0
    r[:G, 0][rng.integers(G)] = scale  # one outlier: the extreme case
    z = group_zscore(torch.from_numpy(r), G)
    assert z.nan_to_num(0.0).abs().max() <= zscore_bound(G) * (1 + 1e-12)


@pytest.mark.parametrize("missing", ["renormalise", "nansum"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_scales_match_reference(scale, missing):
    r = random_rewards(7, 5, 4, 3)
    got = get_aggregator("grpo", scale=scale, missing=missing)(torch.from_numpy(r), 4)
    want = reference("grpo", r, 4, scale=scale, missing=missing)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


# ------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("name", NAMES + NEW)
def test_unscorable_rows_get_zero_and_leave_the_stats(name):
    """A row with every channel NaN gets 0 and the others are as if it were not in the batch."""
    r = torch.from_numpy(random_rewards(3, B=4, G=3, K=4, nan_frac=0.1))
    r[r.isnan().all(1)] = 1.0  # start from a batch without unscorable rows
    padded = torch.full((16, 4), NAN, dtype=r.dtype)  # each group of 3 gains a 4th row, all NaN
    padded.view(4, 4, 4)[:, :3] = r.view(4, 3, 4)
    agg = get_aggregator(name)
    got = agg(padded, 4).view(4, 4)
    assert torch.equal(got[:, 3], torch.zeros(4, dtype=r.dtype))
    torch.testing.assert_close(got[:, :3].reshape(-1), agg(r, 3), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", NAMES + NEW)
def test_dtype_shape_and_all_nan_batch(name):
    agg = get_aggregator(name)
    for dtype in (torch.float32, torch.float64):
        out = agg(torch.rand(12, 5, dtype=dtype), 4)
        assert out.dtype == dtype and out.shape == (12,) and torch.isfinite(out).all()
    assert torch.equal(agg(torch.full((4, 3), NAN), 2), torch.zeros(4))
    assert agg(torch.zeros(0, 3), 4).shape == (0,)


@pytest.mark.parametrize("name", NAMES + NEW)
def test_inputs_are_left_untouched_and_memory_layout_does_not_matter(name):
    """The hot paths work in place on their own temporaries, never on the caller's tensors."""
    r = torch.from_numpy(random_rewards(4, 4, 4, 6))
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5, 1.0], dtype=r.dtype)
    before, w_before = r.clone(), w.clone()
    agg = get_aggregator(name)
    out = agg(r, 4, weights=w)
    assert torch.equal(r.nan_to_num(-7.0), before.nan_to_num(-7.0)) and torch.equal(w, w_before)
    torch.testing.assert_close(agg(before.T.contiguous().T, 4, weights=w), out)  # column-major copy


@given(c=st.floats(-1e3, 1e3), G=st.integers(1, 16), seed=st.integers(0, 1000))
@example(c=0.7, G=8, seed=0)  # float32 sum / count of eight 0.7s is not 0.7: TRL's Z there is ~6e-4
@FAST
def test_constant_channel_has_zscore_exactly_zero(c, G, seed):
    x = torch.rand(2 * G, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(seed))
    x[:G, 1] = c  # constant within group 0
    x[0, 0] = NAN
    z = group_zscore(x, G)
    assert torch.equal(z[:G, 1], torch.zeros(G))
    assert z[0, 0].isnan() and torch.isfinite(z[1:, 1:]).all()
    assert z[1, 0].isnan() if G == 2 else torch.isfinite(z[1:, 0]).all()  # G = 2: row 1 is alone


def test_channel_present_in_one_row_of_its_group_is_dropped_for_that_group():
    """TRL's nanstd is NaN for a lone value: the channel is absent there, not a Z of 0 that counts."""
    x = torch.tensor([[1.0, 2.0], [NAN, 3.0], [0.5, 1.0], [NAN, 0.0]])
    assert group_zscore(x, 2)[:, 0].isnan().all()
    # Row 0 has channels (lone, 2.0 -> Z -0.7): the mean and the min see only the present Z.
    z1 = group_zscore(x, 2)[0, 1]
    torch.testing.assert_close(softmin(group_zscore(x, 2), 0.0)[0], z1)
    torch.testing.assert_close(softmin(group_zscore(x, 2), math.inf)[0], z1)
    # A row whose only reward is a lone value: RVPO has no channel (advantage 0, out of the
    # whitening); GDPO's sum keeps the row scorable with 0, as TRL.
    y = torch.tensor([[1.0, NAN], [NAN, 3.0], [0.5, 1.0], [0.2, 0.0]])
    assert get_aggregator("rvpo")(y, 2)[0] == 0.0
    np.testing.assert_allclose(
        get_aggregator("gdpo")(y, 2).numpy(), reference("gdpo", y.double().numpy(), 2), atol=1e-5
    )


@pytest.mark.parametrize("name", ["gdpo", "rvpo", "variance_penalty", "hard_min"])
def test_rubrics_of_different_lengths_aggregate_over_their_own_channels(name):
    """Prompt 0 has a 5-item rubric, prompt 1 a 17-item one: trailing NaN channels."""
    rng = np.random.default_rng(0)
    short, long = rng.random((4, 5)), rng.random((4, 17))
    r = torch.full((8, 17), NAN, dtype=torch.float64)
    r[:4, :5], r[4:] = torch.from_numpy(short), torch.from_numpy(long)
    z = group_zscore(r, 4)
    torch.testing.assert_close(z[:4, :5], group_zscore(torch.from_numpy(short), 4))
    assert z[:4, 5:].isnan().all()
    for k in (0.0, 1.0, math.inf):
        torch.testing.assert_close(softmin(z, k)[:4], softmin(z[:4, :5], k))
    got = get_aggregator(name)(r, 4)
    np.testing.assert_allclose(got.numpy(), reference(name, r.numpy(), 4), atol=1e-10)


def test_rvpo_limits_are_gdpo_mean_and_hard_min():
    r = torch.from_numpy(random_rewards(5, 6, 4, 5))
    torch.testing.assert_close(get_aggregator("rvpo", risk=math.inf)(r, 4), get_aggregator("hard_min")(r, 4))
    torch.testing.assert_close(
        get_aggregator("rvpo", risk=0.0)(r, 4), get_aggregator("variance_penalty", beta=0.0)(r, 4)
    )
    # Without NaN the channel mean is GDPO's sum / K; whitening undoes the 1/K up to its eps.
    full = torch.rand(16, 3, dtype=torch.float64)
    torch.testing.assert_close(
        get_aggregator("rvpo", risk=0.0)(full, 4), get_aggregator("gdpo")(full, 4), rtol=0, atol=1e-3
    )


def test_integer_weights_equal_duplicated_channels_and_zero_weight_equals_absent():
    r = torch.from_numpy(random_rewards(11, 4, 4, 3, nan_frac=0.2))
    dup = torch.cat([r, r[:, :1]], dim=1)  # channel 0 twice
    for name in ("rvpo", "variance_penalty", "hard_min"):
        agg = get_aggregator(name)
        torch.testing.assert_close(agg(r, 4, weights=[2.0, 1.0, 1.0]), agg(dup, 4))
        dropped = r.clone()
        dropped[:, 2] = NAN
        torch.testing.assert_close(agg(r, 4, weights=[1.0, 1.0, 0.0]), agg(dropped, 4))
        torch.testing.assert_close(agg(r, 4, weights=[3.0, 3.0, 3.0]), agg(r, 4))
    # weights held by the aggregator (from the config) apply when the call passes none
    torch.testing.assert_close(
        get_aggregator("gdpo", weights=[2.0, 0.5, 1.0])(r, 4), get_aggregator("gdpo")(r, 4, [2.0, 0.5, 1.0])
    )


# ------------------------------------------------------------------ SoftMin properties (pre-whitening)

ROWS = st.integers(0, 2**32 - 1).map(
    lambda seed: torch.from_numpy(np.random.default_rng(seed).normal(scale=2.0, size=(8, 6)))
)


def _with_nans(z, seed):
    z = z.clone()
    mask = torch.rand(z.shape, generator=torch.Generator().manual_seed(seed)) < 0.3
    mask[:, 0] = False  # every row keeps a channel
    z[mask] = NAN
    return z


def _stats(z):
    mean, var = weighted_mean_var(z)
    lo = z.nan_to_num(math.inf).amin(-1)
    spread = z.nan_to_num(-math.inf).amax(-1) - lo
    count = (~z.isnan()).sum(-1).to(z.dtype)
    return mean, var, lo, spread, count


@FAST
@given(z=ROWS, seed=st.integers(0, 1000), k=st.floats(1e-6, 1e-2))
def test_small_k_tends_to_the_channel_mean_and_k0_is_the_mean(z, seed, k):
    z = _with_nans(z, seed)
    mean, *_, spread, _ = _stats(z)
    assert torch.equal(softmin(z, 0.0), mean)
    torch.testing.assert_close(mean, z.nanmean(-1))
    assert ((softmin(z, k) - mean).abs() <= k * spread**2 / 2 + 1e-12).all()


@FAST
@given(z=ROWS, seed=st.integers(0, 1000), k=st.floats(10.0, 1e8))
def test_large_k_tends_to_the_min_and_inf_is_the_min(z, seed, k):
    z = _with_nans(z, seed)
    _, _, lo, _, count = _stats(z)
    assert torch.equal(softmin(z, math.inf), lo)
    a = softmin(z, k)
    assert (a >= lo - 1e-12).all() and (a <= lo + count.log() / k + 1e-12).all()


@FAST
@given(z=ROWS, seed=st.integers(0, 1000), k=st.floats(1e-4, 0.1))
def test_small_k_is_mean_minus_half_k_variance_to_second_order(z, seed, k):
    """Cumulant expansion: A = mean - (k/2) var + k^2 kappa_3(tilted)/6, |kappa_3| <= spread^3."""
    z = _with_nans(z, seed)
    mean, var, _, spread, _ = _stats(z)
    err = (softmin(z, k) - (mean - k / 2 * var)).abs()
    assert (err <= k**2 * spread**3 / 6 + 1e-12).all()
    # and the explicit variance penalty is exactly mean - beta var with beta = k/2
    pre = weighted_mean_var(z)
    torch.testing.assert_close(pre[0] - k / 2 * pre[1], mean - k / 2 * var)


@FAST
@given(
    z=ROWS,
    seed=st.integers(0, 1000),
    k=st.one_of(st.just(0.0), st.floats(1e-3, 1e3), st.just(math.inf)),
    j=st.integers(0, 5),
    delta=st.floats(0.0, 5.0),
)
def test_monotone_in_every_channel_and_never_above_the_mean(z, seed, k, j, delta):
    z = _with_nans(z, seed)
    up = z.clone()
    up[:, j] += delta
    a = softmin(z, k)
    assert (softmin(up, k) >= a - 1e-12).all()
    assert (a <= z.nanmean(-1) + 1e-12).all()


@FAST
@given(z=ROWS, seed=st.integers(0, 1000), k=st.floats(1e-3, 50.0), weighted=st.booleans())
def test_gradient_is_softmax_of_minus_k_z(z, seed, k, weighted):
    z = _with_nans(z, seed).requires_grad_()
    w = (
        torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + 0.1
        if weighted
        else None
    )
    softmin(z, k, w).sum().backward()
    zd = z.detach()
    logits = torch.where(zd.isnan(), -math.inf, -k * zd + (0.0 if w is None else w.log()))
    torch.testing.assert_close(z.grad, torch.softmax(logits, -1), atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(softmin_weights(zd, k, w), z.grad, atol=1e-12, rtol=1e-9)


def test_softmin_weights_of_the_aggregator():
    r = torch.tensor([[0.0, 1.0, NAN], [1.0, 0.0, NAN], [NAN, NAN, NAN], [0.0, 0.0, 2.0]])
    agg = get_aggregator("rvpo", risk_start=0.0, risk_end=4.0)
    p = agg.softmin_weights(r, 2, progress=0.5)  # k = 2
    z = group_zscore(r, 2)
    torch.testing.assert_close(p[:2, :2], torch.softmax(-2.0 * z[:2, :2], -1))
    assert torch.equal(p[:, 2][:2], torch.zeros(2)) and torch.equal(p[2], torch.zeros(3))
    # row 3's group-mate is unscorable: each of its channels is alone in the group, so none counts
    torch.testing.assert_close(p.sum(-1), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    ties = softmin_weights(torch.tensor([[0.0, 0.0, 1.0]]), math.inf)
    assert torch.equal(ties, torch.tensor([[0.5, 0.5, 0.0]]))


def test_softmin_is_stable_at_extreme_k_in_float32():
    z = torch.tensor([[-3.0, 0.0, 5.0], [40.0, -40.0, NAN]])
    for k in (1e-30, 1e-8, 1e3, 1e30, 1e39):
        a = softmin(z, k)
        assert torch.isfinite(a).all()
        assert (a >= z.nan_to_num(math.inf).amin(-1)).all() and (a <= z.nanmean(-1) + 1e-5).all()
    torch.testing.assert_close(softmin(z, 1e-8), z.nanmean(-1))
    torch.testing.assert_close(softmin(z, 1e30), torch.tensor([-3.0, -40.0]))


def test_batch_whiten_and_zscore_shapes():
    x = torch.tensor([1.0, NAN, 3.0, 5.0])
    torch.testing.assert_close(
        batch_whiten(x), torch.tensor([-2.0, 0.0, 0.0, 2.0]) / (2.0 + EPS)
    )  # Bessel std 2
    assert torch.equal(batch_whiten(torch.tensor([2.0, NAN])), torch.zeros(2))
    assert group_zscore(torch.rand(12, 5), 4).shape == (12, 5)


# ------------------------------------------------------------------ risk schedules


@pytest.mark.parametrize(("schedule", "mid"), [("constant", 0.5), ("linear", 1.25), ("cosine", 1.25)])
def test_schedule_endpoints_and_midpoint(schedule, mid):
    assert risk_schedule(0.0, 0.5, 2.0, schedule) == 0.5
    assert risk_schedule(1.0, 0.5, 2.0, schedule) == (0.5 if schedule == "constant" else 2.0)
    assert risk_schedule(0.5, 0.5, 2.0, schedule) == pytest.approx(mid, abs=1e-12)


def test_schedule_shapes():
    assert risk_schedule(0.25, 0.5, 2.0, "linear") == pytest.approx(0.875)
    cos_quarter = 0.5 + 1.5 * (1 - math.cos(math.pi / 4)) / 2
    assert risk_schedule(0.25, 0.5, 2.0, "cosine") == pytest.approx(cos_quarter)
    ks = [risk_schedule(p / 20, 0.5, 2.0, "cosine") for p in range(21)]
    assert ks == sorted(ks)
    with pytest.raises(ValueError, match="unknown risk schedule 'exp'"):
        risk_schedule(0.5, 0.5, 2.0, "exp")
    with pytest.raises(ValueError, match=r"progress = -0.1 is outside \[0, 1\]"):
        risk_schedule(-0.1, 0.5, 2.0)


def test_rvpo_risk_at_and_its_effect():
    annealed = get_aggregator("rvpo", risk_start=0.5, risk_end=2.0, schedule="cosine")
    assert [annealed.risk_at(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.5, 1.25, 2.0])
    assert get_aggregator("rvpo", risk_start=0.5, risk_end=2.0).schedule == "linear"
    constant = get_aggregator("rvpo", risk=3.0)
    assert constant.risk_at(0.0) == constant.risk_at(1.0) == 3.0
    r = torch.from_numpy(random_rewards(2, 4, 4, 5))
    torch.testing.assert_close(annealed(r, 4, progress=1.0), get_aggregator("rvpo", risk=2.0)(r, 4))
    torch.testing.assert_close(annealed(r, 4, progress=0.0), get_aggregator("rvpo", risk=0.5)(r, 4))


# ------------------------------------------------------------------ GDPO variants, per-rollout weights, whitening


def _rubric_table(seed, G=4, sizes=(5, 17, 5, 17)):
    """(B*G, 17) rewards: prompt b has a rubric of sizes[b] items (NaN-padded), binary verdicts."""
    rng = np.random.default_rng(seed)
    r = np.full((len(sizes) * G, max(sizes)), np.nan)
    for b, k in enumerate(sizes):
        r[b * G : (b + 1) * G, :k] = rng.integers(0, 2, size=(G, k))
    r[rng.random(r.shape) < 0.05] = np.nan  # a few failed judge calls
    return torch.from_numpy(r)


@pytest.mark.parametrize("seed", range(4))
def test_gdpo_mean_is_rvpo_at_risk_zero_and_differs_from_the_sum(seed):
    r = _rubric_table(seed)
    mean = get_aggregator("gdpo", reduce="mean")(r, 4)
    torch.testing.assert_close(mean, get_aggregator("rvpo", risk=0.0)(r, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        mean.float(), get_aggregator("rvpo", risk=0.0)(r.float(), 4), rtol=0, atol=1e-6
    )
    z = _zscores(r.numpy(), 4)  # the loop reference: mean of the present Z, then whitening
    pre = [None if np.isnan(row).all() else float(np.nanmean(row)) for row in z]
    np.testing.assert_allclose(mean.numpy(), _whiten(pre), atol=1e-10)
    # With 5 and 17 channels per prompt the sum is a different advantage (TRL's normalize_then_sum).
    total = get_aggregator("gdpo")(r, 4)
    np.testing.assert_allclose(total.numpy(), reference("gdpo", r.numpy(), 4), atol=1e-10)
    assert (total - mean).abs().max() > 0.05


def test_gdpo_reduce_and_whiten_options_are_checked():
    with pytest.raises(ValueError, match=r"reduce = 'max'; expected one of \['sum', 'mean'\]"):
        get_aggregator("gdpo", reduce="max")
    with pytest.raises(
        ValueError, match=r"whiten = 'batch'; expected one of \['sequence', 'token', 'none'\]"
    ):
        get_aggregator("rvpo", whiten="batch")
    with pytest.raises(ValueError, match=r"\['reduce'\] do not apply to aggregator 'rvpo'"):
        get_aggregator("rvpo", reduce="mean")
    with pytest.raises(ValueError, match=r"\['whiten'\] do not apply to aggregator 'grpo'"):
        get_aggregator("grpo", whiten="token")
    with pytest.raises(ValueError, match=r"whiten='token' needs lengths="):
        get_aggregator("gdpo", whiten="token")(torch.rand(4, 2), 2)
    with pytest.raises(ValueError, match=r"lengths has shape \(3,\); expected \(4,\)"):
        get_aggregator("gdpo", whiten="token")(torch.rand(4, 2), 2, lengths=[1, 2, 3])


def test_grpo_with_per_rollout_weights_is_the_weighted_sum_then_group_normalisation():
    rng = np.random.default_rng(3)
    r = _rubric_table(7)
    w = torch.from_numpy(rng.choice([1.0, 2.0, 3.0, 5.0], size=r.shape))
    got = get_aggregator("grpo", missing="nansum")(r, 4, weights=w)
    total = (r * w).nansum(-1)  # every row here has some reward
    g = total.reshape(-1, 4)
    want = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + EPS)).reshape(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # one (K,) row repeated over N equals the (K,) weights; a zero weight drops the channel
    torch.testing.assert_close(
        get_aggregator("grpo")(r, 4, weights=w[0].expand_as(w)), get_aggregator("grpo")(r, 4, weights=w[0])
    )
    dropped = r.clone()
    dropped[:4, 0] = NAN
    w0 = torch.ones_like(r)
    w0[:4, 0] = 0.0
    torch.testing.assert_close(get_aggregator("grpo")(r, 4, weights=w0), get_aggregator("grpo")(dropped, 4))


@pytest.mark.parametrize("name", ["gdpo", "rvpo", "variance_penalty", "hard_min"])
def test_per_rollout_weights_in_zscore_methods(name):
    r = _rubric_table(11)
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.choice([1.0, 2.0, 4.0], size=r.shape))
    agg = get_aggregator(name)
    torch.testing.assert_close(agg(r, 4, weights=w[0].expand_as(w).clone()), agg(r, 4, weights=w[0]))
    # weights that differ per prompt (rubric item weights) and per rollout, against the loop reference
    per_prompt = w.reshape(4, 4, -1)[:, :1].expand(4, 4, w.shape[-1]).reshape(w.shape)
    for ww in (per_prompt, w):
        np.testing.assert_allclose(
            agg(r, 4, weights=ww).numpy(), reference(name, r.numpy(), 4, ww.numpy()), atol=1e-10
        )
    # a row's reduction depends only on its own weights
    z = group_zscore(r, 4)
    torch.testing.assert_close(softmin(z, 1.0, per_prompt)[4:8], softmin(z[4:8], 1.0, per_prompt[4]))


def test_token_whitening_counts_each_rollout_once_per_token():
    r = _rubric_table(5)
    lengths = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3])
    agg = get_aggregator("rvpo", whiten="token")
    seq = get_aggregator("rvpo")
    torch.testing.assert_close(agg(r, 4, lengths=torch.ones(16)), seq(r, 4))  # one token each
    # the reference: whiten a batch in which row i is repeated lengths[i] times (one per token)
    pre = softmin(group_zscore(r, 4), 1.0)
    tokens = pre.repeat_interleave(lengths)
    mean, std = tokens.mean(), tokens.std()
    torch.testing.assert_close(agg(r, 4, lengths=lengths), (pre - mean) / (std + EPS))
    assert not torch.allclose(agg(r, 4, lengths=lengths), seq(r, 4))


def test_dr_grpo_names_its_loss_and_grpo_always_takes_item_weights():
    assert get_aggregator("dr_grpo").loss_type == "dr_grpo"
    assert get_aggregator("grpo").loss_type is None and get_aggregator("rvpo").loss_type is None
    assert get_aggregator("grpo").wants_item_weights and get_aggregator("dr_grpo").wants_item_weights
    assert not get_aggregator("rvpo").wants_item_weights
    assert get_aggregator("gdpo", use_item_weights=True).wants_item_weights
