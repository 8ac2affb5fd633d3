"""`rules` back end: a judge that checks rule-shaped criteria on the response text, for CPU runs.

It answers the same requests as an LLM judge (the rubric track's per-item prompt and the
HealthBench grader prompt), finds the response and the criterion in them, and replies with the
grader's JSON, which goes through `parse` like a real reply; so deduplication, the verdict cache,
re-asks, missing verdicts and usage counters all run through the shared loop in `Judge.grade`.

Criteria it can check (case-insensitive; a "Pitfall Criteria:" prefix or a "[points]" prefix is
ignored: the verdict says whether the described thing happens, as the graders are asked):

    The response contains the letter 'x'.        The response contains the word 'river'.
    The response contains a digit.               The response contains a comma.
    The response starts with a capital letter.   The response ends with a period.
    The response is at most N words long.        The response is at least N words long.

Any other criterion is an error naming it: this judge must never guess.

`failure_rate` injects missing verdicts: each ask is answered with a malformed reply with that
probability, drawn from a hash of (seed, request, ask number), so the same request fails the same
way in every run and every process (results do not depend on the order requests arrive in).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from rvpo_repro.judges.base import Judge, JudgeRequest, JudgeResult, JudgeStats, Parse, option
from rvpo_repro.judges.registry import cache_from_config, register_judge

MALFORMED = "I cannot grade this."  # what a failed ask replies: no JSON, so `parse` rejects it

# rubric track (rvpo_repro.tasks.rubric.item_request)
_ITEM = re.compile(
    r"\n\nResponse:\n(?P<response>.*)\n\nCriterion:\n(?P<criterion>.*)\n\nIs the criterion met\?$", re.S
)
# HealthBench grader (the suite's template and simple-evals' both have these two sections, then
# another "# " heading): the reply is the conversation's last turn
_GRADER = re.compile(
    r"# Conversation\n(?P<conversation>.*?)\n\n# Rubric item\n(?P<criterion>.*?)\n\n# ", re.S
)
_ASSISTANT = "\n\nassistant: "


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


RULES: list[tuple[re.Pattern, Callable[[str, re.Match], bool]]] = [
    (re.compile(r"contains the letter '([a-z])'"), lambda t, m: m.group(1) in t.lower()),
    (re.compile(r"contains the word '([a-z']+)'"), lambda t, m: m.group(1) in _words(t)),
    (re.compile(r"contains a digit"), lambda t, m: any(c.isdigit() for c in t)),
    (re.compile(r"contains a comma"), lambda t, m: "," in t),
    (re.compile(r"starts with a capital letter"), lambda t, m: t.lstrip()[:1].isupper()),
    (re.compile(r"ends with a period"), lambda t, m: t.rstrip().endswith(".")),
    (re.compile(r"is at most (\d+) words long"), lambda t, m: len(_words(t)) <= int(m.group(1))),
    (re.compile(r"is at least (\d+) words long"), lambda t, m: len(_words(t)) >= int(m.group(1))),
]


def clean_criterion(criterion: str) -> str:
    """The criterion without a "Pitfall Criteria:" or "[points]" prefix, lower-cased."""
    text = re.sub(r"^\s*\[[-+0-9. ]+\]\s*", "", criterion)
    text = re.sub(r"^\s*pitfall criteria:\s*", "", text, flags=re.I)
    return text.strip().lower()


def check(response: str, criterion: str) -> bool:
    """Whether `response` does what `criterion` describes; ValueError for a criterion no rule reads."""
    text = clean_criterion(criterion)
    for pattern, rule in RULES:
        if m := pattern.search(text):
            return bool(rule(response, m))
    raise ValueError(
        f"the rules judge has no rule for the criterion {criterion!r}; expected one of "
        f"{[p.pattern for p, _ in RULES]}"
    )


def split_request(request: JudgeRequest) -> tuple[str, str]:
    """(response, criterion) of a rubric-item request or a HealthBench grader request."""
    text = request.messages[-1][1]
    if m := _ITEM.search(text):
        return m.group("response"), m.group("criterion")
    if m := _GRADER.search(text):
        convo = m.group("conversation")
        if _ASSISTANT not in convo:
            raise ValueError("HealthBench grader request without an assistant turn to grade")
        # the prompts this judge serves are single-turn: the reply follows the first assistant tag
        return convo.split(_ASSISTANT, 1)[1], m.group("criterion")
    raise ValueError(
        f"the rules judge reads rubric-item or HealthBench grader requests; got {text[:120]!r}..."
    )


def fails(seed: int, request: JudgeRequest, ask: int, rate: float) -> bool:
    """Seeded per (request, ask) coin with P(True) = rate."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}|{ask}|{request.messages!r}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@register_judge("rules")
class RulesJudge(Judge):
    def __init__(
        self,
        *,
        failure_rate: float = 0.0,
        seed: int = 0,
        reask_limit: int = 0,
        cache=None,
        model: str = "rules",
    ):
        if not 0.0 <= failure_rate <= 1.0:  # 1: a judge that never answers (the fault tests)
            raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
        super().__init__(model=model, reask_limit=reask_limit, cache=cache)
        self.failure_rate, self.seed = float(failure_rate), int(seed)
        # what the verdicts depend on, for the cache key: the rule set, not the failures (never cached)
        self.model_id = f"{model}:v1"

    @classmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> RulesJudge:
        return cls(
            failure_rate=option(cfg, "failure_rate", 0.0),
            seed=option(cfg, "seed", 0),
            reask_limit=option(cfg, "reask_limit", 0),
            cache=cache_from_config(cfg),
            model=option(cfg, "model", "") or "rules",
        )

    def reply(self, request: JudgeRequest, ask: int) -> str:
        if fails(self.seed, request, ask, self.failure_rate):
            return MALFORMED
        response, criterion = split_request(request)
        met = check(response, criterion)
        return json.dumps(
            {"explanation": f"rule check of: {clean_criterion(criterion)}", "criteria_met": met}
        )

    async def _judge_many(
        self, requests: Sequence[JudgeRequest], parse: Parse, stats: JudgeStats, tick: Callable[[], None]
    ) -> list[JudgeResult]:
        out = []
        for req in requests:
            value, text, error = None, None, None
            for ask in range(self.reask_limit + 1):
                if ask:
                    stats.reasks += 1
                text = self.reply(req, ask)
                stats.sent += 1
                try:
                    value, error = parse(text), None
                except ValueError as exc:
                    value, error = None, f"malformed judge reply after {ask + 1} asks: {exc}"
                if value is not None:
                    break
            out.append(JudgeResult(value=value, raw=text, error=error, attempts=ask + 1))
            tick()
        return out
