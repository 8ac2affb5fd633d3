"""Plan, print or launch a paper sweep: `rvpo-sweep` (behind `make sweeps`, `make reproduce-<name>`).

    rvpo-sweep --list
    rvpo-sweep tool_calling --dry-run                  # planned runs, status, cost, commands
    rvpo-sweep tool_calling --launcher slurm           # one Hydra --multirun per model size
    rvpo-sweep healthbench_scaling -- seed=0           # extra Hydra overrides

A sweep is a Hydra config, sweeps/<name>.yaml (config group `sweeps`, on the search path through
conf/train.yaml): its defaults pick the experiment family and `hydra.sweeper.params` holds the
swept values. `rvpo-train -m +sweeps=<name>` runs it as it stands; this module expands it exactly
as Hydra's basic sweeper does (the same override parser, so range(), glob(), choice() and quoting
work), composes every run, prices it, reports which runs are done, and launches one multirun per
model size, since one launch has one GPU request (`accelerate launch --num_processes`, a Slurm
array's `gpus_per_node`).

Finished runs are skipped by rvpo-train itself (a record with the same config hash exists), so a
stopped sweep resumes by running the same command again.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from omegaconf import OmegaConf

from rvpo_repro.config import conf_dir, shipped_dir
from rvpo_repro.sizing.memory import MemoryPlan, plan_memory
from rvpo_repro.sweep.cost import Estimate, estimate
from rvpo_repro.version import version_text

__all__ = ["Job", "Launch", "Sweep", "available", "expand", "load", "main", "plan"]

LAUNCHERS = ("local", "joblib", "slurm", "submitit_local")


def accelerate_config(strategy: str) -> Path:
    """conf/accelerate/<strategy>.yaml of this installation (absolute: a job may start anywhere)."""
    return conf_dir() / "accelerate" / f"{strategy}.yaml"


def sweeps_dirs() -> list[Path]:
    """Where sweeps are looked up, in conf/train.yaml's search-path order: sweeps/ under the
    project root (RVPO_ROOT or the working directory), then the paper sweeps shipped with the suite."""
    dirs = [Path(os.environ.get("RVPO_ROOT", ".")).resolve() / "sweeps", shipped_dir("sweeps")]
    return list(dict.fromkeys(dirs))  # one entry when run from the repository root


def sweep_file(name: str) -> Path | None:
    """The file `+sweeps=<name>` composes: the first sweeps/<name>.yaml on the search path."""
    return next((f for d in sweeps_dirs() if (f := d / f"{name}.yaml").is_file()), None)


def available() -> list[str]:
    return sorted({p.stem for d in sweeps_dirs() for p in d.glob("*.yaml")})


@dataclass
class Sweep:
    name: str
    description: str  # the first line of the file's header comment
    header: str  # the leading comment block
    params: dict[str, str]  # hydra.sweeper.params
    overrides: list[str]  # extra command-line overrides


def load(name: str, overrides: list[str] | None = None) -> Sweep:
    path = sweep_file(name)
    if path is None:
        raise SystemExit(
            f"no sweep '{name}': no {name}.yaml in {' or '.join(map(str, sweeps_dirs()))}; "
            f"known: {', '.join(available()) or 'none'}"
        )
    from rvpo_repro.config import compose

    cfg = compose([f"+sweeps={name}"], return_hydra_config=True)  # overrides may sweep: used in expand
    params = {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
    if not params:
        raise ValueError(f"{path}: hydra.sweeper.params is empty; a sweep names the values it sweeps")
    head = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            head.append(line)
    description = head[0].lstrip("# ").strip() if head else ""
    return Sweep(name, description, "\n".join(head), params, list(overrides or []))


def expand(sweep: Sweep) -> list[list[str]]:
    """Every job's overrides, as Hydra's BasicSweeper forms them: the sweep's params, then the
    command-line overrides (a key given twice keeps the later value), cartesian product in order."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rvpo_repro.config import register_configs

    register_configs()
    args = [f"{k}={v}" for k, v in sweep.params.items()] + [f"+sweeps={sweep.name}", *sweep.overrides]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        (batch,) = BasicSweeper.split_arguments(parser.parse_overrides(args), max_batch_size=None)
    return batch


@dataclass
class Job:
    overrides: list[str]
    cfg: Any  # composed DictConfig, hydra node included
    estimate: Estimate
    status: str  # done | partial | new | conflict | ?
    memory: MemoryPlan | None = None  # each rank's planned peak memory (rvpo_repro.sizing.memory)


