"""A user's own reward and evaluation functions, named by import path in the config.

`resolve("my_rewards:has_number")` (or `my_rewards.has_number`) imports from the working directory
and `sys.path`. Every check raises `TaskInputError` with one line naming the function, the
parameter, the column or the row:

    check_signature   it can take TRL's keyword call (prompts, completions, **columns)
    missing_columns   every parameter it requires is a column of the data (or a TRL argument)
    CheckedReward     wraps a function: passes only the keywords it accepts; checks what it returns
    CheckedMultiReward   the same around a MultiChannelReward (K values per completion)
    source_hash       sha256 of the code, entered into the config so a changed reward re-runs
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import numbers
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rvpo_repro.rewards import MultiChannelReward, out_of_domain
from rvpo_repro.tasks.base import TaskInputError

# Keywords TRL passes to every reward function besides the data columns (GRPOTrainer._calculate_rewards).
TRL_KWARGS = (
    "prompts",
    "completions",
    "completion_ids",
    "trainer_state",
    "log_extra",
    "log_metric",
    "environments",
)
_KINDS_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _import_module(name: str, path: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise
        raise TaskInputError(f"{path!r}: importing module {name!r} failed: {_first_line(exc)}") from exc
    except Exception as exc:  # the user's module itself raised while importing
        raise TaskInputError(f"{path!r}: importing module {name!r} failed: {_first_line(exc)}") from exc


def resolve(path: str) -> Any:
    """The object at `package.module:attr` or `package.module.attr` (attr may be dotted: Class.method).

    The working directory is searched first, as `python -m` does, so a module beside the data resolves
    when the suite runs from an installed console script."""
    if not isinstance(path, str) or not path.strip():
        raise TaskInputError(
            f"import path {path!r}: expected 'package.module:function' or 'package.module.function'"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if ":" in path:
        module_name, attrs = path.split(":", 1)
        splits = [(module_name, attrs.split("."))] if module_name and attrs else []
    else:  # the longest importable prefix is the module
        parts = path.split(".")
        splits = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    if not splits:
        raise TaskInputError(
            f"import path {path!r}: expected 'package.module:function' or 'package.module.function'"
        )
    for module_name, attrs in splits:
        try:
            obj = _import_module(module_name, path)
        except ModuleNotFoundError:
            continue
        for i, attr in enumerate(attrs):
            if not hasattr(obj, attr):
                owner = ".".join([module_name, *attrs[:i]])
                raise TaskInputError(f"import path {path!r}: {owner!r} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise TaskInputError(
        f"import path {path!r}: no module {splits[-1][0]!r} importable from the working directory "
        f"({cwd}) or sys.path"
    )


def check_signature(func: Callable, label: str) -> inspect.Signature:
    """The signature of `func`, if TRL's keyword call can reach it; else TaskInputError."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TaskInputError(f"{label}: cannot read its signature ({_first_line(exc)})") from exc
    params = list(sig.parameters.values())
    for p in params:
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty:
            raise TaskInputError(
                f"{label}: parameter {p.name!r} is positional-only; rewards are called by keyword "
                f"(prompts=..., completions=..., <column>=...)"
            )
    if (
        not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        and "completions" not in sig.parameters
    ):
        raise TaskInputError(
            f"{label}: signature {sig} takes neither `completions` nor **kwargs; expected "
            f"(prompts, completions, **columns) -> list[float | None]"
        )
    return sig


