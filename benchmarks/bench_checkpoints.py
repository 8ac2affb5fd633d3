"""The cost of content digests in checkpoint seals: sealing and checking a checkpoint of 1 GiB.

Writes one 1 GiB weight file (seeded bytes) into a temporary checkpoint, then times `seal` (sha256
of every file, as after each save), `why_incomplete` (sizes, then sha256 again, as before a resume
or an evaluation) and `checkpoint_digest`. The file was just written, so it is read from the page
cache, as a seal right after a save reads it; a check before a resume may read it from disk.

    .venv/bin/python benchmarks/bench_checkpoints.py [GiB]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rvpo_repro.run.checkpoints import checkpoint_digest, seal, why_incomplete

CHUNK = 64 << 20


def _write(path: Path, gib: float) -> int:
    rng = np.random.default_rng(0)
    left = int(gib * (1 << 30))
    with path.open("wb") as f:
        while left:
            n = min(CHUNK, left)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n
    return path.stat().st_size


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of `fn()`: on a shared machine the CPU time is the cost, the wall time
    what this machine gave it."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(gib: float = 1.0) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        ckpt = Path(tmp) / "checkpoint-1"
        ckpt.mkdir()
        size = _write(ckpt / "model.safetensors", gib)
        (ckpt / "trainer_state.json").write_text('{"global_step": 1}')
        rows = {
            "seal (hash every file, write the seal)": _timed(lambda: seal(ckpt)),
            "why_incomplete (sizes, then hash again)": _timed(lambda: why_incomplete(ckpt)),
            "checkpoint_digest": _timed(lambda: checkpoint_digest(ckpt)),
        }
        assert why_incomplete(ckpt) is None
    gib = size / (1 << 30)
    print(f"checkpoint of {gib:.2f} GiB (one file + trainer_state.json), page-cached:")
    for name, (wall, cpu) in rows.items():
        print(f"  {name:<42} wall {wall:6.2f} s  cpu {cpu:6.2f} s  ({gib / cpu:4.2f} GiB/s of CPU)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
