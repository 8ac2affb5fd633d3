"""Every registered aggregator through verl's own `ray_trainer.compute_advantage`, on DataProtos
built on CPU: equal to the suite's aggregator on the same rewards (token whitening, rows shuffled,
absent channels, channel weights), over two steps (stateful methods keep their state)."""

from __future__ import annotations

import pytest
import torch
from helpers.verl_batches import KEYS, make_batch, suite_advantages, suite_aggregator
from omegaconf import OmegaConf

from rvpo_repro.aggregators.base import AGGREGATORS

WEIGHTS = [1.0, 0.5, 2.0]
# float32 advantages from verl's tensors against the suite's float64
TOL = 2e-6


def algorithm(**extra):
    """verl's `algorithm` node as its trainer passes it (a DictConfig)."""
    return OmegaConf.create({"gdpo_reward_keys": list(KEYS), **extra})


def verl_advantages(data, estimator: str, config) -> torch.Tensor:
    from verl.trainer.ppo.ray_trainer import compute_advantage

    out = compute_advantage(data, adv_estimator=estimator, config=config)
    return out.batch["advantages"]


def test_install_names_every_method_and_leaves_verls_own(installed_names):
    from verl.trainer.ppo import core_algos

    assert sorted(installed_names.values()) == sorted(AGGREGATORS)
    assert installed_names["rvpo_repro_gdpo"] == "gdpo" and installed_names["rvpo_repro_grpo"] == "grpo"
    assert installed_names["rvpo"] == "rvpo"
    own = core_algos.ADV_ESTIMATOR_REGISTRY["gdpo"]
    assert own is core_algos.compute_gdpo_outcome_advantage
    from rvpo_repro.integrations.verl import install

    assert install() == installed_names  # idempotent: a second install registers nothing new


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_every_method_equals_the_suite_on_shuffled_batches(name, installed_names):
    verl_name = {v: k for k, v in installed_names.items()}[name]
    expected_agg = suite_aggregator(name, weights=WEIGHTS)
    config = algorithm(gdpo_reward_weights=WEIGHTS)
    for step in range(2):  # the second step sees the state the first left (constrained_grpo's multipliers)
        data, rows, uids, lengths = make_batch(seed=10 + step)
        mask = data.batch["response_mask"].double()
        got = verl_advantages(data, verl_name, config).double()
        want = suite_advantages(expected_agg, rows, uids, lengths).unsqueeze(-1) * mask
        assert got.shape == mask.shape
        assert (got - want).abs().max().item() < TOL, (name, step)
        assert torch.equal(data.batch["returns"], data.batch["advantages"])
    # rows with a reward differ: the test is not passing on all-zero advantages
    assert got.abs().sum() > 0


def test_rvpo_options_from_the_algorithm_subkey(installed_names):
    data, rows, uids, lengths = make_batch(seed=3)
    options = {"risk": 4.0, "eps": 1e-6, "saturated": "drop"}
    got = verl_advantages(data, "rvpo", algorithm(aggregator=options)).double()
    want = suite_advantages(suite_aggregator("rvpo", **options), rows, uids, lengths)
    assert (got - want.unsqueeze(-1) * data.batch["response_mask"]).abs().max() < TOL
    default = verl_advantages(make_batch(seed=3)[0], "rvpo", algorithm()).double()
    assert (got - default).abs().max() > 1e-3  # the options changed the advantages


def test_row_order_does_not_matter(installed_names):
    shuffled = make_batch(seed=5, shuffle=True)
    ordered = make_batch(seed=5, shuffle=False)
    a = verl_advantages(shuffled[0], "rvpo", algorithm())
    b = verl_advantages(ordered[0], "rvpo", algorithm())
    # the same rollout (same uid, same rewards, same length) gets the same advantage in both
    key = lambda rows, uids, lengths, i: (uids[i], tuple(rows[i]), int(lengths[i]))  # noqa: E731
    left = {key(*shuffled[1:], i): a[i] for i in range(len(a))}
    for i in range(len(b)):
        assert torch.allclose(left[key(*ordered[1:], i)], b[i], atol=1e-6)


def test_suite_gdpo_equals_verls_own_gdpo(installed_names):
    """verl's gdpo (std eps 1e-6, masked_whiten over tokens) against the suite's under the same eps."""
    data, *_ = make_batch(seed=7, absent=0.0)
    config = algorithm(gdpo_reward_weights=WEIGHTS, aggregator={"eps": 1e-6})
    theirs = verl_advantages(data, "gdpo", config)
    ours = verl_advantages(data, "rvpo_repro_gdpo", config)
    assert (theirs - ours).abs().max().item() < 5e-6
    assert theirs.abs().max() > 0.5


def test_other_estimators_reach_verls_function_unchanged(installed_names):
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import compute_advantage

    data, *_ = make_batch(seed=2)
    got = compute_advantage(data, adv_estimator="grpo", config=algorithm()).batch["advantages"]
    want, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"],
        index=data.non_tensor_batch["uid"],
    )
    assert torch.equal(got, want)
    assert compute_advantage.rvpo_repro_original is not compute_advantage


def test_v1_binding_is_wrapped_too(installed_names):
    from verl.trainer.ppo import ray_trainer
    from verl.trainer.ppo.v1 import utils

    assert utils.compute_advantage is ray_trainer.compute_advantage
    assert hasattr(utils.compute_advantage, "rvpo_repro_original")
