"""The tool-calling family is verl-GDPO's recipe for every aggregator it composes with.

verl-GDPO (NVlabs/GDPO, verl-GDPO/verl/trainer/ppo/ray_trainer.py, adv_estimator=gdpo): per channel
the GRPO outcome advantage (group mean, unbiased std + 1e-6), summed over channels, then
`masked_whiten` over the response tokens of the batch (unbiased masked variance, rsqrt(var + 1e-8)).
The reference below is written from that description, independently of rvpo_repro.aggregators.tensor_ops.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rvpo_repro.aggregators import aggregator_from_config
from rvpo_repro.config import compose, validate

ZSCORE = ("gdpo", "gdpo_mean", "rvpo", "rvpo_annealed", "rvpo_k5", "hard_min", "variance_penalty")


def verl_gdpo_advantage(rewards: torch.Tensor, group: int, lengths: torch.Tensor) -> torch.Tensor:
    """rewards (N, K), lengths (N,) -> (N,) per-sequence advantage of verl-GDPO's update."""
    n, k = rewards.shape
    z = torch.zeros(n, dtype=torch.float64)
    for j in range(k):
        r = rewards[:, j].double().view(-1, group)
        z += ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1)
    t = int(lengths.max())
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()  # (N, T) response mask
    tokens = z[:, None] * mask
    m = (tokens * mask).sum() / mask.sum()
    var = (((tokens - m) ** 2) * mask).sum() / mask.sum() * mask.sum() / (mask.sum() - 1)
    white = (tokens - m) * torch.rsqrt(var + 1e-8)
    return white[:, 0]  # every token of a sequence carries the same value


@pytest.mark.parametrize("aggregator", ZSCORE)
def test_zscore_methods_compose_to_token_whitening(aggregator):
    cfg = compose(["experiment=tool_calling", f"aggregator={aggregator}", "paths.output_dir=/tmp/unused"])
    validate(cfg, construct_trl=False)
    assert (cfg.aggregator.whiten, cfg.aggregator.eps) == ("token", 1e-6)


def test_grpo_still_composes_without_whitening():
    cfg = compose(["experiment=tool_calling", "aggregator=grpo", "paths.output_dir=/tmp/unused"])
    validate(cfg)  # GRPOConfig too
    assert "whiten" not in cfg.aggregator and cfg.aggregator.eps == 1e-6  # grpo has no such option
    aggregator_from_config(cfg.aggregator)


def test_an_aggregator_the_recipe_does_not_list_fails_to_resolve():
    cfg = compose(["experiment=tool_calling", "aggregator=gdpo", "~recipe.whiten.gdpo"])
    with pytest.raises(Exception, match="recipe.whiten lists no value for aggregator 'gdpo'"):
        OmegaConf.to_container(cfg.aggregator, resolve=True)


def test_outside_the_family_each_method_keeps_its_own_whitening():
    for option, whiten in [("gdpo", "sequence"), ("mo_grpo", "none"), ("constrained_grpo", "none")]:
        assert compose(["experiment=toy", f"aggregator={option}"]).aggregator.whiten == whiten
    assert compose(["experiment=tool_calling", "aggregator=mo_grpo"]).aggregator.whiten == "none"


def test_command_line_whitening_still_wins():
    cfg = compose(["experiment=tool_calling", "aggregator=rvpo", "aggregator.whiten=sequence"])
    assert cfg.aggregator.whiten == "sequence"


def test_gdpo_of_the_family_matches_verl_within_2e6():
    torch.manual_seed(0)
    group, prompts = 4, 64
    n = group * prompts
    rewards = torch.stack([torch.randint(0, 2, (n,)).float(), torch.randint(-3, 4, (n,)).float()], 1)
    lengths = torch.randint(1, 200, (n,))
    cfg = compose(["experiment=tool_calling", "aggregator=gdpo"])
    ours = aggregator_from_config(cfg.aggregator)(rewards, group, lengths=lengths).double()
    ref = verl_gdpo_advantage(rewards, group, lengths)
    assert (ours - ref).abs().max() < 2e-6
    seq = aggregator_from_config({**OmegaConf.to_container(cfg.aggregator, resolve=True), "whiten": None})
    assert (seq(rewards, group).double() - ref).abs().max() > 1e-3  # sequence whitening is not verl's


def test_optimizer_and_sampling_settings_are_verls():
    t = compose(["experiment=tool_calling"]).trainer
    assert t.weight_decay == 0.01  # verl actor AdamW default (fsdp_workers weight_decay 1e-2)
    assert t.vllm_importance_sampling_correction is False  # absent in verl-GDPO, on by default in TRL
