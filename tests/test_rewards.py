from __future__ import annotations

import pytest

from rvpo_repro.rewards import MultiChannelReward, RewardChannel, expand_reward_funcs


class Counting(MultiChannelReward):
    def __init__(self):
        self.channels = [RewardChannel("a"), RewardChannel("b", binary=True)]
        self.calls = 0

    def score(self, prompts, completions, **kwargs):
        self.calls += 1
        return [[float(len(c)), None if c == "" else 1.0] for c in completions]


def plain(prompts, completions, **kwargs):
    return [0.5 for _ in completions]


def test_multichannel_is_scored_once_per_batch_and_split_by_channel():
    multi = Counting()
    funcs, specs = expand_reward_funcs([multi, plain], [RewardChannel("plain", binary=True)])
    assert [f.__name__ for f in funcs] == ["a", "b", "plain"]
    assert [s.name for s in specs] == ["a", "b", "plain"] and specs[1].binary and specs[2].binary
    prompts, completions = ["p", "p"], ["xyz", ""]
    assert funcs[0](prompts=prompts, completions=completions) == [3.0, 0.0]
    assert funcs[1](prompts=prompts, completions=completions) == [1.0, None]
    assert multi.calls == 1
    # A new batch (new list objects) is scored again.
    assert funcs[1](prompts=["q"], completions=["a"]) == [1.0]
    assert multi.calls == 2


def test_duplicate_channel_names_are_rejected():
    with pytest.raises(ValueError, match=r"repeated: \['a', 'b'\]"):
        expand_reward_funcs([Counting(), Counting()])


def test_wrong_row_width_names_the_completion():
    class Bad(Counting):
        def score(self, prompts, completions, **kwargs):
            return [[1.0]] * len(completions)

    with pytest.raises(ValueError, match="1 values for completion 0, expected 2"):
        Bad()(["p"], ["c"])


def test_normalise_uses_the_declared_range():
    assert RewardChannel("f", low=0.0, high=3.0).normalise(1.5) == 0.5
    assert RewardChannel("c", low=-3.0, high=3.0).normalise(-3.0) == 0.0
