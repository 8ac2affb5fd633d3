"""The HealthBench grader as simple-evals defines it: template, messages, verdict parser.

simple-evals (`healthbench_eval.py`, pinned below) grades each rubric item with one chat call:
a system message "You are a helpful assistant." (its ChatCompletionSampler's), then one user
message, its `GRADER_TEMPLATE` with `<<conversation>>` replaced by every turn plus the response as
the last assistant turn (`role: content`, joined by a blank line) and then `<<rubric_item>>` by
`[points] criterion`. Two `str.replace` calls in that order, as upstream: text in the conversation
that reads `<<rubric_item>>` is replaced too (kept, so the messages are upstream's to the character).

The template text is upstream's and is not copied here: `load_grader_template("upstream")`
downloads the file at the pinned commit once (sha256-checked, cached), and reads the string
constant out of its syntax tree without executing it. "builtin" is this suite's own wording of the
same instructions; numbers graded with it are not comparable to the paper's.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

UPSTREAM_COMMIT = "ee3b0318d8d1d9d72755a4120879be65f7c07e9e"
UPSTREAM_SHA256 = "89909957f005762edaded2f0e39fc9b3b242edd55e3ac0ce4c8dd886ac59d167"
UPSTREAM_URL = f"https://raw.githubusercontent.com/openai/simple-evals/{UPSTREAM_COMMIT}/healthbench_eval.py"
GRADER_SYSTEM = "You are a helpful assistant."  # simple-evals' OPENAI_SYSTEM_MESSAGE_API
UPSTREAM_GRADER = {"backend": "openai", "model": "gpt-4.1-2025-04-14", "temperature": 0.5, "max_tokens": 2048}
NOT_COMPARABLE = "grader differs from simple-evals: not comparable to the paper's numbers"

# Written for this suite (same content requirements as upstream's template, not its text).
BUILTIN_TEMPLATE = """You are grading one reply of an AI assistant against one item of a rubric written by physicians.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# How to decide
- Grade the last assistant turn of the conversation, read in the context of the turns before it.
- The rubric item starts with its point value in brackets. A positive value marks something a good \
reply does; a negative value marks something a good reply does not do.
- "criteria_met" answers one question only: does the reply do what the criterion describes? For a \
negative-point item this means: did the undesirable thing happen? If the reply does it, criteria_met \
is true (although that costs the reply points); if the reply avoids it, criteria_met is false.
- A criterion with several parts is met only when every part holds; if any part is missing, it is not met.
- Lists introduced by "such as", "for example", "e.g." or "including" are illustrations: the reply \
does not have to cover every listed example to meet the criterion.

