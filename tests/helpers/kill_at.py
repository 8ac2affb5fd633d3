"""`python tests/helpers/kill_at.py PHASE [rvpo-train overrides]`: rvpo-train that SIGKILLs itself
at one phase of its run, as `kill -9` or an out-of-memory kill would (no cleanup runs), or meets
another fault there (ctrl_c, disk_full).

    step:N     right after optimizer step N, before that step's checkpoint is saved
    hold:N     the same place, but wait there (holding the run) until killed from outside
    PHASE@R    only on rank R of a multi-process launch (e.g. step:4@1)
    save:N     checkpoint-N written by transformers, its completion seal not yet
    publish    the final model saved to model.partial/, not yet published as model/
    evaluate   the final model published; evaluation started
    seal       examples.jsonl written, result.json not yet
    ctrl_c:N   SIGINT to itself right after optimizer step N, as Ctrl-C in its terminal
    disk_full:N  the device is full while checkpoint-N is saved (its optimizer state: ENOSPC)
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from pathlib import Path


def die(*_args, **_kwargs):
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(phase: str) -> None:
    import rvpo_repro.run.checkpoints as checkpoints
    import rvpo_repro.run.evaluation as evaluation
    import rvpo_repro.run.record as record
    import rvpo_repro.run.resume as resume
    import rvpo_repro.run.training as training

    phase, _, rank = phase.partition("@")
    if rank and os.environ.get("RANK", "0") != rank:
        return
    name, _, arg = phase.partition(":")
    if name in ("step", "hold", "ctrl_c"):
        from transformers import TrainerCallback

        act = {
            "step": die,
            "hold": lambda: time.sleep(3600),
            "ctrl_c": lambda: os.kill(os.getpid(), signal.SIGINT),
        }

        class KillAfterStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == int(arg):
                    act[name]()

        base = resume.ResumableTrainer

        class Killing(base):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.add_callback(KillAfterStep())

        resume.ResumableTrainer = Killing
    elif name == "save":
        sealed = checkpoints.seal

        def seal(folder, **kwargs):
            if Path(folder).name == f"checkpoint-{arg}":
                die()
            sealed(folder, **kwargs)

        checkpoints.seal = seal
    elif name == "disk_full":
        import torch

        save = torch.save

        def full_disk(obj, f, *a, **k):
            if isinstance(f, str | os.PathLike) and f"checkpoint-{arg}" in str(f):
                Path(f).write_bytes(b"\0" * 10)  # what fitted before the device filled up
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
            return save(obj, f, *a, **k)

        torch.save = full_disk
    elif name == "publish":
        training.publish_model = die
    elif name == "evaluate":
        evaluation.evaluate_policy = die
    elif name == "seal":
        write = record._atomic_write

        def atomic_write(path, data):
            if Path(path).name == record.RESULT_FILE:
                die()
            return write(path, data)

        record._atomic_write = atomic_write
    else:
        raise SystemExit(f"kill_at: unknown phase {phase!r}")


if __name__ == "__main__":
    # Ctrl-C as a terminal delivers it, even when the tests run as a shell's background job (which
    # starts with SIGINT ignored, and Python then never raises KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    arm(sys.argv[1])
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    from rvpo_repro.train import main

    main()
