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


# ---- the GPU install as a GPU user runs it, resolved for CUDA Linux from the package index ----

import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


def _lock_script():
    spec = importlib.util.spec_from_file_location("rvpo_lock_gpu", REQ.parent / "scripts" / "lock_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_lock_is_the_cuda_build():
    """A resolution against a local CPU wheel folder has no CUDA libraries and another triton."""
    gpu = pins(REQ / "gpu-lock.txt")
    assert "triton" in gpu and any(n.startswith("nvidia-cuda-runtime") for n in gpu)
    assert any(n.startswith("nvidia-nccl") for n in gpu) and gpu["deepspeed"]
    text = (REQ / "gpu-lock.txt").read_text(encoding="utf-8")
    assert "+cpu" not in text


def test_documented_gpu_install_lines_translate_to_a_resolution():
    lock = _lock_script()
    commands = lock.install_commands()
    assert any("gpu-lock.txt" in args and "[gpu]" in args for _, args in commands), commands
    assert any(args.startswith("--no-deps bfcl-eval==") for _, args in commands), commands
    reqs, opts = lock.as_compile("-c requirements/gpu-lock.txt -e '.[gpu]'")
    assert reqs == [f"-e {lock.ROOT.resolve()}[gpu]"] and opts == [
        "-c",
        str(lock.ROOT / "requirements/gpu-lock.txt"),
    ]
    with pytest.raises(ValueError, match="--user"):
        lock.as_compile("--user foo")


@pytest.mark.slow
def test_gpu_install_resolves_as_written_for_cuda_linux(tmp_path):
    """`scripts/lock_gpu.py --check`: every documented GPU install command, resolved by uv for CUDA
    Linux x86-64 / CPython 3.11 from the package index (metadata only, seconds)."""
    done = subprocess.run(
        [sys.executable, str(REQ.parent / "scripts" / "lock_gpu.py"), "--check"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("resolves on CUDA Linux") >= 2, done.stdout


@pytest.mark.slow
def test_a_lock_resolved_against_cpu_wheels_fails_the_check():
    """The check is not vacuous: triton as the CPU-wheel resolution pinned it conflicts with torch's CUDA build."""
    lock = _lock_script()
    bad = {**pins(REQ / "gpu-lock.txt"), "triton": "3.9.0"}
    done = lock.compile_for_cuda_linux([f"-e {lock.ROOT}[gpu]", *(f"{n}=={v}" for n, v in bad.items())], [])
    assert done.returncode != 0 and "triton" in done.stderr, done.stderr
