"""`rvpo-train`: compose a config, train with the chosen aggregator, evaluate, write the run record.

rvpo-train                                    # tiny model, toy_constraints, rvpo
rvpo-train aggregator=gdpo seed=1
rvpo-train -m aggregator=grpo,gdpo,rvpo seed=0,1,2    # Hydra multirun

Exit codes: 0 done (or already done), 2 a config error or bad task input (one line naming the
key, file, row or function), 75 another process is writing this run (one line naming its PID),
130 interrupted (one line: where the checkpoint is and how to resume). See rvpo_repro.cli.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from rvpo_repro.cli import run_hydra


def _command() -> str:
    """The command to repeat to resume: the launcher's own line for a job of several ranks."""
    from rvpo_repro.run.ranks import launch_command

    return launch_command(["rvpo-train"])


def job(cfg: DictConfig) -> None:
    """The Hydra task of `rvpo-train`."""
    # torch, TRL and the models load only here, so `--help`, `--cfg job` and tab completion stay fast
    from rvpo_repro.run.job import train_and_evaluate

    train_and_evaluate(cfg, command=_command())


def main(argv: Sequence[str] | None = None) -> None:
    """`rvpo-train` and `python -m rvpo_repro.train` (the Makefile's targets) alike."""
    run_hydra(job, "train", argv)


if __name__ == "__main__":
    main()