def accepted_keywords(sig: inspect.Signature) -> set[str] | None:
    """Keywords a call may pass; None when it takes **kwargs (then everything goes)."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {p.name for p in sig.parameters.values() if p.kind in _KINDS_BY_NAME}


def missing_columns(sig: inspect.Signature, columns: Sequence[str]) -> list[str]:
    """Required parameters that neither TRL nor a data column supplies."""
    supplied = set(TRL_KWARGS) | set(columns)
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind in _KINDS_BY_NAME and p.default is p.empty and p.name not in supplied
    ]


def _row_name(i: int, kwargs: dict) -> str:
    ids = kwargs.get("id")
    if isinstance(ids, Sequence) and not isinstance(ids, str) and i < len(ids):
        return f"row {i} (id {ids[i]!r})"
    return f"row {i}"


def check_value(value: Any, label: str, where: str) -> float | None:
    """A reward value as float (None = absent); bool counts as 0/1. Anything else, and a number
    outside the reward domain (NaN, ±inf, beyond ±MAX_ABS_REWARD: rewards.out_of_domain), is a
    TaskInputError naming the function and the row."""
    if value is None:
        return None
    if isinstance(value, numbers.Real):  # bool, int, float, numpy scalars
        number = float(value)
        if why := out_of_domain(number):
            raise TaskInputError(f"{label}: returned {why} for {where}; expected a finite number or None")
        return number
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return check_value(value.item(), label, where)  # 0-d tensor or array
    raise TaskInputError(
        f"{label}: returned {value!r} ({type(value).__name__}) for {where}; expected a number or None"
    )


def check_values(out: Any, n: int, label: str, kwargs: dict) -> list[float | None]:
    """One float or None per completion, else TaskInputError naming the row."""
    if isinstance(out, str | bytes | dict) or not hasattr(out, "__len__") or not hasattr(out, "__iter__"):
        raise TaskInputError(
            f"{label}: returned {type(out).__name__} {str(out)[:60]!r}; expected a list of one number per completion"
        )
    if len(out) != n:
        raise TaskInputError(
            f"{label}: returned {len(out)} values for {n} completions; expected one per completion"
        )
    return [check_value(v, label, _row_name(i, kwargs)) for i, v in enumerate(out)]


def _call_kwargs(accepts: set[str] | None, prompts: list, completions: list, kwargs: dict) -> dict:
    call = {"prompts": prompts, "completions": completions, **kwargs}
    return call if accepts is None else {k: v for k, v in call.items() if k in accepts}


class CheckedReward:
    """A user's single-channel reward as TRL calls it, under the channel's name."""

    def __init__(self, func: Callable, name: str, label: str):
        self.func, self.__name__, self.label = func, name, label
        self.signature = check_signature(func, label)
        self.accepts = accepted_keywords(self.signature)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        out = self.func(**_call_kwargs(self.accepts, prompts, completions, kwargs))
        return check_values(out, len(completions), self.label, kwargs)


class CheckedMultiReward(MultiChannelReward):
    """A user's MultiChannelReward with the same keyword filtering and return checks."""

    def __init__(self, inner: MultiChannelReward, label: str):
        self.inner, self.label = inner, label
        self.channels = list(inner.channels)
        if not self.channels:
            raise TaskInputError(f"{label}: a MultiChannelReward with no `channels`")
        self.signature = check_signature(inner.score, f"{label}.score")
        self.accepts = accepted_keywords(self.signature)

    def score(self, prompts: list, completions: list, **kwargs: Any) -> list[list[float | None]]:
        rows = self.inner.score(**_call_kwargs(self.accepts, prompts, completions, kwargs))
        if not hasattr(rows, "__len__") or len(rows) != len(completions):
            got = len(rows) if hasattr(rows, "__len__") else type(rows).__name__
            raise TaskInputError(
                f"{self.label}: score returned {got} rows for {len(completions)} completions; expected one per completion"
            )
        k = len(self.channels)
        out = []
        for i, row in enumerate(rows):
            if not hasattr(row, "__len__") or len(row) != k:
                raise TaskInputError(
                    f"{self.label}: score returned {row!r} for {_row_name(i, kwargs)}; expected {k} values "
                    f"(channels {[c.name for c in self.channels]})"
                )
            names = [c.name for c in self.channels]
            out.append(
                [
                    check_value(v, self.label, f"{_row_name(i, kwargs)}, channel {names[j]!r}")
                    for j, v in enumerate(row)
                ]
            )
        return out


def _call(build: Callable, kwargs: dict, failed: str) -> Any:
    """`build(**kwargs)`, its error reported as one line after `failed`."""
    try:
        return build(**kwargs)
    except Exception as exc:
        raise TaskInputError(f"{failed} {_first_line(exc)}") from exc


def build_reward(obj: Any, path: str, kwargs: dict, factory: bool) -> Callable | MultiChannelReward:
    """A resolved object -> a reward: a MultiChannelReward subclass (constructed with `kwargs`) or
    instance, a factory's product (`factory`: called with `kwargs`), or a function (`kwargs` bound)."""
    label = f"reward {path!r}"
    if factory:
        if not callable(obj):
            raise TaskInputError(
                f"{label}: factory: true, but it resolves to a {type(obj).__name__}, not a callable"
            )
        obj, kwargs = _call(obj, kwargs, f"{label}: the factory raised"), {}
    elif isinstance(obj, type):
        if not issubclass(obj, MultiChannelReward):
            raise TaskInputError(
                f"{label}: a class that is not a rvpo_repro.rewards.MultiChannelReward; set factory: true "
                f"if calling it builds the reward"
            )
        obj, kwargs = _call(obj, kwargs, f"{label}: constructing it raised"), {}
    if isinstance(obj, MultiChannelReward):
        if kwargs:
            raise TaskInputError(
                f"{label}: kwargs apply to a class, a factory or a function, not an instance"
            )
        return obj
    if not callable(obj):
        raise TaskInputError(f"{label}: resolves to a {type(obj).__name__}, not a reward function")
    if kwargs:
        sig = check_signature(obj, label)
        accepts = accepted_keywords(sig)
        if unknown := sorted(k for k in kwargs if accepts is not None and k not in accepts):
            raise TaskInputError(f"{label}: kwargs {unknown} are not parameters of {sig}")
        bound = functools.partial(obj, **kwargs)
        functools.update_wrapper(bound, obj)
        return bound
    return obj


def _file_digest(file: str | None) -> str | None:
    if file and file.endswith(".py") and Path(file).is_file():
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()
    return None


def source_hash(path: str, obj: Any) -> str:
    """sha256 of the code behind import path `path`: the source file of the module it names and, when
    the object is defined elsewhere (re-exported), of that module's file too. A whole file rather than
    the function's own lines, since helpers and constants beside it change what it computes; the
    object's own source (inspect.getsource) where no file exists."""
    module_name = path.split(":", 1)[0] if ":" in path else None
    owners = [sys.modules.get(module_name)] if module_name else []
    target = obj.func if isinstance(obj, functools.partial) else obj
    defining = inspect.getmodule(target if callable(target) or isinstance(target, type) else type(target))
    owners.append(defining)
    digests = []
    for module in dict.fromkeys(m for m in owners if m is not None):
        digest = _file_digest(getattr(module, "__file__", None))
        if digest:
            digests.append(digest)
    if not digests:
        try:
            src = inspect.getsource(target if callable(target) else type(target))
        except (OSError, TypeError) as exc:
            raise TaskInputError(
                f"{path!r}: no source to hash ({_first_line(exc)}); define it in a .py module"
            ) from exc
        digests.append(hashlib.sha256(src.encode()).hexdigest())
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
