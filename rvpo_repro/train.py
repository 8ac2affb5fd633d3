"""`rvpo-train`: compose a config, train with the chosen aggregator, evaluate, write the run record.

rvpo-train                                    # tiny model, toy_constraints, rvpo
rvpo-train aggregator=gdpo seed=1
rvpo-train -m aggregator=grpo,gdpo,rvpo seed=0,1,2    # Hydra multirun

Exit codes: 0 done (or already done), 2 a config error (one line naming the key), 75 another
process is writing this run (one line naming its PID), 130 interrupted (one line: where the
checkpoint is and how to resume).
"""

from __future__ import annotations

import shlex
import sys

from omegaconf import DictConfig

from rvpo_repro.cli import run_hydra
from rvpo_repro.config import ConfigError
from rvpo_repro.run.job import RunInterrupted, grpo_args, train_and_evaluate  # noqa: F401
from rvpo_repro.run.lock import RunLockedError

EXIT_CODES: dict[type[BaseException], int] = {ConfigError: 2, RunLockedError: 75, KeyboardInterrupt: 130}


def exit_on_known_error(run, cfg: DictConfig, prog: str) -> None:
    """Call `run(cfg)`; a config error, a held lock or Ctrl-C ends the process with one line on
    stderr and its exit code (EXIT_CODES). In a multirun, config errors and held locks fail only
    their own job, so the rest of the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        run(cfg)
    except (ConfigError, RunLockedError, KeyboardInterrupt) as exc:
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        if multirun and not isinstance(exc, KeyboardInterrupt):
            raise
        code = next(c for t, c in EXIT_CODES.items() if isinstance(exc, t))
        print(f"{prog}: {exc or 'interrupted'}", file=sys.stderr, flush=True)
        raise SystemExit(code) from None


def _command() -> str:
    return shlex.join(["rvpo-train", *sys.argv[1:]])


def job(cfg: DictConfig) -> None:
    """The Hydra task of `rvpo-train` (rvpo_repro.cli.train)."""
    exit_on_known_error(lambda c: train_and_evaluate(c, command=_command()), cfg, "rvpo-train")


def main() -> None:
    run_hydra(job, "train")


if __name__ == "__main__":
    main()
