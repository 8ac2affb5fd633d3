"""Allowed intervals of numeric settings, declared on the schema field they bound.

A dataclass field made with `within(rng, default)` carries its `Range` in its metadata; the config
checker (`rvpo_repro.config.check_ranges`) reads it from the group's schema to refuse a composed
value as `group.key=value: must be ...`, and an aggregator checks its own fields the same way when
built from Python (`rvpo_repro.aggregators.base.Aggregator`). None means "the default" and is never
checked.
"""

from __future__ import annotations

import math
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
