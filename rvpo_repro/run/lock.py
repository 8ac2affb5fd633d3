"""Locking a run for its job: one decision for all ranks, and one writer per run directory.

`open_run` decides once per job (rank 0 decides, every rank learns it, see `rvpo_repro.run.ranks`):

    skip     the run's record is sealed: nothing to do
    locked   another live launch is writing the run: every rank exits 75, the other launch goes on
    run      rank 0 holds the run's lock for the whole job; `OpenRun` says where to start:
             the published final model (only evaluation is left), the newest complete checkpoint
             (`rvpo_repro.run.checkpoints`), or nothing (a fresh start)

The lock is an advisory lock file holding the writer's PID (`run_lock`). `flock` locks belong to
the open file, so the kernel drops them when their process dies, however it dies (SIGKILL
included): a lock file left behind by a killed run is stale by construction and the next launch
takes it over. Needs a local file system with working `flock` (not every NFS).

A checkpoint resumes only on the number of ranks that saved it (each step's batches depend on it):
another number is refused in one line naming the launch to use. On Ctrl-C rank 0 says where the
checkpoint is and how to resume; a full disk is one line too. A run that fails or is interrupted
before its first checkpoint removes what it wrote and nothing else (Hydra's log, when
`hydra.run.dir` is the run's own directory, stays).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvpo_repro import progress
from rvpo_repro.config import ConfigError
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.checkpoints import (
    newest_complete,
    newest_sealed,
    published,
    sealed_world_size,
    trained_model,
)
from rvpo_repro.run.errors import RunFailed, RunInterrupted
from rvpo_repro.run.plan import RunPlan
from rvpo_repro.run.ranks import Ranks

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another live process is writing this run directory."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = run_dir, pid
        holder = f"PID {pid}" if pid is not None else "another process"
        super().__init__(f"{run_dir} is being written by {holder}; wait for it to finish or stop it first")

    def __reduce__(self):  # rebuilt from its own arguments where it crosses a process (joblib, submitit)
        return type(self), (self.run_dir, self.pid)


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of `run_dir` (created if needed) for the body; raise RunLockedError, naming
    the holder's PID, when a live process holds it. The lock file is removed on release."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunLockedError(run_dir, pid) from None
        try:  # a holder that just released unlinks the file: lock the one now at `path` instead
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        if (stale := _read_pid(fd)) is not None and stale != os.getpid():
            log.info("taking over the lock of %s left by PID %d, which no longer holds it", run_dir, stale)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):  # the body may have removed the directory
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
        os.close(fd)


@dataclass
class OpenRun:
    """An open run on one rank: the plan, the ranks, and where this launch starts."""

    plan: RunPlan
    ranks: Ranks
    resume: str | None = None  # newest complete checkpoint
    trained: dict | None = None  # summary of the published final model: training is done
    started_at: str = field(default_factory=record_mod.utc_now)


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return _first_difference(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')} ({a!r} on rank 0, {b!r})"


def check_same_config(plan: RunPlan, ranks: Ranks) -> None:
    """Every rank must run the same config: else every rank fails in one line, nothing written."""
    hashes = ranks.gather(plan.config_hash)
    odd = [r for r, h in enumerate(hashes) if h != hashes[0]]
    if not odd:
        return
    configs = ranks.gather(plan.config)
    where = _first_difference(configs[0], configs[odd[0]])
    raise ConfigError(
        f"the ranks of this launch have different configs: rank {odd[0]} differs at {where}; "
        "launch every rank with the same overrides"
    )


def other_world_size(checkpoint: str, world_size: int) -> str | None:
    """Why `checkpoint` cannot resume on `world_size` ranks (None: it can), with the launch to use."""
    saved = sealed_world_size(checkpoint)
    if saved is None or saved == world_size:
        return None
    launch = (
        ["torchrun", "--nproc_per_node", str(saved), "-m", "rvpo_repro.train"]
        if saved > 1
        else ["rvpo-train"]
    )
    return (
        f"{checkpoint} was saved by {saved} rank(s) and this launch has {world_size}: a run resumes on "
        f"the ranks it started with; resume with: {shlex.join([*launch, *sys.argv[1:]])} "
        f"(or move {Path(checkpoint).parent} aside to start afresh)"
    )


def _decide(plan: RunPlan, stack: contextlib.ExitStack, world_size: int) -> dict:
    """Rank 0's decision (see the module docstring); takes the lock into `stack` for `run`."""
    if record_mod.find_finished(plan.run_dir, plan.config_hash) is not None:
        return {"action": "skip"}
    try:
        stack.enter_context(run_lock(plan.run_dir))
    except RunLockedError as exc:
        return {"action": "locked", "pid": exc.pid}
    if record_mod.find_finished(plan.run_dir, plan.config_hash) is not None:  # sealed while we locked
        return {"action": "skip"}
    trained = trained_model(plan.run_dir)
    resume = None if trained else newest_complete(plan.checkpoints, plan.run_dir)
    if resume and (refusal := other_world_size(resume, world_size)):
        return {"action": "refuse", "error": refusal}
    return {"action": "run", "trained": trained, "resume": resume}


