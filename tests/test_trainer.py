"""RVPOTrainer against TRL's own GRPOTrainer, on the tiny offline model."""

from __future__ import annotations

import math

import pytest
import torch

from rvpo_repro.aggregators import get_aggregator
from rvpo_repro.rewards import MultiChannelReward, RewardChannel

G, PROMPTS, K = 4, 4, 3
N = G * PROMPTS


def _table(seed: int = 0) -> torch.Tensor:
    """Scripted rewards (N, K): a binary channel, a large-scale channel, a sparse one with NaNs."""
    g = torch.Generator().manual_seed(seed)
    t = torch.stack(
        [
            (torch.rand(N, generator=g) > 0.5).float(),
            3 * torch.rand(N, generator=g),
            torch.randn(N, generator=g),
        ],
        dim=1,
    )
    t[torch.rand(N, generator=g) < 0.3, 2] = float("nan")
    t[5] = float("nan")  # one unscorable rollout
    return t


def _scripted_funcs(table: torch.Tensor):
    def make(j):
        def f(prompts, completions, row, **kwargs):
            return [None if math.isnan(v) else v for v in table[row, j].tolist()]

        f.__name__ = f"ch{j}"
        return f

    return [make(j) for j in range(table.shape[1])]


class ScriptedMulti(MultiChannelReward):
    def __init__(self, table):
        self.table = table
        self.channels = [
            RewardChannel("ch0", binary=True),
            RewardChannel("ch1", high=3.0),
            RewardChannel("ch2"),
        ]
        self.calls = 0

    def score(self, prompts, completions, row, **kwargs):
        self.calls += 1
        return [[None if math.isnan(v) else v for v in self.table[r].tolist()] for r in row]


def _inputs():
    return [
        {"prompt": [{"role": "user", "content": f"Write a line about topic {i // G}."}], "row": i}
        for i in range(N)
    ]


def _args(tmp_path, **kw):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=N,
        num_generations=G,
        max_completion_length=4,
        report_to="none",
        use_cpu=True,
        logging_steps=1,
        max_steps=10,
        **kw,
    )


def _dataset():
    from datasets import Dataset

    return Dataset.from_list(_inputs())


def _trl_advantages(tiny_model_dir, tmp_path, table, **kw):
    from trl import GRPOTrainer

    trainer = GRPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=_scripted_funcs(table),
        args=_args(tmp_path, **kw),
        train_dataset=_dataset(),
    )
    return trainer._generate_and_score_completions(_inputs())["advantages"]


def _ours(tiny_model_dir, tmp_path, table, aggregator, multi=False, **kw):
    from rvpo_repro.trainer import RVPOTrainer

    funcs = [ScriptedMulti(table)] if multi else _scripted_funcs(table)
    trainer = RVPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=funcs,
        args=_args(tmp_path, **kw),
        train_dataset=_dataset(),
        aggregator=aggregator,
    )
    trainer.model.train()  # as inside trainer.train(): metrics go to the "train" bucket
    return trainer, trainer._generate_and_score_completions(_inputs())["advantages"]


@pytest.mark.parametrize(
    ("ours", "trl_kwargs"),
    [
        (
            ("grpo", {"scale": "group", "missing": "nansum"}),  # TRL's rule for a missing reward
            {"multi_objective_aggregation": "sum_then_normalize", "scale_rewards": "group"},
        ),
        (
            ("grpo", {"scale": "batch", "missing": "nansum"}),
            {"multi_objective_aggregation": "sum_then_normalize", "scale_rewards": "batch"},
        ),
        (
            ("dr_grpo", {"missing": "nansum"}),
            {"multi_objective_aggregation": "sum_then_normalize", "scale_rewards": "none"},
        ),
        (("gdpo", {}), {"multi_objective_aggregation": "normalize_then_sum"}),
    ],
    ids=["grpo-group", "grpo-batch", "dr_grpo", "gdpo"],
)
@pytest.mark.parametrize("weights", [None, [1.0, 0.5, 2.0]], ids=["unweighted", "weighted"])
def test_advantages_fed_to_the_loss_match_trl(tiny_model_dir, tmp_path, ours, trl_kwargs, weights):
    table = _table()
    expected = _trl_advantages(tiny_model_dir, tmp_path / "trl", table, reward_weights=weights, **trl_kwargs)
    name, opts = ours
    # TRL's own setting is left at its default in our trainer: only the aggregator decides.
    _, got = _ours(
        tiny_model_dir, tmp_path / "ours", table, get_aggregator(name, **opts), reward_weights=weights
    )
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert got[5] == 0.0  # TRL's convention for an unscorable rollout


def test_multichannel_reward_matches_separate_functions_and_logs_channels(tiny_model_dir, tmp_path):
    table = _table(1)
    agg = get_aggregator("rvpo", risk_start=0.5, risk_end=2.0, schedule="linear")
    trainer, got = _ours(tiny_model_dir, tmp_path, table, agg, multi=True)
    assert trainer.reward_func_names == ["ch0", "ch1", "ch2"]
    assert trainer.reward_funcs[0].parent.calls == 1  # one pass scores all channels
    torch.testing.assert_close(got, agg(table, num_generations=G, progress=0.0), atol=1e-6, rtol=0)

    m = trainer._metrics["train"]
    ch0 = table[:, 0]
    assert m["channels/ch0/satisfied"][-1] == pytest.approx((ch0[~ch0.isnan()] == 1).float().mean().item())
    assert "channels/ch1/satisfied" not in m  # continuous channels are not constraints
    assert m["aggregator/risk"][-1] == pytest.approx(0.5)  # progress 0 of a 0.5 -> 2.0 schedule
    weights = [m[f"aggregator/weight/ch{j}"][-1] for j in range(3)]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5) and all(w > 0 for w in weights)
    means = torch.nanmean(table, dim=0).tolist()
    assert m["channels/bottleneck"][-1] == pytest.approx(min(means[0], means[1] / 3, means[2]))
    assert 0.0 <= m["channels/all_constraints"][-1] <= 1.0
    assert trainer.training_progress() == 0.0


