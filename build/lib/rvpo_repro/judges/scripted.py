"""`scripted` back end: deterministic replies from a callable, for tests and dry runs (never a default).

`reply(request) -> str` gives the judge's reply text, which goes through `parse` like a real one.
The default reply is the HealthBench grader's JSON with a verdict that is a function of the
request's content (parity of its sha256), so runs are reproducible without any model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from rvpo_repro.judges.base import Judge, JudgeRequest, JudgeResult, JudgeStats, Parse, option
from rvpo_repro.judges.registry import cache_from_config, register_judge


def hashed_verdict(request: JudgeRequest) -> str:
    met = hashlib.sha256(repr(request.messages).encode()).digest()[0] % 2 == 1
    return json.dumps({"explanation": "scripted verdict (hash of the request)", "criteria_met": met})


@register_judge("scripted")
class ScriptedJudge(Judge):
    def __init__(
        self,
        reply: Callable[[JudgeRequest], str] = hashed_verdict,
        *,
        model: str = "scripted",
        temperature: float = 0.0,
        reask_limit: int = 0,
        cache=None,
    ):
        super().__init__(model=model, temperature=temperature, reask_limit=reask_limit, cache=cache)
        self.reply = reply
        self.model_id = f"{model}:{getattr(reply, '__module__', '?')}.{getattr(reply, '__qualname__', '?')}"

    @classmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> ScriptedJudge:
        return cls(
            model=option(cfg, "model", "") or "scripted",
            temperature=option(cfg, "temperature", 0.0),
            reask_limit=option(cfg, "reask_limit", 0),
            cache=cache_from_config(cfg),
        )

    async def _judge_many(
        self, requests: Sequence[JudgeRequest], parse: Parse, stats: JudgeStats, tick: Callable[[], None]
    ) -> list[JudgeResult]:
        out = []
        for req in requests:
            value, text, error, attempts = None, None, None, 0
            for ask in range(self.reask_limit + 1):
                if ask:
                    stats.reasks += 1
                text = self.reply(req)
                attempts += 1
                stats.sent += 1
                try:
                    value = parse(text)
                    error = None if value is not None else "parse returned None"
                except ValueError as exc:
                    value, error = None, f"malformed judge reply after {ask + 1} asks: {exc}"
                if value is not None:
                    break
            out.append(JudgeResult(value=value, raw=text, error=error, attempts=attempts))
            tick()
        return out
