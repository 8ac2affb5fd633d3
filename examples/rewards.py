"""Two rule-based rewards that pull against each other, in TRL's reward signature.

`mentions_number` wants a digit in the answer; `only_letters` wants nothing but letters and spaces.
A digit costs letters-share, so averaging the two lets a policy trade the number away: the constraint
neglect RVPO's softmin is meant to prevent. `answer_length` is an extra evaluation (not trained on).
"""


def _text(completion):
    # TRL hands chat completions as [{"role": "assistant", "content": ...}]; plain ones as text.
    return completion if isinstance(completion, str) else "".join(m["content"] for m in completion)


def mentions_number(prompts, completions, **kwargs):
    """1 if the answer contains a digit, else 0 (a binary constraint)."""
    return [float(any(ch.isdigit() for ch in _text(c))) for c in completions]


def only_letters(prompts, completions, **kwargs):
    """Share of the answer's characters that are ASCII letters or spaces, in [0, 1]."""
    out = []
    for c in completions:
        text = _text(c)
        out.append(
            sum(ch.isascii() and (ch.isalpha() or ch == " ") for ch in text) / len(text) if text else 0.0
        )
    return out


def answer_length(prompts, completions, **kwargs):
    """Characters in the answer (an evaluation-only score)."""
    return [float(len(_text(c))) for c in completions]
