"""The toy_smoke run the tests start: its overrides and the environment of its processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def toy_smoke_overrides(root: Path, cache_dir: Path, *extra: str, process: bool = True) -> list[str]:
    """Overrides of a toy_smoke run kept under `root` with the session cache. `process`: for a
    command line (Hydra's run folder under `root`); else for `compose` in this process, which has
    no Hydra run folder (`paths.output_dir` instead). Later overrides win."""
    where = f"hydra.run.dir={root / 'hydra'}" if process else f"paths.output_dir={root / 'out'}"
    return [
        "experiment=toy_smoke",
        "logger=disabled",
        f"paths.results_dir={root / 'results'}",
        f"paths.cache_dir={cache_dir}",
        where,
        *extra,
    ]


def process_env(**extra: str) -> dict[str, str]:
    """This environment for a run's process: offline, unbuffered output."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` of a launcher a test interrupts: SIGINT back to its default. A shell's background
    job (`make test &`) starts with SIGINT ignored, and an interpreter started so never sees Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
