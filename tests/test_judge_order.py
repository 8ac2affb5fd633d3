"""The rubric reward sends a step's judge requests with one response's items adjacent, the
grader prompt shared up to the criterion, so a prefix-caching server (vllm serve) reads the shared
part from its cache (measured: scripts/judge_prefix_cache.py)."""

from __future__ import annotations

import json

from rvpo_repro.tasks.rubric import PitfallConvention, RubricReward


class Recorder:
    def __init__(self):
        self.sent = []

    def grade(self, requests, parse):
        self.sent.extend(requests)
        return [type("Result", (), {"value": True})() for _ in requests]


def test_one_responses_items_are_adjacent_and_share_the_prompt_up_to_the_criterion():
    rubric = json.dumps([{"description": f"item {j}", "weight": 1.0} for j in range(3)])
    judge = Recorder()
    reward = RubricReward(judge, max_channels=3, convention=PitfallConvention.met_is_failure)
    prompts = [[{"role": "user", "content": "q1"}]] * 2 + [[{"role": "user", "content": "q2"}]] * 2
    completions = [[{"role": "assistant", "content": f"answer {i}"}] for i in range(4)]
    rows = reward.score(prompts, completions, [rubric] * 4)
    assert rows == [[1.0, 1.0, 1.0]] * 4
    users = [r.to_messages()[-1]["content"] for r in judge.sent]
    assert len(users) == 12
    for i in range(4):  # requests 3i .. 3i+2 are response i's items, in rubric order
        block = users[3 * i : 3 * i + 3]
        assert all(f"answer {i}" in u for u in block)
        assert [u.split("Criterion:\n")[1].split("\n")[0] for u in block] == ["item 0", "item 1", "item 2"]
        prefix = {u.split("Criterion:")[0] for u in block}
        assert len(prefix) == 1  # everything before the criterion is the same text
