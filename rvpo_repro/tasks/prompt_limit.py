"""Prompts longer than the model can take, found before any memory is spent on them.

A prompt is measured as the policy sees it: chat-templated with the generation prompt, in tokens.
The limit is `max_prompt_tokens` when set, else the model's context (`max_position_embeddings`,
or the tokenizer's `model_max_length` when smaller) minus the completion budget
(`trainer.max_completion_length`): a longer prompt leaves no room for its completion, and on a
model without a hard position limit (rotary embeddings) it would run on, growing memory with the
square of its length. The rule `long_prompts`:

    drop     (default) leave such prompts out of training and evaluation; the record states how
             many were dropped per split (`extra.prompt_limit`); a split with none left is refused
    refuse   stop at load, in one line naming the first such row and its length

Nothing is truncated: cutting a chat prompt removes its start (the system message, the question)
or its end (the generation prompt), so the model would be trained on a question it never saw.
"""

from __future__ import annotations

import logging
from typing import Any

from rvpo_repro.tasks.base import TaskInputError

log = logging.getLogger(__name__)
RULES = ("drop", "refuse")
_NO_LIMIT = 10**9  # transformers' "no limit" model_max_length is 1e30


def prompt_tokens(tokenizer: Any, prompt: list[dict]) -> int:
    """Tokens of a chat prompt as generation sees it (chat template + generation prompt)."""
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def context_length(tokenizer: Any) -> int | None:
    """The model's context in tokens: `max_position_embeddings` of the model config beside the
    tokenizer (its `name_or_path`), or the tokenizer's own `model_max_length` when smaller; None when
    neither is known."""
    from transformers import AutoConfig

    limits = []
    own = getattr(tokenizer, "model_max_length", None)
    if isinstance(own, int) and 0 < own < _NO_LIMIT:
        limits.append(own)
    try:
        config = AutoConfig.from_pretrained(tokenizer.name_or_path)
    except (OSError, ValueError):  # no config beside the tokenizer (a bare tokenizer in a test)
        config = None
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits) if limits else None


def prompt_limit(tokenizer: Any, max_prompt_tokens: int | None, completion_tokens: int) -> dict:
    """{"max_prompt_tokens", "context", "completion_tokens", "set_by"}: the limit in force (None:
    unknown, no check) and where it comes from."""
    context = context_length(tokenizer) if tokenizer is not None else None
    limit, set_by = max_prompt_tokens, "task.max_prompt_tokens"
    if limit is None and context is not None:
        limit = context - completion_tokens
        set_by = f"the model's context {context} minus trainer.max_completion_length {completion_tokens}"
        if limit < 1:
            raise TaskInputError(
                f"trainer.max_completion_length={completion_tokens} leaves no room for a prompt in the "
                f"model's context of {context} tokens"
            )
    return {"max_prompt_tokens": limit, "context": context, "completion_tokens": completion_tokens,
            "set_by": set_by}  # fmt: skip


def fit_prompts(
    rows: list[dict], tokenizer: Any, limit: dict, rule: str, where: str
) -> tuple[list[dict], dict]:
    """(the rows whose prompt fits `limit["max_prompt_tokens"]`, facts {"rows", "dropped",
    "longest"}) under `rule` (module docstring); TaskInputError names the source and row."""
    if rule not in RULES:
        raise TaskInputError(f"task.long_prompts={rule!r}: expected one of {list(RULES)}")
    cap = limit["max_prompt_tokens"]
    facts = {"rows": len(rows), "dropped": 0, "longest": 0}
    if cap is None or tokenizer is None:
        return rows, facts
    kept = []
    for i, row in enumerate(rows):
        n = prompt_tokens(tokenizer, row["prompt"])
        facts["longest"] = max(facts["longest"], n)
        if n <= cap:
            kept.append(row)
            continue
        if rule == "refuse":
            raise TaskInputError(
                f"{where} row {i} (id {row.get('id')!r}): prompt of {n} tokens, over the limit of {cap} "
                f"({limit['set_by']}); shorten it, or set task.long_prompts=drop to leave such prompts out"
            )
        facts["dropped"] += 1
    if facts["dropped"]:
        log.warning("%s: dropped %d of %d prompts over %d tokens (%s)", where, facts["dropped"], len(rows),
                    cap, limit["set_by"])  # fmt: skip
    if not kept:
        raise TaskInputError(
            f"{where}: every prompt is over the limit of {cap} tokens ({limit['set_by']}; the longest has "
            f"{facts['longest']}); nothing is left to train or evaluate on"
        )
    return kept, facts
