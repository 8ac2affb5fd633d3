"""What every evaluation returns: metrics, one row per example, and which column makes which metric.

An evaluation is data -> per-example scores -> aggregate. `EvalResult.columns` declares, for each
metric, the per-example column whose mean over the examples is that metric, so the statistics can
pair runs example by example without guessing. Metric names read `<eval>/<metric>`
(`rewards/all_constraints`, `healthbench/score`, `gpqa/accuracy`, `bfcl/overall`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class EvalResult:
    metrics: dict[str, dict]  # name -> {"value", "stderr", "n", ...} (see `metric`)
    examples: list[dict]  # one row per eval example: "id", scores, sub-scores
    columns: dict[str, str] = field(default_factory=dict)  # metric -> example column (mean = metric)
    primary: str | None = None  # the metric a report tests first


def mean_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and its standard error (sample sd / sqrt(n)); stderr None for fewer than two values."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_stderr of no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1) / n)


def metric(value: float, stderr: float | None = None, n: int | None = None, **extra) -> dict:
    """One metric entry: {"value", "stderr", "n"} plus any extra keys (e.g. "channel")."""
    return {
        "value": float(value),
        "stderr": None if stderr is None else float(stderr),
        "n": None if n is None else int(n),
        **extra,
    }


def mean_metric(values: Sequence[float], **extra) -> dict:
    """`metric` of the mean of `values`, with its standard error and n."""
    mean, se = mean_stderr(values)
    return metric(mean, se, len(values), **extra)
