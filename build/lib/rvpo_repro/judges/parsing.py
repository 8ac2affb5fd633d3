"""Parsers from judge reply text to a verdict; each raises ValueError on malformed output.

A parser's ValueError makes the judge re-ask (a bounded number of times) and, when every ask
fails, record the verdict as missing (None) with the error; never as 0 or 1.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_MAX_SCAN = 200  # '{' positions tried when the object is buried in prose


def _objects(text: str) -> list[dict[str, Any]]:
    """JSON objects in `text`: the whole text, then fenced blocks, then objects found in prose."""
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    found: list[dict[str, Any]] = []
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            found.append(obj)
    if found:
        return found
    decoder = json.JSONDecoder()
    pos, tries = text.find("{"), 0
    while pos >= 0 and tries < _MAX_SCAN:
        tries += 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        pos = text.find("{", end)
    return found


def parse_criteria_met(text: str) -> bool:
    """The `criteria_met` boolean of the HealthBench grader's {"explanation", "criteria_met"} reply.

    The object may stand alone, sit in a ```json fence, or be surrounded by prose. Raises
    ValueError when no object has `criteria_met`, when it is not a JSON boolean (the string
    "true" or the number 1 is malformed, as upstream), or when several objects disagree.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty judge reply")
    verdicts = [obj["criteria_met"] for obj in _objects(text) if "criteria_met" in obj]
    if not verdicts:
        raise ValueError(f"no JSON object with 'criteria_met' in the judge reply: {_clip(text)!r}")
    for v in verdicts:
        if not isinstance(v, bool):
            raise ValueError(f"'criteria_met' must be a JSON boolean, got {v!r}")
    if len(set(verdicts)) > 1:
        raise ValueError(f"the judge reply holds conflicting 'criteria_met' values: {verdicts}")
    return verdicts[0]


def _clip(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "..."
