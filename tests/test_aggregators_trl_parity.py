"""grpo and gdpo reproduce the advantages TRL 1.16's own GRPOTrainer computes.

A real GRPOTrainer on the offline tiny model scores N rollouts with K scripted reward functions:
each returns a precomputed table value for its row (None for NaN), the row index arriving through a
dataset column. TRL's `_generate_and_score_completions` then computes the advantages with its own
code, which we compare to our aggregators on the same (N, K) table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rvpo_repro.aggregators import get_aggregator

# transformers 5 deprecations raised inside TRL's GRPOConfig/GRPOTrainer, not ours
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

B, G, K = 4, 4, 5
N = B * G


def make_table(seed: int) -> torch.Tensor:
    """(N, K) float32 rewards: NaNs, an unscorable row, a short rubric, a constant channel."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(N, K)).astype(np.float32)
    table[rng.random((N, K)) < 0.25] = np.nan
    table[5] = np.nan  # every reward function returns None for this rollout
    table[8:12, 3:] = np.nan  # prompt 2 has a 3-item rubric
    # Constant within prompt 3; dyadic, so TRL's float32 mean is exact too (see aggregators docstring).
    table[12:16, 2] = 0.5
    return torch.from_numpy(table)


class Table:
    """Reward functions reading one column of the current table, by the dataset column `row`."""

    def __init__(self):
        self.values = make_table(0)

    def func(self, j: int):
        def reward(prompts, completions, row, **kwargs):
            vals = [self.values[i, j].item() for i in row]
            return [None if math.isnan(v) else v for v in vals]

        reward.__name__ = f"channel_{j}"
        return reward


@pytest.fixture(scope="module")
def table():
    return Table()


@pytest.fixture(scope="module")
def make_trainer(tiny_model_dir, tmp_path_factory, table):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    dataset = Dataset.from_list(
        [{"prompt": f"Write a line about the river {b}.", "row": 0} for b in range(B)]
    )
    trainers = {}

    def make(aggregation: str, scale: str, weights: list[float] | None):
        key = (aggregation, scale, None if weights is None else tuple(weights))
        if key not in trainers:
            args = GRPOConfig(
                output_dir=str(tmp_path_factory.mktemp("grpo")),
                num_generations=G,
                per_device_train_batch_size=N,
                max_completion_length=4,
                report_to="none",
                multi_objective_aggregation=aggregation,
                scale_rewards=scale,
                reward_weights=weights,
                use_cpu=True,
                seed=0,
            )
            trainers[key] = GRPOTrainer(
                model=str(tiny_model_dir),
                reward_funcs=[table.func(j) for j in range(K)],
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
            )
        return trainers[key]

    return make


def trl_advantages(trainer, table: Table, rewards: torch.Tensor) -> torch.Tensor:
    table.values = rewards
    inputs = [{"prompt": f"Write a line about the river {i // G}.", "row": i} for i in range(N)]
    with torch.no_grad():
        out = trainer._generate_and_score_completions(inputs)
    return out["advantages"].detach().cpu()


WEIGHTS = [None, [1.0, 0.5, 2.0, 0.0, 1.5]]


@pytest.mark.parametrize("weights", WEIGHTS, ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    ("name", "aggregation", "scale"),
    [
        ("grpo", "sum_then_normalize", "group"),
        ("grpo", "sum_then_normalize", "batch"),
        ("grpo", "sum_then_normalize", "none"),
        ("gdpo", "normalize_then_sum", "group"),  # TRL ignores scale_rewards here
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_trl_grpo_trainer(make_trainer, table, name, aggregation, scale, weights, seed):
    trainer = make_trainer(aggregation, scale, weights)
    rewards = make_table(seed)
    expected = trl_advantages(trainer, table, rewards)
    options = {"scale": scale, "missing": "nansum"} if name == "grpo" else {}  # TRL: a missing verdict adds 0
    got = get_aggregator(name, **options)(rewards, G, weights=weights)
    if name == "grpo":  # the default renormalises over the graded items: not TRL's on this table
        assert not torch.allclose(get_aggregator(name, scale=scale)(rewards, G, weights=weights), expected)
    assert got.dtype == expected.dtype == torch.float32
    assert expected[5] == 0.0 and got[5] == 0.0  # the unscorable rollout
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