@dataclass
class Launch:
    """One Hydra --multirun: the jobs of one model size."""

    model: str
    gpus: int
    accelerate: str | None
    jobs: list[Job]
    command: list[str]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def compose_jobs(jobs: list[list[str]]) -> list[Any]:
    """Compose each job. The seed picks no config option, so jobs that differ only in `seed` are
    composed once and copied (3x faster for 3-seed sweeps)."""

    from rvpo_repro.config import compose

    cache: dict[tuple[str, ...], Any] = {}
    out = []
    for overrides in jobs:
        seed = next((o.split("=", 1)[1] for o in overrides if _key(o) == "seed"), None)
        rest = tuple(o for o in overrides if _key(o) != "seed")
        if rest not in cache:
            cache[rest] = compose(list(rest), return_hydra_config=True)
        cfg = OmegaConf.create(OmegaConf.to_container(cache[rest], resolve=False))
        if seed is not None:
            cfg.seed = int(seed)
        out.append(cfg)
    return out


def run_status(cfg: Any) -> str:

    from rvpo_repro.run import record

    run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    run_dir = record.run_dir(run_cfg)
    try:
        if record.find_finished(run_dir, record.config_hash(run_cfg)) is not None:
            return "done"
    except (record.RecordConflictError, ValueError):
        return "conflict"
    return "partial" if run_dir.exists() else "new"


def accelerate_env(strategy: str) -> dict[str, str]:
    """The ACCELERATE_* variables `accelerate launch --config_file conf/accelerate/<strategy>.yaml`
    exports, computed by accelerate's own launch code, for processes Slurm starts without it."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    config = accelerate_config(strategy)
    if not config.exists():
        raise ValueError(f"no accelerate config {config} (model.accelerate={strategy!r})")
    with mock.patch.dict(os.environ):  # derive from the file alone; the environment is restored after
        for var in [v for v in os.environ if v.startswith("ACCELERATE_")]:
            del os.environ[var]
        args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "rvpo_repro.train"])
        args, defaults, mp_from_config = _validate_launch_command(args)
        if args.use_deepspeed:  # as accelerate's launch_command does before deepspeed_launcher
            fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
            args.deepspeed_fields_from_accelerate_config = ",".join(fields)
            _, env = prepare_deepspeed_cmd_env(args)
        else:
            env = prepare_multi_gpu_env(args)
    return {k: str(v) for k, v in env.items() if k.startswith("ACCELERATE_") and "DYNAMO" not in k}


def launch_command(
    sweep: Sweep, model: str, gpus: int, accelerate: str | None, launcher: str, hours: float, max_hours: float
) -> list[str]:
    """`python -m rvpo_repro.train --multirun +sweeps=<name> model=<model> ...` for one launch."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}; expected one of {LAUNCHERS}")
    where = f"sweep {sweep.name}, model {model}"
    if gpus > 1 and accelerate is None:
        raise ValueError(f"{where}: runs on {gpus} GPUs but the model group names no `accelerate` config")
    if launcher == "joblib" and gpus > 0:
        raise ValueError(
            f"{where}: joblib runs jobs side by side on one machine and each needs {gpus} GPU(s) of its "
            "own; use LAUNCHER=local (one after another) or slurm"
        )
    base = [sys.executable, "-m", "rvpo_repro.train"]
    if launcher == "local" and gpus > 1:  # every rank runs the same job sequence
        config = str(accelerate_config(accelerate))
        base = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config]
        base += ["--num_processes", str(gpus), "-m", "rvpo_repro.train"]
    args = ["--multirun", f"+sweeps={sweep.name}", f"model={model}", *sweep.overrides]
    args.append(f"hydra.sweep.dir=multirun/sweeps/{sweep.name}/{model}/${{now:%Y-%m-%d_%H-%M-%S}}")
    if launcher != "slurm":
        return base + args + [f"+launcher={launcher}"]
    args.append("+launcher=slurm_ddp" if gpus > 1 else "+launcher=slurm")
    args += [f"hydra.launcher.gpus_per_node={gpus}"] if gpus else []
    args.append(f"hydra.launcher.timeout_min={math.ceil(min(max(hours * 1.25, 1.0), max_hours) * 60)}")
    for key, value in accelerate_env(accelerate).items() if gpus > 1 else ():
        # quoted where Hydra would read a bool, null or a list: the variable gets the text verbatim
        value = f'"{value}"' if value.lower() in ("true", "false", "null") or "," in value else value
        args.append(f"++hydra.job.env_set.{key}={value}")
    return base + args