def discard_if_unstarted(run_dir: Path, keep: frozenset[str] = frozenset()) -> bool:
    """Remove what the run wrote to `run_dir` when it holds no checkpoint, no final model and no
    record; the entries in `keep` (there before the run opened: Hydra's log and .hydra/ when
    hydra.run.dir is the run directory) stay, and so does `run_dir` then."""
    if (  # sealed is enough here, verified or not (no weights read): a sealed file is never removed
        newest_sealed(run_dir / "checkpoints") is None
        and not published(run_dir)
        and not (run_dir / record_mod.RESULT_FILE).exists()
    ):
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
            return True
        for entry in run_dir.iterdir() if run_dir.is_dir() else ():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        return True
    return False


def hydra_entries(run_dir: Path) -> frozenset[str]:
    """The entries of `run_dir` there now when Hydra's output folder is `run_dir` or inside it
    (they hold Hydra's log of this launch); else none."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not run_dir.is_dir():
        return frozenset()
    output = Path(HydraConfig.get().runtime.output_dir).resolve()
    if not output.is_relative_to(run_dir.resolve()):
        return frozenset()
    return frozenset(os.listdir(run_dir))


def _ending(
    exc: BaseException, run_dir: Path, command: str, keep: frozenset[str], main: bool
) -> BaseException | None:
    """The one-line error to raise for a run that `exc` ended (None: `exc` itself). Rank 0 first
    removes what the run wrote when it holds no checkpoint yet (`discard_if_unstarted`); Ctrl-C says
    where the run stands, a full disk which complete checkpoint is kept, and how to go on."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    if interrupted and not main:
        return None
    discarded = main and discard_if_unstarted(run_dir, keep)
    if interrupted and discarded:
        return RunInterrupted(
            f"interrupted before the first checkpoint; nothing kept. Start again with: {command}"
        )
    if interrupted and published(run_dir):
        return RunInterrupted(f"interrupted after training; evaluation is left. Finish it with: {command}")
    if interrupted:
        ckpt = newest_sealed(run_dir / "checkpoints")  # the next launch verifies it: Ctrl-C ends now
        return RunInterrupted(f"interrupted; last checkpoint: {ckpt}. Resume from it with: {command}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        ckpt = newest_complete(run_dir / "checkpoints", run_dir)
        kept = f"last complete checkpoint: {ckpt}" if ckpt else "no complete checkpoint"
        return RunFailed(
            f"no space left on the device writing {exc.filename or run_dir}; {kept}. Free space, "
            f"then resume with: {command}"
        )
    return None


@contextlib.contextmanager
def open_run(plan: RunPlan, ranks: Ranks, command: str, what: str = "run") -> Iterator[OpenRun | None]:
    """Decide once for every rank (module docstring); yields None when the run is sealed."""
    check_same_config(plan, ranks)
    keep = hydra_entries(plan.run_dir)  # not removed if the run ends before a checkpoint
    with contextlib.ExitStack() as stack:
        decision = _decide(plan, stack, ranks.world_size) if ranks.main else None
        decision = ranks.broadcast(decision)
        if decision["action"] == "refuse":
            raise ConfigError(decision["error"])
        if decision["action"] == "skip":
            log.info(
                "skipping finished %s %s (config %s): %s",
                what,
                plan.run_id,
                plan.config_hash,
                plan.run_dir / record_mod.RESULT_FILE,
            )
            yield None
            return
        if decision["action"] == "locked":
            raise RunLockedError(plan.run_dir, decision["pid"])
        run = OpenRun(plan, ranks, resume=decision["resume"], trained=decision["trained"])
        try:
            yield run
        except BaseException as exc:
            if (ending := _ending(exc, plan.run_dir, command, keep, ranks.main)) is None:
                raise
            raise ending from None
        finally:
            progress.close_all()