# Answer format
Return only a JSON object, with no other text before or after it:
{"explanation": "<one or two sentences on why the criterion is or is not met>", "criteria_met": <true or false>}
"""


@dataclass(frozen=True)
class GraderTemplate:
    """Template text with `<<conversation>>` and `<<rubric_item>>`; `source` says where it came from."""

    text: str
    source: str  # "upstream@<commit>", a file path, or "builtin"
    upstream: bool  # True when the text is simple-evals' (pinned download or a file whose digest matches)


def _literal(node: ast.expr) -> str | None:
    """A string literal, or `"..." .strip()` (upstream's form) with its strip applied; else None."""
    strips = {"strip": str.strip, "lstrip": str.lstrip, "rstrip": str.rstrip}
    if isinstance(node, ast.Call) and not node.args and not node.keywords:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in strips:
            inner = _literal(func.value)
            return None if inner is None else strips[func.attr](inner)
        return None
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def read_grader_template(path: str | Path) -> str:
    """`GRADER_TEMPLATE` of a healthbench_eval.py file, read from its syntax tree (never executed)."""
    path = Path(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "GRADER_TEMPLATE" for t in node.targets
        ):
            text = _literal(node.value)
            if text is None:
                raise ValueError(
                    f"{path}:{node.lineno}: GRADER_TEMPLATE is not a string literal (or one with .strip())"
                )
            break
    else:
        raise ValueError(f"{path}: no module-level GRADER_TEMPLATE = '...' assignment")
    for mark in ("<<conversation>>", "<<rubric_item>>"):
        if mark not in text:
            raise ValueError(f"{path}: GRADER_TEMPLATE has no {mark} placeholder")
    return text


def load_grader_template(source: str = "upstream", cache_dir: str | Path = ".cache") -> GraderTemplate:
    """The grader template: "upstream" (simple-evals at UPSTREAM_COMMIT, downloaded once into
    `cache_dir/healthbench/`, sha256-checked), a path to a healthbench_eval.py file, or "builtin"."""
    import hashlib

    from rvpo_repro.io import download_once

    if source == "builtin":
        return GraderTemplate(BUILTIN_TEMPLATE, "builtin", upstream=False)
    if source == "upstream":
        dest = Path(cache_dir) / "healthbench" / f"healthbench_eval-{UPSTREAM_COMMIT[:12]}.py"
        path = download_once(UPSTREAM_URL, dest, digest=f"sha256:{UPSTREAM_SHA256}")
        return GraderTemplate(read_grader_template(path), f"upstream@{UPSTREAM_COMMIT}", upstream=True)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"grader template source {source!r}: not 'upstream', 'builtin' or a file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return GraderTemplate(read_grader_template(path), str(path), upstream=digest == UPSTREAM_SHA256)


def render_conversation(messages: Sequence[dict]) -> str:
    """simple-evals' rendering: "role: content" per message, joined by blank lines."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def render_rubric_item(item: dict) -> str:
    """simple-evals' rendering of a rubric item: "[points] criterion" (points as in the data)."""
    return f"[{item['points']}] {item['criterion']}"


def grader_messages(
    prompt: Sequence[dict],
    response: str,
    rubric_item: dict,
    template: GraderTemplate | str,
    system: str | None = GRADER_SYSTEM,
) -> list[dict[str, str]]:
    """The messages simple-evals sends to grade `response` to `prompt` on `rubric_item`."""
    text = template.text if isinstance(template, GraderTemplate) else template
    convo = render_conversation([*prompt, {"role": "assistant", "content": response}])
    user = text.replace("<<conversation>>", convo).replace("<<rubric_item>>", render_rubric_item(rubric_item))
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}]


_FENCE = re.compile(r"^```json\s*|\s*```$")


def parse_upstream_verdict(text: str) -> bool:
    """simple-evals' reading of a grader reply: strip a leading ```json and a trailing ``` fence,
    json.loads, and accept only a real boolean `criteria_met`; anything else raises ValueError
    (the judge then asks again, as upstream retries)."""
    if not isinstance(text, str):
        raise ValueError("empty grader reply")
    try:
        obj = json.loads(_FENCE.sub("", text.strip()))
    except json.JSONDecodeError as err:
        raise ValueError(f"grader reply is not JSON after removing the fence: {err}") from err
    label = obj.get("criteria_met") if isinstance(obj, dict) else None
    if label is True or label is False:
        return label
    raise ValueError(f"grader reply has no boolean 'criteria_met' (got {label!r})")


def grader_info(judge_cfg: dict, template: GraderTemplate, training_judge: dict | None = None) -> dict:
    """What the record stores about the grader: model, sampling, template source, and whether the
    numbers are comparable to simple-evals' (same model, sampling, system message and template)."""
    keys = ("backend", "model", "temperature", "max_tokens")
    used = {k: judge_cfg.get(k) for k in keys}
    system = judge_cfg.get("system_message", GRADER_SYSTEM)
    comparable = used == UPSTREAM_GRADER and template.upstream and system == GRADER_SYSTEM
    same = training_judge is not None and all(training_judge.get(k) == used[k] for k in ("backend", "model"))
    notes = [] if comparable else [NOT_COMPARABLE]
    if same:
        notes.append("grader is also the training judge (reward hacking would go unseen)")
    return {
        **used,
        "system_message": system,
        "template": template.source,
        "comparable": comparable,
        "is_training_judge": same,
        "notes": notes,
    }
