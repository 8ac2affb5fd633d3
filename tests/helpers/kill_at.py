"""`python tests/helpers/kill_at.py PHASE [rvpo-train overrides]`: rvpo-train that SIGKILLs itself
at one phase of its run, as `kill -9` or an out-of-memory kill would (no cleanup runs).

    step:N     right after optimizer step N, before that step's checkpoint is saved
    hold:N     the same place, but wait there (holding the run) until killed from outside
    PHASE@R    only on rank R of a multi-process launch (e.g. step:4@1)
    save:N     checkpoint-N written by transformers, its completion seal not yet
    publish    the final model saved to model.partial/, not yet published as model/
    evaluate   the final model published; evaluation started
    seal       examples.jsonl written, result.json not yet
"""

from __future__ import annotations

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
    import rvpo_repro.run.job as job
    import rvpo_repro.run.record as record
    import rvpo_repro.run.resume as resume

    phase, _, rank = phase.partition("@")
    if rank and os.environ.get("RANK", "0") != rank:
        return
    name, _, arg = phase.partition(":")
    if name in ("step", "hold"):
        from transformers import TrainerCallback

        class KillAfterStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == int(arg):
                    die() if name == "step" else time.sleep(3600)

        base = resume.ResumableTrainer

        class Killing(base):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.add_callback(KillAfterStep())

        resume.ResumableTrainer = Killing
    elif name == "save":
        sealed = checkpoints.seal

        def seal(folder):
            if Path(folder).name == f"checkpoint-{arg}":
                die()
            sealed(folder)

        checkpoints.seal = seal
    elif name == "publish":
        job.publish_model = die
    elif name == "evaluate":
        job.evaluate_policy = die
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
    arm(sys.argv[1])
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    from rvpo_repro.train import main

    main()
