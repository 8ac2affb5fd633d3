"""What the wrapped compute_advantage reads from the verl trainer calling it: the training progress
(its global step over its total) for risk schedules, and its step's metrics dict, which gets the
metrics the TRL path logs. The trainer here calls compute_advantage as verl 0.9.1's fit does
(ray_trainer.py, `batch = compute_advantage(batch, ..., config=self.config.algorithm)` with the
step's `metrics` dict in scope)."""

from __future__ import annotations

import pytest
import torch
from helpers.verl_batches import KEYS, make_batch, suite_advantages, suite_aggregator
from omegaconf import OmegaConf

from rvpo_repro.integrations.verl import VerlIntegrationError

SCHEDULE = {"risk_start": 0.5, "risk_end": 2.0, "schedule": "linear"}


class StepTrainer:
    """verl's trainer as compute_advantage sees it: global_steps counts from 1, total_training_steps."""

    def __init__(self, global_steps: int, total_training_steps: int, options: dict):
        self.global_steps, self.total_training_steps = global_steps, total_training_steps
        self.config = OmegaConf.create(
            {"algorithm": {"adv_estimator": "rvpo", "gdpo_reward_keys": list(KEYS), "aggregator": options}}
        )

    def step(self, batch):
        from verl.trainer.ppo.ray_trainer import compute_advantage

        metrics = {}
        batch = compute_advantage(
            batch, adv_estimator=self.config.algorithm.adv_estimator, config=self.config.algorithm
        )
        return batch, metrics


def test_risk_schedule_reads_the_trainers_progress(installed_names):
    data, rows, uids, lengths = make_batch(seed=4)
    batch, metrics = StepTrainer(3, 5, SCHEDULE).step(data)  # step 3 of 5: progress 2/5
    want = suite_advantages(suite_aggregator("rvpo", **SCHEDULE), rows, uids, lengths, progress=0.4)
    got = batch.batch["advantages"].double()
    assert (got - want.unsqueeze(-1) * batch.batch["response_mask"]).abs().max() < 2e-6
    assert metrics["aggregator/risk"] == pytest.approx(0.5 + 0.4 * 1.5)


def test_step_metrics_are_the_suites(installed_names):
    from rvpo_repro.channel_metrics import channel_metrics
    from rvpo_repro.rewards import RewardChannel

    data, rows, uids, lengths = make_batch(seed=6)
    _, metrics = StepTrainer(1, 10, {"risk": 2.0}).step(data)
    order = sorted(range(len(rows)), key=lambda i: uids[i])
    x = torch.tensor(
        [[float("nan") if v is None else v for v in rows[i]] for i in order], dtype=torch.float64
    )
    # format is binary (a constraint); correctness and the length score have no declared range
    specs = [RewardChannel("format", binary=True)] + [
        RewardChannel(k, low=float("nan"), high=float("nan")) for k in KEYS[1:]
    ]
    want = channel_metrics(suite_aggregator("rvpo", risk=2.0), x, specs, uids.count(uids[0]), 0.0)
    assert metrics == pytest.approx(want)
    assert {"channels/format/satisfied", "channels/bottleneck", "channels/all_constraints"} <= set(metrics)
    assert {f"aggregator/weight/{k}" for k in KEYS} <= set(metrics)
    assert metrics["aggregator/risk"] == 2.0
    fmt = [r[0] for r in rows if r[0] is not None]
    assert metrics["channels/format/satisfied"] == pytest.approx(sum(fmt) / len(fmt))


@pytest.mark.parametrize(
    "name,options,key",
    [
        ("saw", {}, "aggregator/weight/format"),
        ("mgda", {}, "aggregator/weight/correct"),
        ("constrained_grpo", {}, "aggregator/weight/length"),
    ],
)
def test_channel_weights_of_other_methods_reach_the_metrics(name, options, key, installed_names):
    trainer = StepTrainer(1, 10, options)
    trainer.config.algorithm.adv_estimator = name
    _, metrics = trainer.step(make_batch(seed=8)[0])
    assert key in metrics and 0.0 <= metrics[key] <= 1.0


def test_a_schedule_without_a_trainer_is_one_line(installed_names):
    from verl.trainer.ppo.ray_trainer import compute_advantage

    config = OmegaConf.create({"gdpo_reward_keys": list(KEYS), "aggregator": SCHEDULE})
    with pytest.raises(VerlIntegrationError, match="risk schedule needs the training progress") as err:
        compute_advantage(make_batch()[0], adv_estimator="rvpo", config=config)
    assert "\n" not in str(err.value)