@pytest.mark.parametrize("name", ["saw", "mgda", "constrained_grpo"])
def test_every_method_logs_its_channel_weights_and_steps_its_state_on_training_batches(
    tiny_model_dir, tmp_path, name
):
    table = _table(3)
    agg = get_aggregator(name)
    want = agg(table, num_generations=G)
    trainer, got = _ours(tiny_model_dir, tmp_path, table, agg, multi=True)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    m = trainer._metrics["train"]
    weights = [m[f"aggregator/weight/ch{j}"][-1] for j in range(3)]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    if name == "constrained_grpo":  # the multipliers took one dual step on this training batch
        assert agg.multipliers != [1.0, 1.0, 1.0]
        moved = list(agg.multipliers)
        trainer.model.eval()  # an evaluation batch does not move them
        trainer._generate_and_score_completions(_inputs())
        assert agg.multipliers == moved


class WeightedMulti(ScriptedMulti):
    """ScriptedMulti whose channels carry per-rollout weights (as rubric items do)."""

    def __init__(self, table, weights):
        super().__init__(table)
        self.weights = weights

    def item_weights(self, inputs):
        return [self.weights[x["row"]].tolist() for x in inputs]


@pytest.mark.parametrize(
    ("name", "opts", "uses"),
    [
        ("grpo", {}, True),  # GRPO always weights by item
        ("rvpo", {}, False),
        ("rvpo", {"use_item_weights": True}, True),
        ("gdpo", {"reduce": "mean", "use_item_weights": True, "whiten": "token"}, True),
    ],
)
def test_item_weights_and_lengths_reach_the_aggregator(tiny_model_dir, tmp_path, name, opts, uses):
    from rvpo_repro.trainer import RVPOTrainer

    table = _table(2)
    item_w = torch.randint(1, 6, table.shape, generator=torch.Generator().manual_seed(0)).float()
    agg = get_aggregator(name, **opts)
    trainer = RVPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[WeightedMulti(table, item_w)],
        args=_args(tmp_path, reward_weights=[1.0, 0.5, 2.0]),
        train_dataset=_dataset(),
        aggregator=agg,
    )
    trainer.model.train()
    out = trainer._generate_and_score_completions(_inputs())
    w = torch.tensor([1.0, 0.5, 2.0]) * (item_w if uses else 1.0)
    want = agg(table, G, weights=w, lengths=out["completion_mask"].sum(1))
    torch.testing.assert_close(out["advantages"], want, atol=1e-6, rtol=0)
    if uses:  # the weights changed the advantage
        assert not torch.allclose(
            want, agg(table, G, weights=[1.0, 0.5, 2.0], lengths=out["completion_mask"].sum(1))
        )


def test_dr_grpo_sets_trl_loss_type(tiny_model_dir, tmp_path):
    from rvpo_repro.trainer import RVPOTrainer

    def make(name):
        return RVPOTrainer(
            model=str(tiny_model_dir),
            reward_funcs=_scripted_funcs(_table()),
            args=_args(tmp_path / name, loss_type="dapo"),
            train_dataset=_dataset(),
            aggregator=get_aggregator(name),
        )

    dr = make("dr_grpo")
    assert dr.loss_type == dr.args.loss_type == "dr_grpo"
    assert make("grpo").loss_type == "dapo"  # others keep the trainer's setting


def test_an_absent_binary_channel_does_not_fail_all_constraints():
    """A rollout whose constraint channel is NaN (does not apply) still satisfies all constraints."""
    from collections import defaultdict
    from types import SimpleNamespace

    from rvpo_repro.trainer import RVPOTrainer

    fake = SimpleNamespace(
        _metrics={"train": defaultdict(list)},
        channels=[RewardChannel("a", binary=True), RewardChannel("b", binary=True)],
        aggregator=get_aggregator("grpo"),  # no schedule, no channel weights
    )
    nan = float("nan")
    rewards = torch.tensor([[1.0, 1.0], [1.0, nan], [0.0, 1.0], [nan, nan]])
    RVPOTrainer._log_channel_metrics(fake, rewards, progress=0.0, group=2, mode="train")
    m = fake._metrics["train"]
    assert m["channels/all_constraints"] == [0.75]  # rows 0, 1, 3 pass; only row 2 fails a constraint
    assert m["channels/b/satisfied"] == [1.0]  # over the rollouts where b applies


def test_annealed_risk_rises_over_training(tiny_model_dir, tmp_path):
    """A few real steps of rvpo_annealed: the logged risk follows 0.5 -> 2.0 with training progress."""
    from rvpo_repro.trainer import RVPOTrainer

    steps = 4
    args = _args(tmp_path, save_strategy="no", disable_tqdm=True)
    args.max_steps = steps
    trainer = RVPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=_scripted_funcs(_table(2)),
        args=args,
        train_dataset=_dataset(),
        aggregator=get_aggregator("rvpo", risk_start=0.5, risk_end=2.0, schedule="linear"),
    )
    trainer.train()
    risks = [h["aggregator/risk"] for h in trainer.state.log_history if "aggregator/risk" in h]
    # rollouts of step s are drawn at progress (s - 1) / steps
    assert risks == pytest.approx([0.5 + 1.5 * s / steps for s in range(steps)])
