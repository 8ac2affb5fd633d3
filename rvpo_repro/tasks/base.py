"""The task interface and its registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rvpo_repro.evals.base import EvalResult
from rvpo_repro.rewards import RewardChannel


class TaskInputError(ValueError):
    """Bad input a user hands a task (data, columns, reward or eval code). The message is one line
    naming the source, column, function or row, so entry points print it without a traceback."""


@dataclass
class TaskData:
    """What a task hands the trainer and the evaluator."""

    train_dataset: Any  # datasets.Dataset with a conversational "prompt" column
    eval_dataset: Any  # datasets.Dataset with "id" and "prompt" columns (+ task fields)
    reward_funcs: list[Callable]  # TRL-style single-channel functions or MultiChannelReward objects
    channels: list[RewardChannel] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # facts about the data for the run record (e.g. truncation)


class Task:
    """Base class. Subclasses set `schema` (a dataclass) and implement `build` and `evaluate`."""

    name: str = ""
    schema: type = object

    def __init__(self, cfg: Any, judge: Any = None, cache_dir: str = ".cache", eval_judge: Any = None):
        # eval_judge: the judge that grades evaluations (HealthBench); None = the training judge
        self.cfg, self.judge, self.cache_dir, self.eval_judge = cfg, judge, cache_dir, eval_judge

    @classmethod
    def prepare_config(cls, cfg: Any) -> None:
        """Check the task's settings and pin into `cfg` what the config alone does not fix (hashes of
        user code and data), before the run is hashed. Called by the entry points; default: nothing."""

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        raise NotImplementedError

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        """Score `generations[i]` (samples for eval example i) and aggregate."""
        raise NotImplementedError


TASKS: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    def deco(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(
                f"task {name!r} is registered twice ({TASKS[name].__module__} and {cls.__module__})"
            )
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def prepare_config(cfg: Any) -> None:
    """`Task.prepare_config` of the task `cfg.task` selects (see there)."""
    name = cfg.task.name
    if name in TASKS:
        TASKS[name].prepare_config(cfg)


def get_task(cfg: Any, judge: Any = None, cache_dir: str = ".cache", eval_judge: Any = None) -> Task:
    """The registered task `cfg.name`; `judge` serves LLM-judged rewards, `eval_judge` grades
    evaluations (None: the training judge), `cache_dir` holds what a task writes for itself."""
    name = cfg["name"] if isinstance(cfg, dict) else cfg.name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}")
    return TASKS[name](cfg, judge=judge, cache_dir=cache_dir, eval_judge=eval_judge)
