"""Weights & Biases run lifecycle: offline by default, always finished, secrets never logged."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def wandb_tags(cfg: Any) -> list[str]:
    return [
        f"model:{cfg.model.name}",
        f"task:{cfg.task.name}",
        f"aggregator:{cfg.aggregator.name}",
        f"seed:{cfg.seed}",
        *cfg.logger.tags,
    ]


@contextlib.contextmanager
def wandb_run(cfg: Any, run_id: str, config: dict) -> Iterator[Any]:
    """Start a W&B run for one job and finish it on every exit path.

    `config` must already be redacted. The run is finished with exit code 1 when the job raises,
    so a crashed job of a multirun leaves a closed run and the sweep goes on.
    Yields None when logging is disabled.
    """
    mode = getattr(cfg.logger.mode, "value", cfg.logger.mode)
    if mode == "disabled":
        yield None
        return
    import wandb

    os.makedirs(cfg.logger.dir, exist_ok=True)
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        dir=cfg.logger.dir,
        mode=mode,
        group=cfg.experiment_name,
        name=run_id,
        tags=wandb_tags(cfg),
        config=config,
        reinit="finish_previous",
    )
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    else:
        run.finish()
