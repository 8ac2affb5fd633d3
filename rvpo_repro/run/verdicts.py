"""How many verdicts the training judge missed, over every rank: a run over the limit is not sealed.

A judge that answers nothing (a wrong API key, a server that is down) turns every reward into a
missing one; training on that is training on nothing. So a step with no usable reward stops the
run at once (`rvpo_repro.rewards.NoUsableRewardError`, raised by the trainer), and a run whose
judge missed more than `run.max_missing_share` of its verdicts fails after training, before its
record is sealed. The record of a finished run states its share (`extra.judge`).
"""

from __future__ import annotations

from typing import Any

from rvpo_repro.run.errors import RunFailed
from rvpo_repro.run.ranks import Ranks


def judge_name(judge: Any) -> str:
    return f"{judge.backend}/{judge.model}" if getattr(judge, "model", "") else str(judge.backend)


def verdict_usage(judge: Any, ranks: Ranks) -> dict | None:
    """The training judge's verdicts and missing verdicts summed over ranks; None without a judge.

    Every rank must call this (it gathers)."""
    local = None
    if judge is not None and getattr(judge, "stats", None) is not None:
        local = (judge.stats.unique, judge.stats.failures, getattr(judge, "first_error", None))
    rows = [r for r in ranks.gather(local) if r is not None]
    if not rows:
        return None
    verdicts, missing = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return {
        "judge": judge_name(judge),
        "verdicts": verdicts,
        "missing": missing,
        "missing_share": missing / verdicts if verdicts else 0.0,
        "first_error": next((r[2] for r in rows if r[2]), None),
    }


def check_missing_share(usage: dict | None, max_share: float, run_dir: Any = None) -> None:
    """Raise RunFailed in one line when the judge missed more than `max_share` of its verdicts.

    Checked before the final model is published: its checkpoints learnt from missing rewards, so
    the message says to start the run afresh once the judge answers."""
    if usage is None or not usage["verdicts"] or usage["missing_share"] <= max_share:
        return
    error = f"; first error: {usage['first_error']}" if usage["first_error"] else ""
    again = f" (delete {run_dir} to train afresh once the judge answers)" if run_dir is not None else ""
    raise RunFailed(
        f"judge {usage['judge']} missed {usage['missing']} of {usage['verdicts']} verdicts "
        f"({usage['missing_share']:.1%}, over run.max_missing_share={max_share:g}); "
        f"nothing sealed{again}{error}"
    )


def no_usable_reward(message: str, judge: Any) -> RunFailed:
    """The one-line failure of a step whose every reward is missing, naming the judge."""
    if judge is None or getattr(judge, "stats", None) is None:
        return RunFailed(f"{message}; nothing sealed")
    stats = judge.stats
    error = getattr(judge, "first_error", None)
    return RunFailed(
        f"{message}: judge {judge_name(judge)} missed {stats.failures} of {stats.unique} verdicts so far"
        + (f" (first error: {error})" if error else "")
        + "; nothing sealed"
    )
