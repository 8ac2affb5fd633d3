"""One process against two gloo ranks at the same global batch: per-step differences and times.

Trains toy_smoke twice from the same seed: one process with 64 completions a step, and
`torchrun --nproc_per_node 2` with 32 a rank (64 a step). TRL samples each rank's completions with
that rank's own generator, so the two runs see different rollouts: the figures show how far apart
the per-step curves land, not a numerical error.

    .venv/bin/python benchmarks/bench_ranks.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
STEPS = 10


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(root: Path, launcher: list[str], per_device: int) -> tuple[list[dict], float]:
    args = [
        "experiment=toy_smoke",
        "logger=disabled",
        f"trainer.max_steps={STEPS}",
        f"model.per_device_train_batch_size={per_device}",
        f"paths.results_dir={root / 'results'}",
        f"paths.cache_dir={root / 'cache'}",
        f"hydra.run.dir={root / 'hydra'}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([*launcher, "-m", "rvpo_repro.train", *args], check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    (history,) = root.glob("results/runs/*/*/log_history.jsonl")
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    return [r for r in rows if "loss" in r and "step" in r], wall


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one, t1 = _train(Path(tmp) / "one", [sys.executable], 64)
        two, t2 = _train(
            Path(tmp) / "two",
            [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port())],
            32,
        )
    print(
        f"toy_smoke, {STEPS} steps, 64 completions a step: 1 process {t1:.1f} s, 2 gloo ranks {t2:.1f} s (wall)"
    )
    for key in ("reward", "loss", "channels/all_constraints"):
        diffs = [abs(a[key] - b[key]) for a, b in zip(one, two, strict=True) if key in a and key in b]
        mean = [a[key] for a in one if key in a]
        print(
            f"  {key:<26} per-step |1 proc - 2 ranks|: mean {sum(diffs) / len(diffs):.4g}, "
            f"max {max(diffs):.4g} (1-proc mean {sum(mean) / len(mean):.4g})"
        )


if __name__ == "__main__":
    main()