def plan(sweep: Sweep, launcher: str = "local", max_hours: float = 24.0, status: bool = True) -> list[Launch]:
    """The sweep's jobs, composed and priced, grouped into one launch per model size."""
    overrides = expand(sweep)
    jobs = [
        Job(o, c, estimate(c), run_status(c) if status else "?", plan_memory(c))
        for o, c in zip(overrides, compose_jobs(overrides), strict=True)
    ]
    launches: dict[str, list[Job]] = {}
    for job in jobs:
        launches.setdefault(str(job.cfg.model.name), []).append(job)
    out = []
    for model, group in launches.items():
        m = group[0].cfg.model
        gpus, accelerate = int(m.num_gpus), m.accelerate
        hours = max(j.estimate.hours for j in group)
        command = launch_command(sweep, model, gpus, accelerate, launcher, hours, max_hours)
        out.append(Launch(model, gpus, accelerate, group, command))
    return out


def memory_problems(sweep: Sweep, launches: list[Launch]) -> list[str]:
    """One line per block whose plan does not fit its GPUs (the run that does not, the setting to change)."""
    out = []
    for launch in launches:
        bad = next((j for j in launch.jobs if j.memory is not None and j.memory.problem), None)
        if bad is not None:
            out.append(f"sweep {sweep.name}, run {' '.join(bad.overrides)}: {bad.memory.problem}")
    return out


# ------------------------------------------------------------------ entry point
def launch(launches: list[Launch], launcher: str) -> int:
    """Run the launches: one after another, or side by side on Slurm (each command only submits
    its job array and waits for it)."""
    if launcher == "slurm":
        procs = [subprocess.Popen(x.command) for x in launches]
        codes = [p.wait() for p in procs]
    else:
        codes = [subprocess.run(x.command).returncode for x in launches]
    failed = [x.model for x, rc in zip(launches, codes, strict=True) if rc != 0]
    if failed:
        print(
            f"failed: {', '.join(failed)} (rerun the same command: finished runs are skipped)",
            file=sys.stderr,
        )
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="rvpo-sweep",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Hydra overrides after `--` (seed=0, trainer.max_steps=300) apply to every run.",
    )
    parser.add_argument("sweep", nargs="?", help="a file name under sweeps/ without .yaml")
    parser.add_argument("--version", action="version", version=version_text("rvpo-sweep"))
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS)
    parser.add_argument("--dry-run", action="store_true", help="print the plan and commands; start nothing")
    parser.add_argument("--list", action="store_true", help="list the sweeps with their runs and GPU-hours")
    parser.add_argument(
        "--slurm-max-hours",
        type=float,
        default=24.0,
        help="cap of a Slurm job's time limit; longer runs are requeued and resume from a checkpoint",
    )
    args = parser.parse_args(argv)
    if not args.list and not args.sweep:
        parser.error(f"name a sweep ({', '.join(available())}) or pass --list")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    try:
        return _main(args, extra)
    except Exception as exc:  # a config mistake in the overrides after `--`: one line, exit 2
        from rvpo_repro.config_errors import EXIT_CONFIG, describe

        if (line := describe(exc, "train", extra)) is None:
            raise
        print(f"rvpo-sweep: {line}", file=sys.stderr)
        return EXIT_CONFIG


def _main(args: argparse.Namespace, extra: list[str]) -> int:
    from rvpo_repro.sweep.table import describe, grader_totals, total_gpu_hours

    if args.list:
        for name in available():
            sweep = load(name)
            launches = plan(sweep, status=False)
            jobs = [j for x in launches for j in x.jobs]
            _, usd = grader_totals(jobs)
            print(
                f"{name:22s} {len(jobs):3d} runs  {total_gpu_hours(launches):7.0f} GPU-h  "
                f"grader ${usd:7,.0f}  {sweep.description}"
            )
        return 0
    sweep = load(args.sweep, extra)
    launches = plan(sweep, args.launcher, args.slurm_max_hours)
    problems = memory_problems(sweep, launches)
    if args.dry_run or not problems:
        print(describe(sweep, launches, args.launcher), flush=True)
    if problems:  # refused before anything starts; the dry run shows the plans first
        from rvpo_repro.config_errors import EXIT_CONFIG

        print(f"rvpo-sweep: {problems[0]}", file=sys.stderr)
        return EXIT_CONFIG
    return 0 if args.dry_run else launch(launches, args.launcher)


if __name__ == "__main__":
    sys.exit(main())
