"""One stack: the CPU lock (what CI and `make install` use) and the GPU lock (what `.[gpu]` resolves
to on CUDA Linux) agree on every package they share, so CPU tests run what GPU users install."""

from __future__ import annotations

import re
from pathlib import Path

REQ = Path(__file__).resolve().parents[1] / "requirements"


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.split("+")[0]
    return out


def test_cpu_and_gpu_locks_agree_on_every_shared_package():
    cpu, gpu = pins(REQ / "cpu-lock.txt"), pins(REQ / "gpu-lock.txt")
    shared = sorted(cpu.keys() & gpu.keys())
    assert len(shared) > 50  # the whole stack, not a handful
    assert {n: (cpu[n], gpu[n]) for n in shared if cpu[n] != gpu[n]} == {}


def test_gpu_lock_holds_the_gpu_stack_at_the_cpu_torch():
    gpu = pins(REQ / "gpu-lock.txt")
    makefile = (REQ.parent / "Makefile").read_text(encoding="utf-8")
    torch = re.search(r"^TORCH_VERSION \?= (\S+)", makefile, re.M).group(1)
    assert gpu["torch"] == torch and gpu["vllm"] == "0.31.0" and gpu["trl"] == "1.16.0"
