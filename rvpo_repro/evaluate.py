"""`rvpo-eval`: evaluate a saved policy on a task's eval set and write a run record.

    rvpo-eval experiment=toy checkpoint=results/runs/toy/RUN_ID/model
    rvpo-eval -m experiment=toy checkpoint=a/model,b/model          # several, as a multirun

The record lands under experiment `<experiment_name>-eval`, keyed by the config hash, so it never
overwrites the training run's own record. The hash holds the sha256 of the checkpoint's files
(`checkpoint_sha256`), not its path: new weights at the same path are evaluated anew, the same
weights elsewhere are not. A checkpoint with a completion seal is checked against it first (one
line and exit 2 when a file changed after it was sealed).
Exit codes as `rvpo-train`'s.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from rvpo_repro.cli import run_hydra


def identify_checkpoint(cfg: DictConfig) -> None:
    """Set `cfg.checkpoint_sha256` to the digest of `cfg.checkpoint`'s files, once its seal (when it
    has one) holds. A folder with no saved model is left for the job to refuse."""
    from rvpo_repro.config import ConfigError
    from rvpo_repro.run.checkpoints import SEAL, checkpoint_digest, contents, why_incomplete

    checkpoint = Path(cfg.checkpoint)
    if not (checkpoint / "config.json").exists():
        return
    files = contents(checkpoint)  # each file read once, for the seal and the digest
    if (checkpoint / SEAL).exists() and (reason := why_incomplete(checkpoint, files)) is not None:
        raise ConfigError(f"checkpoint={checkpoint}: {reason}; not evaluated")
    cfg.checkpoint_sha256 = checkpoint_digest(checkpoint, files)


def job(cfg: DictConfig) -> None:
    """The Hydra task of `rvpo-eval`."""
    from rvpo_repro.run.job import evaluate_checkpoint  # heavy imports only once a job runs

    identify_checkpoint(cfg)
    evaluate_checkpoint(cfg, command=shlex.join(["rvpo-eval", *sys.argv[1:]]))


def main(argv: Sequence[str] | None = None) -> None:
    """`rvpo-eval` and `python -m rvpo_repro.evaluate` alike."""
    run_hydra(job, "evaluate", argv)


if __name__ == "__main__":
    main()
