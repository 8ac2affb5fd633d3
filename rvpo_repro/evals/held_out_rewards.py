"""The `rewards` evaluation: a task's own reward channels on held-out prompts.

For rule-based channels (the toy tasks, a user's own rewards) the held-out score is the reward
itself. Per example (mean over its samples): each channel, and `all_constraints`, the share of
samples meeting every binary channel. Metrics: `rewards/<channel>`, `rewards/all_constraints`
and `rewards/bottleneck` (the lowest channel mean on its declared [low, high] range, 0-1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rvpo_repro.evals.base import EvalResult, mean_metric, metric
from rvpo_repro.rewards import RewardChannel

PREFIX = "rewards"


def evaluate_channels(
    ids: Sequence[str],
    generations: Sequence[Sequence[str]],
    channels: Sequence[RewardChannel],
    score: Callable[[int, list[str]], list[list[float | None]]],
) -> EvalResult:
    """Score every sample of every example with `score(example_index, samples) -> (S, K)` values.

    A None value is an absent channel: left out of that channel's mean and, for a binary channel,
    not counted against `all_constraints` (as in training, where NaN marks absence).
    """
    names = [c.name for c in channels]
    binary = [j for j, c in enumerate(channels) if c.binary]
    examples = []
    for i, (ex_id, samples) in enumerate(zip(ids, generations, strict=True)):
        if not samples:
            raise ValueError(f"example {ex_id!r}: no generated samples to score")
        values = score(i, list(samples))
        if len(values) != len(samples) or any(len(v) != len(names) for v in values):
            raise ValueError(
                f"example {ex_id!r}: the reward returned {[len(v) for v in values]} values for "
                f"{len(samples)} samples; expected {len(names)} per sample ({names})"
            )
        row: dict = {"id": ex_id}
        for j, name in enumerate(names):
            present = [v[j] for v in values if v[j] is not None]
            row[name] = sum(present) / len(present) if present else None
        met = [all(v[j] is None or v[j] == channels[j].high for j in binary) for v in values]
        row["all_constraints"] = sum(met) / len(met)
        row["completion"] = samples[0]
        examples.append(row)

    # each entry declares its range, so reports keep the metric's CIs inside it
    metrics = {
        f"{PREFIX}/all_constraints": mean_metric([e["all_constraints"] for e in examples], low=0.0, high=1.0)
    }
    columns = {f"{PREFIX}/all_constraints": "all_constraints"}
    normalised = {}
    for c in channels:
        present = [e[c.name] for e in examples if e[c.name] is not None]
        if present:
            metrics[f"{PREFIX}/{c.name}"] = mean_metric(present, low=c.low, high=c.high)
            columns[f"{PREFIX}/{c.name}"] = c.name
            normalised[c.name] = c.normalise(metrics[f"{PREFIX}/{c.name}"]["value"])
    if normalised:
        worst = min(normalised, key=normalised.get)
        metrics[f"{PREFIX}/bottleneck"] = metric(
            normalised[worst], None, len(examples), channel=worst, low=0.0, high=1.0
        )
    return EvalResult(metrics, examples, columns, primary=f"{PREFIX}/all_constraints")
