"""What the Hydra entry points (`rvpo_repro.train`, `rvpo_repro.evaluate`) share: the config tree
found from anywhere, the suite's `--help` and one-line errors. It imports neither entry point: each
hands its task function to `run_hydra`.

`hydra.main(config_path="../conf")` resolves relative to the module and only worked from a source
checkout; `run_hydra` hands Hydra the absolute config tree of this installation instead
(`config.conf_dir`), so `rvpo-train` and `rvpo-eval` run from any directory, from an editable
install and from a wheel alike.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence

ADDED_GROUPS = ("launcher",)  # not in the defaults list: chosen with `+launcher=...`

HELP = {
    "train": (
        "rvpo-train: train a policy with one reward aggregator, evaluate it, write its run record.",
        [
            "rvpo-train experiment=toy aggregator=rvpo seed=1",
            "rvpo-train -m experiment=toy aggregator=grpo,gdpo,rvpo seed=0,1,2",
            "rvpo-train --cfg job experiment=toy      # print the composed config, run nothing",
        ],
    ),
    "evaluate": (
        "rvpo-eval: evaluate a saved policy on a task's eval set and write a run record.",
        [
            "rvpo-eval experiment=toy checkpoint=results/runs/toy/<run-id>/model",
            "rvpo-eval -m experiment=toy checkpoint=a/model,b/model",
            "rvpo-eval --cfg job experiment=toy checkpoint=some/model",
        ],
    ),
}


def help_text(config_name: str) -> str:
    from rvpo_repro.config import conf_dir, group_options

    what, examples = HELP[config_name]
    conf = conf_dir()
    lines = [what, "", f"Usage: {'rvpo-train' if config_name == 'train' else 'rvpo-eval'} [-m] [--cfg job] "
             "[key=value ...] [group=option ...]", "", f"Config groups ({conf}):"]  # fmt: skip
    for group, options in group_options(conf).items():
        key = f"+{group}=" if group in ADDED_GROUPS else f"{group}="
        lines.append(f"  {key:<12} {', '.join(options)}")
    lines += [
        "",
        "Any key of the composed config can be set (trainer.max_steps=50, aggregator.risk=2.0);",
        "a misspelt key or a value of the wrong type is an error that names the key.",
        "",
        "Examples:",
        *(f"  {e}" for e in examples),
        "",
        "Hydra's own options (multirun, launchers, tab completion): --hydra-help",
    ]
    return "\n".join(lines)


def exit_codes() -> dict[type[BaseException], int]:
    """Errors the entry points report in one line, with their exit status."""
    from rvpo_repro.config import ConfigError
    from rvpo_repro.generation import VLLMStartError
    from rvpo_repro.run.errors import RunFailed
    from rvpo_repro.run.lock import RunLockedError
    from rvpo_repro.run.ranks import RankError
    from rvpo_repro.tasks.base import TaskInputError

    return {
        ConfigError: 2,
        TaskInputError: 2,
        RankError: 2,
        RunFailed: 1,
        VLLMStartError: 1,
        RunLockedError: 75,
        KeyboardInterrupt: 130,
    }


def one_line_errors(task_function: Callable, prog: str) -> Callable:
    """`task_function` with a config error, bad task input (data or user code), a held run lock or
    Ctrl-C reported as one line on stderr and its exit status (`exit_codes`), not a traceback.

    In a multirun, config and input errors and held locks fail only their own job (Hydra logs it
    and the sweep goes on); Ctrl-C stops the sweep. What does not compose (an unknown key, an option
    a swept method does not take) refuses the whole sweep before its first job: Hydra composes them all first.
    """

    @functools.wraps(task_function)
    def job(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        codes = exit_codes()
        try:
            task_function(cfg)
        except tuple(codes) as exc:
            multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            if multirun and not isinstance(exc, KeyboardInterrupt):
                # Hydra raises only the sweep's first failure once every job has ended: each job
                # names its own in one line, in its log and on the console
                logging.getLogger(prog).error("%s", exc)
                raise
            from rvpo_repro.tracking import is_main_process

            if is_main_process():  # one line per job, not one per rank; a bare Ctrl-C has no text
                line = str(exc) or "interrupted before the run opened; nothing kept"
                print(f"{prog}: {line}", file=sys.stderr, flush=True)
            raise SystemExit(next(c for t, c in codes.items() if isinstance(exc, t))) from None

    return job


def run_hydra(task_function: Callable, config_name: str, argv: Sequence[str] | None = None) -> None:
    """Run `task_function(cfg)` under Hydra with this installation's config tree; config mistakes
    in one line (rvpo_repro.config_errors)."""
    import hydra

    from rvpo_repro import config_errors
    from rvpo_repro.config import ConfigError, conf_dir, register_configs

    args = sys.argv[1:] if argv is None else list(argv)
    prog = "rvpo-train" if config_name == "train" else "rvpo-eval"
    if "--help" in args or "-h" in args:
        print(help_text(config_name))
        return
    if "--version" in args:
        from rvpo_repro.version import version_text

        print(version_text(prog))
        return
    try:  # before Hydra writes its output folder: a secret on the command line never reaches disk
        config_errors.refuse_secrets(config_errors.overrides_in(args))
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(config_errors.EXIT_CONFIG) from None
    register_configs()
    if config_errors.wants_resolved(args):
        config_errors.print_resolved(prog, config_name, args)
        return
    if argv is not None:
        sys.argv = [sys.argv[0], *args]
    main = hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")
    overrides = config_errors.overrides_in(args)
    with config_errors.one_line_compose_errors(prog, config_name, overrides, job_errors=exit_codes):
        main(one_line_errors(task_function, prog))()
