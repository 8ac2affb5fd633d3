"""Former home of the run's building blocks; they live in `rvpo_repro.run.job`."""

from rvpo_repro.run.job import (
    build_task,
    checkpoint_eval_callback,
    evaluate_policy,
    last_checkpoint,
    read_checkpoint_evals,
    save_result,
    seed_everything,
)

__all__ = [
    "build_task", "checkpoint_eval_callback", "evaluate_policy", "last_checkpoint",
    "read_checkpoint_evals", "save_result", "seed_everything",
]  # fmt: skip
