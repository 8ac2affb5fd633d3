"""Former home of the run's building blocks; they live in `rvpo_repro.run.job`."""

from rvpo_repro.run.checkpoint_eval import checkpoint_eval_callback, read_checkpoint_evals
from rvpo_repro.run.job import (
    build_task,
    evaluate_policy,
    save_result,
    seed_everything,
)

__all__ = [
    "build_task", "checkpoint_eval_callback", "evaluate_policy",
    "read_checkpoint_evals", "save_result", "seed_everything",
]  # fmt: skip
