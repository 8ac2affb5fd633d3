"""examples/verl/: the GDPO tool-calling recipe with RVPO composes with verl's own Hydra config,
every key it sets is a key of verl's schema (the suite's `algorithm.aggregator` aside, checked by
the suite's options), and its reward function gives the channels it names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from rvpo_repro.integrations.verl import OPTIONS_KEY, build_aggregator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verl"
RECIPE = "gdpo_tool_calling_rvpo"


def leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaves(value, path + ".")
        else:
            yield path, value


@pytest.fixture(scope="module")
def composed():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(EXAMPLE), version_base=None):
        return compose(config_name=RECIPE)


@pytest.fixture(scope="module")
def verl_default():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer")


def test_every_key_is_in_verls_schema(composed, verl_default):
    from verl.trainer.config import AlgoConfig

    algo_fields = {f.name for f in dataclasses.fields(AlgoConfig)}
    own = yaml.safe_load((EXAMPLE / f"{RECIPE}.yaml").read_text())
    own.pop("hydra"), own.pop("defaults")
    checked = 0
    for path, value in leaves(own):
        assert OmegaConf.select(composed, path) == value, path  # the recipe's value is what composed
        if path.startswith(f"algorithm.{OPTIONS_KEY}."):
            continue
        in_yaml = OmegaConf.select(verl_default, path, default="<absent>") != "<absent>"
        in_dataclass = path.startswith("algorithm.") and path.split(".")[1] in algo_fields
        assert in_yaml or in_dataclass, f"{path} is not a key of verl's ppo_trainer config or AlgoConfig"
        checked += 1
    assert checked >= 15


def test_the_recipe_is_gdpos_but_for_the_estimator(composed):
    algo = composed.algorithm
    assert algo.adv_estimator == "rvpo" and list(algo.gdpo_reward_keys) == ["format", "correctness"]
    assert composed.actor_rollout_ref.rollout.n == 4 and composed.data.train_batch_size == 512
    assert composed.actor_rollout_ref.actor.ppo_mini_batch_size == 128
    agg = build_aggregator(algo.adv_estimator, algo)
    assert (agg.eps, agg.risk, agg.whiten) == (1e-6, 1.0, "token")


def test_a_misspelt_option_in_the_recipe_is_one_line(composed):
    from rvpo_repro.integrations.verl import VerlIntegrationError

    algo = composed.algorithm.copy()
    with open_dict(algo):  # `+algorithm.aggregator.rsik=2` on the command line (without + Hydra refuses it)
        algo[OPTIONS_KEY]["rsik"] = 2.0
    with pytest.raises(VerlIntegrationError, match=r"algorithm\.aggregator: option\(s\) \['rsik'\]"):
        build_aggregator("rvpo", algo)


def test_the_reward_function_gives_the_recipes_channels(composed):
    import importlib.util

    spec = importlib.util.spec_from_file_location("toolrl_reward", EXAMPLE / "toolrl_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = '<think>x</think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
    right = module.compute_score("rlla", truth, truth)
    assert set(composed.algorithm.gdpo_reward_keys) <= set(right)
    assert right["format"] == 1.0 and right["correctness"] == 3.0 and right["score"] == 4.0
    wrong = module.compute_score("rlla", "no tags", truth)
    assert wrong["format"] == 0.0 and wrong["correctness"] < 0
