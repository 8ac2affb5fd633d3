"""Former home of ToolRL's rewards; they live in `rvpo_repro.tasks.toolrl.rewards`."""

from rvpo_repro.tasks.toolrl.rewards import (
    CORRECTNESS_MAX,
    CORRECTNESS_MIN,
    correctness_reward,
    expected_layout,
    format_reward,
    ground_truth_calls,
    match_score,
    parse_tool_lines,
    tool_call_block,
    tool_call_score,
)

__all__ = [
    "CORRECTNESS_MAX", "CORRECTNESS_MIN", "correctness_reward", "expected_layout", "format_reward",
    "ground_truth_calls", "match_score", "parse_tool_lines", "tool_call_block", "tool_call_score",
]  # fmt: skip
