"""Helpers of the engine tests: the environment, running commands, reading what a run left."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# vLLM's CPU engine takes a fixed KV cache (GiB); its default (4) is more than a shared CI box spares.
KV_CACHE_GIB = "1"


def engine_env(cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        RVPO_CACHE=str(cache),
        VLLM_CPU_KVCACHE_SPACE=KV_CACHE_GIB,
        # DeepSpeed's CPU comm op, compiled once by `make engines-venv` into the venv (else ~2 min a run)
        TORCH_EXTENSIONS_DIR=os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch-extensions")
        ),
        PYTHONUNBUFFERED="1",
    )
    env.pop("ACCELERATE_USE_CPU", None)  # it would turn the DeepSpeed configs into DDP
    env.update(extra)
    return env


def run(
    cmd: list[str], env: dict[str, str], timeout: float = 900, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run a command to its end; output kept for the assertion messages."""
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-n:]}\n--- stderr\n{proc.stderr[-n:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def only_record(root: Path) -> tuple[Path, dict]:
    records = sorted(root.glob("results/runs/*/*/result.json"))
    assert len(records) == 1, f"expected one record under {root}/results/runs, found {records}"
    return records[0].parent, json.loads(records[0].read_text())


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def script(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name
