"""The run's task on this rank, built before any weights load (its reward probes and column checks
run here): the seeds, the training judge, the evaluation judge (built on first use) and the data.
Both jobs (`rvpo_repro.run.job`) build it the same way."""

from __future__ import annotations

import random
from typing import Any

from omegaconf import DictConfig

from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.base import Task, TaskData


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LazyJudge:
    """The evaluation judge, built on first use: only tasks that grade with it (HealthBench) need
    it, and an API judge reads its key when built, so a toy run never needs OPENAI_API_KEY."""

    def __init__(self, cfg: Any, cache_dir: str):
        self._cfg, self._cache_dir, self._judge = cfg, cache_dir, None

    def __getattr__(self, name: str) -> Any:
        if self._judge is None:
            from rvpo_repro.judges import make_judge

            self._judge = make_judge(self._cfg, self._cache_dir)
        return getattr(self._judge, name)


def eval_judge(cfg: DictConfig) -> LazyJudge | None:
    """`cfg.eval_judge` as a LazyJudge; None when it is off or the same as the training judge
    (the task then grades with the training judge and flags it)."""
    from omegaconf import OmegaConf

    grader = OmegaConf.to_container(cfg.eval_judge, resolve=True)
    if grader.get("backend", "none") == "none" or grader == OmegaConf.to_container(cfg.judge, resolve=True):
        return None
    return LazyJudge(cfg.eval_judge, cfg.paths.cache_dir)


def build_task(cfg: DictConfig, tokenizer: Any) -> tuple[Task, TaskData]:
    from rvpo_repro.judges import make_judge

    judge, grader = make_judge(cfg.judge, cfg.paths.cache_dir), eval_judge(cfg)
    task = get_task(cfg.task, judge=judge, cache_dir=cfg.paths.cache_dir, eval_judge=grader)
    return task, task.build(tokenizer, seed=cfg.seed)
