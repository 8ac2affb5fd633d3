"""The ranks of one job: who decides, and how every rank learns the decision.

A paper run is one job of several processes (`accelerate launch`, `torchrun`, Slurm tasks). The
job, not the rank, owns the run directory: rank 0 decides (finished? locked? where to resume?),
every rank learns the decision from rank 0, every rank trains, rank 0 alone writes.

`join` starts torch.distributed when the launcher says there are several ranks (WORLD_SIZE > 1),
before TRL does: TRL and accelerate find the process group already initialised and use it. The
default group uses the accelerator's backend (gloo on CPU; NCCL for CUDA tensors plus gloo for
objects on GPU). Decisions travel on a separate gloo group with a long timeout of its own
(`run.rank_wait_hours`), because ranks 1..N-1 wait there while rank 0 evaluates, which can take
longer than the training group's timeout (`trainer.ddp_timeout`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


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
    _JOINED = Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(), group=group)
    return _JOINED
