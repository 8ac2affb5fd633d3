"""`rvpo-eval`: evaluate a saved policy on a task's eval set and write a run record.

    rvpo-eval experiment=toy checkpoint=results/runs/toy/RUN_ID/model
    rvpo-eval -m experiment=toy checkpoint=a/model,b/model          # several, as a multirun

The record lands under experiment `<experiment_name>-eval`, keyed by the config hash (which
includes the checkpoint path), so it never overwrites the training run's own record.
Exit codes as `rvpo-train`'s.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from omegaconf import DictConfig

from rvpo_repro.cli import run_hydra


def job(cfg: DictConfig) -> None:
    """The Hydra task of `rvpo-eval`."""
    from rvpo_repro.run.job import evaluate_checkpoint  # heavy imports only once a job runs

    evaluate_checkpoint(cfg, command=shlex.join(["rvpo-eval", *sys.argv[1:]]))


def main(argv: Sequence[str] | None = None) -> None:
    """`rvpo-eval` and `python -m rvpo_repro.evaluate` alike."""
    run_hydra(job, "evaluate", argv)


if __name__ == "__main__":
    main()
