"""ToolRL's two rule-based rewards for RLLA-4k (Qian et al. 2025, github qiancheng0/ToolRL).

Reimplemented from the description in `data-formats.md` and upstream's reward module
(`verl/utils/reward_score/rlla.py`) with its default settings: none of upstream's reward-variant
environment switches (REFINEDREWARD, COARSEREWARD, INTERMEDIATEREWARD, SCHEDULEREWARD, ...) is on.

    format       {0, 1}    the output layout the ground truth uses: <think> then <tool_call> and/or <response>
    correctness  [-3, 3]   tool names, parameter names and parameter values against the ground truth

`ground_truth` is the RLLA `output` string (`reward_model.ground_truth` of the prepared parquet).
A malformed policy output always yields a reward, never an exception.

Readings of details the written description leaves open (all taken from upstream's code):
- Upstream scores the decoded reply after cutting the chat markers and calling `.strip()`; TRL hands
  the reply without markers, so both rewards strip surrounding whitespace first.
- "Exactly one of each tag" counts only the <tool_call>/<response> wrappers the chosen pattern
  contains; <think> is not counted (the anchored regex already fixes where it starts), and the
  think-only pattern counts nothing.
- The tool-call block is the text between the first "<tool_call>" and the next "</tool_call>",
  stripped and split on "\\n", one JSON object per line; an empty line is a parse failure.
- Any error while scoring a parsed prediction (a call that is not an object, lacks "name", has
  non-dict "parameters", an unhashable name) counts as a parse failure: -3, as upstream's
  try/except does.
- A ground-truth call is matched only by a predicted call with a strictly positive match score
  (upstream starts the best score at 0.0 and keeps a candidate only when it is higher).
- Values compare with Python `==` on the decoded JSON (so 1 == 1.0 == true, as upstream).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from rvpo_repro.rewards import MultiChannelReward, RewardChannel, completion_text

FORMAT_MIN, FORMAT_MAX = 0.0, 1.0
CORRECTNESS_MIN, CORRECTNESS_MAX = -3.0, 3.0

_TOOL_ONLY = re.compile(r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$", re.DOTALL)
_RESPONSE_ONLY = re.compile(r"^<think>.*?</think>\n<response>.*?</response>$", re.DOTALL)
_BOTH = re.compile(
    r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>\n<response>.*?</response>$", re.DOTALL
)
_THINK_ONLY = re.compile(r"^<think>.*?</think>$", re.DOTALL)


def expected_layout(ground_truth: str) -> tuple[re.Pattern, tuple[str, ...]]:
    """The pattern the ground truth's tags select, and the wrapper tags that must occur exactly once."""
    has_call, has_response = "<tool_call>" in ground_truth, "<response>" in ground_truth
    if has_call and has_response:
        return _BOTH, ("<tool_call>", "</tool_call>", "<response>", "</response>")
    if has_call:
        return _TOOL_ONLY, ("<tool_call>", "</tool_call>")
    if has_response:
        return _RESPONSE_ONLY, ("<response>", "</response>")
    return _THINK_ONLY, ()


def format_reward(completion: str, ground_truth: str) -> float:
    """1.0 when the completion has the layout of the ground truth, else 0.0."""
    text = completion.strip()
    pattern, once = expected_layout(ground_truth)
    if pattern.search(text) and all(text.count(tag) == 1 for tag in once):
        return FORMAT_MAX
    return FORMAT_MIN


def tool_call_block(text: str) -> str:
    """The stripped text between the first <tool_call> and the following </tool_call>."""
    return text.split("<tool_call>")[1].split("</tool_call>")[0].strip()


def parse_tool_lines(block: str) -> list[Any]:
    """One JSON value per line; raises json.JSONDecodeError on any bad line (an empty one included)."""
    return [json.loads(line) for line in block.split("\n")]


def ground_truth_calls(ground_truth: str) -> list[dict] | None:
    """The ground truth's tool calls, or None when it has no <tool_call> block.

    A ground truth whose block does not parse raises json.JSONDecodeError (a data error; the
    loaders check every row up front).
    """
    if "<tool_call>" not in ground_truth:
        return None
    return parse_tool_lines(tool_call_block(ground_truth))


def match_score(a: list, b: list) -> float:
    """Multiset Jaccard: |a & b| / (|a| + |b| - |a & b|); 1 for equal lists, 0 when one is empty."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    ca, cb = Counter(a), Counter(b)
    inter = sum(min(ca[k], cb[k]) for k in ca.keys() & cb.keys())
    union = len(a) + len(b) - inter
    return inter / union if union > 0 else 0.0


def tool_call_score(gt: list[dict], pred: list[Any]) -> tuple[float, float]:
    """(S, S_max): name Jaccard plus, per ground-truth call, the best unused same-name prediction's
    J(param keys) + number of exactly equal values. Raises on malformed predictions (see module doc)."""
    score = match_score([c["name"] for c in gt], [c["name"] for c in pred])
    s_max = 1.0
    used: set[int] = set()
    for call in gt:
        params = call["parameters"]
        s_max += 1.0 + len(params)
        best, best_index = 0.0, -1
        for i, cand in enumerate(pred):
            if i in used or cand["name"] != call["name"]:
                continue
            cand_params = cand["parameters"]
            keys = match_score(list(params.keys()), list(cand_params.keys()))
            values = sum(1.0 for k, v in params.items() if k in cand_params and cand_params[k] == v)
            if keys + values > best:
                best, best_index = keys + values, i
        if best_index >= 0:
            used.add(best_index)
            score += best
    return score, s_max


def correctness_reward(completion: str, ground_truth: str) -> float:
    """ToolRL's tool-call correctness in [-3, 3] (0 when the ground truth calls no tool)."""
    gt = ground_truth_calls(ground_truth)
    if gt is None:
        return 0.0
    text = completion.strip()
    try:
        if "<tool_call>" not in text or "</tool_call>" not in text:
            return CORRECTNESS_MIN
        pred = parse_tool_lines(tool_call_block(text))
        if pred == gt:
            return CORRECTNESS_MAX
        score, s_max = tool_call_score(gt, pred)
    except Exception:  # any malformed prediction is the lowest reward, as upstream's bare except
        return CORRECTNESS_MIN
    return (CORRECTNESS_MAX - CORRECTNESS_MIN) * score / s_max + CORRECTNESS_MIN


class ToolRLRewards(MultiChannelReward):
    """ToolRL's format and correctness rewards; TRL passes the `ground_truth` column as a kwarg."""

    channels = [
        RewardChannel("format", binary=True, low=0.0, high=1.0),
        RewardChannel("correctness", low=CORRECTNESS_MIN, high=CORRECTNESS_MAX),
    ]

    def score(self, prompts: list, completions: list, **kwargs: Any) -> list[list[float]]:
        truths = kwargs.get("ground_truth")
        if truths is None or len(truths) != len(completions):
            raise ValueError("ToolRLRewards needs a `ground_truth` column with one entry per completion")
        out = []
        for completion, truth in zip(completions, truths, strict=True):
            text = completion_text(completion)
            out.append([format_reward(text, truth), correctness_reward(text, truth)])
        return out
