"""ToolRL's two rewards (the suite's `rvpo_repro.tasks.toolrl.rule_rewards`) as a verl reward function.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` per response; the
dict's "score" is the summed reward verl keeps per token, every other key a per-channel column of
the batch, which `algorithm.gdpo_reward_keys` names for the advantage.
"""

from __future__ import annotations

from rvpo_repro.tasks.toolrl.rule_rewards import correctness_reward, format_reward


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict[str, float]:
    fmt = format_reward(solution_str, ground_truth)
    correct = correctness_reward(solution_str, ground_truth)
    return {"score": fmt + correct, "format": fmt, "correctness": correct}
