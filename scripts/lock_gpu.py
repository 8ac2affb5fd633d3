"""Write requirements/gpu-lock.txt: what pip resolves for `.[gpu]` on CUDA Linux (x86-64, CPython 3.11).

Run on any Linux x86-64 machine with Python 3.11, GPU or not (`make gpu-lock`): pip resolves
without installing (`--dry-run --report`), reading the wheels' metadata. PyPI's Linux torch wheel
is the CUDA build, so the resolution is the one a GPU user gets. deepspeed is left out: it ships
only a source archive that builds against the installed torch, so its version stays the extra's range.

The CPU lock (requirements/cpu-lock.txt) must pin every package both resolutions share to the
version this one gives, so that CPU tests run the stack GPU users install
(tests/test_dependency_locks.py checks it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ONLY = ("deepspeed",)


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [r.split("#")[0].strip() for r in project["dependencies"]]
    reqs += [r for r in project["optional-dependencies"]["gpu"] if not r.startswith(SOURCE_ONLY)]
    return reqs


def resolve(reqs: list[str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # no machine-local caps or extra indexes
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), *reqs]  # fmt: skip
        subprocess.run(cmd, check=True, env=env)
        items = json.loads(report.read_text())["install"]
    # a local build of torch (+cpu) may satisfy the resolution here; GPU users get PyPI's CUDA one
    return {it["metadata"]["name"]: it["metadata"]["version"].split("+")[0] for it in items}


def main() -> None:
    pins = resolve(requirements())
    lines = [
        "# pip's resolution of `.[gpu]` for CUDA Linux x86-64, CPython 3.11 (deepspeed: source only, not pinned).",
        "# Regenerate with: make gpu-lock. requirements/cpu-lock.txt pins every shared package to these versions.",
        *(f"{name}=={pins[name]}" for name in sorted(pins, key=str.lower)),
    ]
    (ROOT / "requirements" / "gpu-lock.txt").write_text("\n".join(lines) + "\n")
    print(f"requirements/gpu-lock.txt: {len(pins)} packages")


if __name__ == "__main__":
    main()
