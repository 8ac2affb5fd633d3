"""Back-end registry and the `make_judge(cfg)` factory."""

from __future__ import annotations

import os
from typing import Any

from rvpo_repro.judges.base import Judge, option
from rvpo_repro.judges.cache import JudgeCache

NONE = "none"  # the backend value that means "no judge"
JUDGES: dict[str, type[Judge]] = {}


def register_judge(name: str):
    """Class decorator adding a back end under `name`; a second registration of a name is an error."""

    def deco(cls: type[Judge]) -> type[Judge]:
        if name == NONE or name in JUDGES:
            owner = "reserved" if name == NONE else JUDGES[name].__qualname__
            raise ValueError(f"judge backend {name!r} is already registered ({owner})")
        cls.backend = name
        JUDGES[name] = cls
        return cls

    return deco


def known_backends() -> list[str]:
    return sorted([NONE, *JUDGES])


def make_judge(cfg: Any, cache_dir: str | os.PathLike | None = None) -> Judge | None:
    """The judge `cfg` (a JudgeConfig or its DictConfig) describes; None for backend 'none'.

    `cache_dir` is where suite-built models live (the hf back end's model "tiny"); it defaults
    to $RVPO_CACHE or ./.cache, as `paths.cache_dir` does.
    """
    backend = str(option(cfg, "backend", NONE))
    if backend == NONE:
        return None
    if backend not in JUDGES:
        raise ValueError(f"unknown judge backend {backend!r}; expected one of {known_backends()}")
    if cache_dir is None:
        cache_dir = os.environ.get("RVPO_CACHE", ".cache")
    judge = JUDGES[backend].from_config(cfg, cache_dir=str(cache_dir))
    judge.system_message = option(cfg, "system_message")  # every back end, read in one place
    return judge


def cache_from_config(cfg: Any) -> JudgeCache | None:
    path = option(cfg, "cache_path", None)
    return JudgeCache(path) if path else None
