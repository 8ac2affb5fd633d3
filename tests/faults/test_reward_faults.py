"""Rewards outside their domain (NaN, ±inf, ±1e308) are refused in one line naming the reward and
the row, where they enter: a user's reward as it returns (tasks.custom.user_code), any reward in the
trainer's (N, K) matrix before advantages are computed."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rvpo_repro.rewards import MultiChannelReward, RewardChannel
from rvpo_repro.tasks import TaskInputError
from rvpo_repro.tasks.custom.user_code import CheckedMultiReward, CheckedReward
from rvpo_repro.trainer import RVPOTrainer

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[2]


def chat(*texts: str) -> list:
    return [[{"role": "assistant", "content": t}] for t in texts]


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(math.nan, "NaN (return None for a missing reward)"), (np.float32("nan"), "NaN"), (math.inf, "inf"),
     (-math.inf, "-inf"), (1e308, "1e+308"), (-1e308, "-1e+308"), (1.5e9, "1500000000.0")],
    ids=["nan", "numpy-nan", "inf", "-inf", "1e308", "-1e308", "1.5e9"],
)  # fmt: skip
def test_a_reward_outside_its_domain_is_refused_naming_reward_and_row(bad, shown):
    f = CheckedReward(lambda completions, **kw: [0.5, bad, 0.0], "score", "reward 'mod:score'")
    with pytest.raises(TaskInputError) as e:
        f(["p"] * 3, chat("a", "b", "c"), id=["q0", "q1", "q2"])
    msg = str(e.value)
    assert msg.startswith(f"reward 'mod:score': returned {shown}") and "for row 1 (id 'q1')" in msg
    assert "\n" not in msg


def test_the_domain_edge_and_missing_values_pass():
    f = CheckedReward(lambda completions, **kw: [1e9, -1e9, None, True], "edge", "reward 'edge'")
    assert f(["p"] * 4, chat("a", "b", "c", "d")) == [1e9, -1e9, None, 1.0]


def test_a_multi_channel_reward_names_the_channel():
    class Pair(MultiChannelReward):
        channels = [RewardChannel("a"), RewardChannel("b")]

        def score(self, prompts, completions, **kwargs):
            return [[0.0, 1.0], [1.0, math.inf]]

    with pytest.raises(
        TaskInputError, match=r"^reward 'pair': returned inf.* for row 1, channel 'b'; expected"
    ):
        CheckedMultiReward(Pair(), "reward 'pair'")(["p", "p"], chat("x", "y"))


def test_the_trainer_refuses_inf_before_any_advantage():
    """Built-in rewards reach the trainer unchecked; ±inf (or a float64 1e308, inf in float32) stops
    the step naming the channel and rollout. NaN stays TRL's missing reward there."""
    owner = types.SimpleNamespace(channels=[RewardChannel("x"), RewardChannel("y")],
                                  state=types.SimpleNamespace(global_step=4))  # fmt: skip
    rewards = torch.tensor([[0.0, 1.0], [math.nan, 0.5], [1.0, 1e308]], dtype=torch.float32)
    with pytest.raises(TaskInputError, match=r"^reward channel 'y': returned inf.* for rollout 2 of step 5"):
        RVPOTrainer._refuse_out_of_domain(owner, rewards)
    rewards[2, 1] = -2e9
    with pytest.raises(TaskInputError, match=r"returned -2000000000.0, outside \[-1e\+09, 1e\+09\]"):
        RVPOTrainer._refuse_out_of_domain(owner, rewards)
    rewards[2, 1] = 1e9
    RVPOTrainer._refuse_out_of_domain(owner, rewards)  # NaN and the edge pass


def test_a_built_in_reward_returning_inf_stops_the_step(tiny_model_dir, tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from test_trainer import _ours, _table

    from rvpo_repro.aggregators import get_aggregator

    table = _table()
    table[9, 1] = math.inf
    with pytest.raises(
        TaskInputError, match=r"^reward channel 'ch1': returned inf.* for rollout 9 of step 1"
    ):
        _ours(tiny_model_dir, tmp_path, table, get_aggregator("gdpo"))


@pytest.mark.slow
def test_an_always_nan_reward_stops_rvpo_train_before_the_model_loads(tmp_path, cache_dir):
    (tmp_path / "my_rewards.py").write_text(
        "def always_nan(completions, **kwargs):\n    return [float('nan')] * len(completions)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rvpo-train"), "task=custom",
         f"task.train_source={REPO / 'examples' / 'prompts.jsonl'}",
         "task.rewards=[my_rewards:always_nan]", "experiment_name=nan", "model=tiny", "logger=disabled",
         "trainer.max_steps=1", f"paths.cache_dir={cache_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("rvpo-train: reward 'my_rewards:always_nan': returned NaN") and "row 0" in line
    assert not list((tmp_path / "results").rglob("result.json"))  # nothing sealed
