"""The ranks of one job: who decides, and how every rank learns the decision.

A paper run is one job of several processes (`accelerate launch`, `torchrun`, Slurm tasks). The
job, not the rank, owns the run directory: rank 0 decides (finished? locked? where to resume?),
every rank learns the decision from rank 0, every rank trains, rank 0 alone writes.

`join` starts torch.distributed when the launcher says there are several ranks (WORLD_SIZE > 1),
before TRL does: TRL and accelerate find the process group already initialised and use it. The
default group uses the accelerator's backend (gloo on CPU; NCCL for CUDA tensors plus gloo for
objects on GPU). Decisions travel on a separate gloo group with a long timeout of its own
(`run.rank_wait_hours`), because ranks 1..N-1 wait there while rank 0 evaluates, which can take
longer than the training group's timeout (`trainer.ddp_timeout`). Where rank 0 alone works (the
evaluation), `agree` has the other ranks wait for its outcome, so a launch ends the same way on
every rank.

torchrun and accelerate start each rank in a session of its own, so a launcher killed with SIGKILL
would leave its ranks running (and rank 0 holding the run's lock): every rank of a multi-rank job
asks the kernel to kill it when its launcher dies (`die_with_launcher`). The launcher's command
line is also the one to repeat to resume the job (`launch_command`).
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rvpo_repro.run.errors import RunFailed


class RankError(RuntimeError):
    """The ranks of a launch cannot form one job (a rank missing, a different config on one)."""


def env_world_size() -> int:
    value = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        return int(value)
    except ValueError:
        raise RankError(f"environment variable WORLD_SIZE={value!r}: expected an integer") from None


@dataclass
class Ranks:
    """This process's place in the job; `group` is the decision group (None for one process)."""

    rank: int = 0
    world_size: int = 1
    group: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)


_JOINED: Ranks | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_launcher() -> None:
    """SIGKILL this process when its parent (the launcher) dies, however it dies.

    Linux: prctl(PR_SET_PDEATHSIG) (the kernel signals the rank); elsewhere a daemon thread polls
    the parent's PID. A launcher already gone before the request took effect ends the rank now."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent,), name="die-with-launcher", daemon=True).start()
    if parent == 1:  # reparented to init: the launcher died before the request
        os.kill(os.getpid(), signal.SIGKILL)


def _parent_argv() -> list[str]:
    try:
        raw = open(f"/proc/{os.getppid()}/cmdline", "rb").read()  # noqa: SIM115 (one read)
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _as_typed(argv: list[str]) -> list[str]:
    """`python /venv/bin/torchrun ...` as a user types it: `torchrun ...` when that is on PATH."""
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("python") and not argv[1].startswith("-"):
        script, name = argv[1], os.path.basename(argv[1])
        found = shutil.which(name)
        head = name if found and os.path.realpath(found) == os.path.realpath(script) else script
        return [head, *argv[2:]]
    return argv


def launch_command(program: Sequence[str], argv: Sequence[str] | None = None) -> str:
    """The command that launched this job, to repeat it: the launcher's own command line for a
    rank started by torchrun or accelerate launch (torch elastic's TORCHELASTIC_RUN_ID in the
    environment, the launcher as parent); else `program` with this process's arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if env_world_size() > 1 and "TORCHELASTIC_RUN_ID" in os.environ and (parent := _parent_argv()):
        return shlex.join(_as_typed(parent))
    command = shlex.join([*program, *args])
    if env_world_size() > 1:
        return f"{command} (on all {env_world_size()} ranks, as launched)"
    return command


def _default_backend() -> str:
    import torch

    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def join(join_timeout_s: float, wait_hours: float) -> Ranks:
    """The job's ranks, joining torch.distributed once per process when WORLD_SIZE > 1.

    Raises RankError in one line when the other ranks do not join within `join_timeout_s`."""
    global _JOINED
    world = env_world_size()
    if world == 1:
        return Ranks()
    if _JOINED is not None:  # a multirun: the jobs of one process share the group
        return _JOINED
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    die_with_launcher()
    if not dist.is_initialized():
        if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        try:
            dist.init_process_group(_default_backend(), timeout=timedelta(seconds=join_timeout_s))
        except (RuntimeError, TimeoutError) as exc:  # DistStoreError subclasses RuntimeError
            raise RankError(
                f"rank {rank} of {world}: the other ranks did not join at {where} within "
                f"{join_timeout_s:g} s (trainer.ddp_timeout); start all {world} ranks with the same "
                f"launcher ({type(exc).__name__})"
            ) from None
    group = dist.new_group(backend="gloo", timeout=timedelta(hours=wait_hours))
    atexit.register(_leave)
    _JOINED = Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(), group=group)
    return _JOINED


def _leave() -> None:
    """At exit, this rank's process groups go before the interpreter's teardown: left to it, gloo's
    threads can be destroyed while a peer that exited first closes its sockets, and the process
    aborts ("terminate called without an active exception") after a job that finished."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def join_ranks(cfg: Any) -> Ranks:
    """The job's ranks (`join`, with the config's timeouts); ranks 1..N-1 keep their log to warnings on the console (rank 0 writes it)."""
    ranks = join(float(cfg.trainer.get("ddp_timeout", 1800)), float(cfg.run.rank_wait_hours))
    if not ranks.main:  # Hydra (re)attaches its job log file to every rank at each job's start
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    return ranks


def agree(ranks: Ranks, work: Callable[[], Any]) -> Any:
    """Run `work` on rank 0 while the other ranks wait; every rank returns its result or raises.

    The other ranks raise RunFailed with rank 0's one-line error (rank 0 raises the error itself),
    so a launch ends the same way on every rank."""
    if ranks.world_size == 1:
        return work()
    outcome: dict[str, Any] = {}
    if ranks.main:
        try:
            outcome["value"] = work()
        except BaseException as exc:
            ranks.broadcast({"error": f"rank 0: {str(exc) or type(exc).__name__}"})
            raise
        return ranks.broadcast(outcome)["value"]
    outcome = ranks.broadcast(None)
    if "error" in outcome:
        raise RunFailed(outcome["error"])
    return outcome["value"]
