"""Allowed intervals of numeric settings, declared on the schema field they bound.

A dataclass field made with `within(rng, default)` carries its `Range` in its metadata; the config
checker (`rvpo_repro.config.check_ranges`) reads it from the group's schema to refuse a composed
value as `group.key=value: must be ...`, and an aggregator checks its own fields the same way when
built from Python (`rvpo_repro.aggregators.base.Aggregator`). The `trainer` keys, TRL's, have no
schema of the suite's: their ranges are listed here (RANGES), with ranges by key-name pattern for
any key (PATTERN_RANGES). None means "the default" and is never checked.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric setting; None bounds are open-ended."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed
    high_open: bool = False

    def allows(self, v: float) -> bool:
        lo = self.low is None or (v > self.low if self.low_open else v >= self.low)
        hi = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return lo and hi  # NaN fails every comparison, so no bounded range allows it

    def __str__(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        if self.high is None:
            return f"{'>' if self.low_open else '>='} {num(self.low)}"
        lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {lo}{num(self.low)}, {num(self.high)}{hi}"


SEED = Range(0, 2**32 - 1)  # what numpy accepts
POSITIVE, AT_LEAST_1, NON_NEGATIVE = Range(0, low_open=True), Range(1), Range(0)
PROBABILITY = Range(0, 1)
FINITE_NON_NEGATIVE = Range(0, math.inf, high_open=True)
FINITE = Range(-math.inf, math.inf, low_open=True, high_open=True)

_RANGE = "range"  # the metadata key


def within(rng: Range, default: Any) -> Any:
    """A dataclass field with `default` whose values must lie in `rng`."""
    return field(default=default, metadata={_RANGE: rng})


def range_of_field(f: Field) -> Range | None:
    """The Range a field was declared `within`, else None."""
    return f.metadata.get(_RANGE)


@cache
def field_ranges(schema: Any, prefix: str = "") -> dict[str, Range]:
    """{dotted key: Range} of a dataclass schema's bounded fields, those of its nested dataclass
    fields included (`model.tiny.seed`); {} for anything that is not a dataclass."""
    if not is_dataclass(schema):
        return {}
    hints = typing.get_type_hints(schema)
    found: dict[str, Range] = {}
    for f in fields(schema):
        if (rng := range_of_field(f)) is not None:
            found[prefix + f.name] = rng
        elif is_dataclass(hints.get(f.name)):
            found |= field_ranges(hints[f.name], f"{prefix}{f.name}.")
    return found


def out_of_range(key: str, value: Any, rng: Range) -> str | None:
    """`key=value: must be <rng>` when a number lies outside `rng`; None otherwise (and for None,
    booleans and non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or rng.allows(value):
        return None
    return f"{key}={value}: must be {rng}"


# Ranges of the `trainer` keys, TRL's GRPOConfig fields, which have no schema of the suite's. Every
# other group declares its ranges on its schema's fields (`within`: the judge's on
# JudgeConfig for both judge groups, an aggregator's on its method's dataclass). Then, for any key,
# the ranges by key-name pattern below (ints only for counts). A None value means "the default" and
# is not checked.
RANGES: dict[str, Range] = {
    "trainer.num_generations": Range(2),  # a group needs two rollouts to have a spread
    "trainer.num_generations_eval": Range(2),
    "trainer.save_steps": POSITIVE,  # int: steps; float < 1: share of max_steps (TRL)
    "trainer.logging_steps": POSITIVE,
    "trainer.warmup_steps": NON_NEGATIVE,
    "trainer.learning_rate": NON_NEGATIVE,
    "trainer.weight_decay": NON_NEGATIVE,
    "trainer.max_grad_norm": NON_NEGATIVE,
    "trainer.temperature": POSITIVE,  # TRL samples rollouts; 0 would divide the logits by zero
    "trainer.top_k": NON_NEGATIVE,  # 0: off
    "trainer.min_p": PROBABILITY,
    "trainer.repetition_penalty": POSITIVE,
    "trainer.beta": NON_NEGATIVE,
    "trainer.epsilon": POSITIVE,
    "trainer.epsilon_high": POSITIVE,
}
PATTERN_RANGES: tuple[tuple[str, Range, bool], ...] = (  # (regex on the dotted key, range, ints only)
    (r"(^|[._])seed$", SEED, False),
    (r"(^|\.)top_p$", Range(0, 1, low_open=True), False),
    (r"_share$", PROBABILITY, False),
    (r"(^|\.)(num|max)_\w+$", AT_LEAST_1, True),
    (r"(_steps|_samples|_examples|batch_size|_limit|_per_category|_concurrency|_length)$", AT_LEAST_1, True),
)


def range_of(key: str, value: Any, declared: dict[str, Range] | None = None) -> Range | None:
    """The allowed range of the setting `key` (dotted) holding `value`: the one `declared` on its
    schema field (`rvpo_repro.config.schema_ranges`), else RANGES', else a pattern's; None when
    unconstrained."""
    for table in (declared or {}, RANGES):
        if key in table:
            return table[key]
    for pattern, rng, ints_only in PATTERN_RANGES:
        if re.search(pattern, key) and (isinstance(value, int) or not ints_only):
            return rng
    return None


def _leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def first_out_of_range(plain: dict, declared: dict[str, Range] | None = None) -> str | None:
    """The line refusing the first numeric setting of a plain config outside its range
    (`range_of`), or None when every one is allowed."""
    for key, value in _leaves(plain):
        if (rng := range_of(key, value, declared)) is not None and (problem := out_of_range(key, value, rng)):
            return problem
    return None
