"""Write requirements/gpu-lock.txt: what the package index resolves for `.[gpu]` on CUDA Linux
(x86-64, manylinux_2_28, CPython 3.11), and check that the GPU install commands resolve there.

uv resolves for a platform other than the one it runs on, from the index's metadata alone, so
this runs on any machine (`make gpu-lock`, seconds, no GPU). Machine-local package sources are
kept out: `--no-config`, and no find-links or extra index from the environment (pip's
PIP_FIND_LINKS here points at a folder of CPU wheels, which once put `torch 2.13.0+cpu` into this
lock and made it uninstallable on a GPU machine). PyPI's Linux torch wheel is the CUDA build, so
the resolution is the one a GPU user gets.

The resolution is constrained by requirements/cpu-lock.txt, so every package the two share has
one version (tests/test_dependency_locks.py) and the CPU tests run the stack GPU users install.

    python scripts/lock_gpu.py            # rewrite requirements/gpu-lock.txt
    python scripts/lock_gpu.py --check    # resolve the documented GPU install commands; exit 1 on a conflict
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "gpu-lock.txt"
CPU_LOCK = ROOT / "requirements" / "cpu-lock.txt"
PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")
# Where the GPU install commands are written for users: the README and the manual.
DOCS = ("README.md", "docs/**/*.md")
INSTALL_LINE = re.compile(r"^\s*pip install (.*(?:gpu-lock\.txt|bfcl-eval).*)$")
# Variables through which a machine's own package sources would reach the resolver.
LOCAL_SOURCES = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONFIG_FILE",
                 "UV_FIND_LINKS", "UV_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_INDEX", "UV_CONFIG_FILE")  # fmt: skip


def uv() -> str:
    from uv import find_uv_bin  # the `uv` wheel (a [dev] dependency)

    return find_uv_bin()


def compile_for_cuda_linux(requirements: list[str], args: list[str]) -> subprocess.CompletedProcess:
    """`uv pip compile` of `requirements` (lines of a requirements file) for CUDA Linux."""
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_SOURCES}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "requirements.in"
        src.write_text("\n".join(requirements) + "\n")
        cmd = [uv(), "pip", "compile", str(src), *PLATFORM, "--no-config", "--no-header", "--quiet", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def pins_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.strip()] = version.strip()
    return out


def install_commands() -> list[tuple[str, str]]:
    """(file:line, the arguments after `pip install`) of every documented GPU install command."""
    found = []
    for pattern in DOCS:
        for path in sorted(ROOT.glob(pattern)):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if m := INSTALL_LINE.match(line.split(" #")[0]):
                    found.append((f"{path.relative_to(ROOT)}:{n}", m.group(1).strip()))
    return found


def as_compile(pip_args: str) -> tuple[list[str], list[str]]:
    """`pip install` arguments as (requirement lines, uv pip compile options): `-e .[gpu]` is the
    project at this checkout, `-c FILE` a constraint file, `--no-deps` stays."""
    reqs, opts = [], []
    words = iter(shlex.split(pip_args))
    for word in words:
        if word in ("-c", "--constraint"):
            opts += ["-c", str(ROOT / next(words))]
        elif word == "--no-deps":
            opts.append("--no-deps")
        elif word in ("-e", "--editable"):
            target = next(words)
            path, _, extras = target.partition("[")
            reqs.append(f"-e {(ROOT / path).resolve()}" + (f"[{extras}" if extras else ""))
        elif word.startswith("-"):
            raise ValueError(f"pip install {pip_args}: option {word} has no uv pip compile counterpart here")
        else:
            reqs.append(word)
    return reqs, opts


def check() -> int:
    commands = install_commands()
    if not commands:
        print("no GPU install command found in README.md or docs/", file=sys.stderr)
        return 1
    failed = 0
    for where, pip_args in commands:
        reqs, opts = as_compile(pip_args)
        done = compile_for_cuda_linux(reqs, opts)
        status = "resolves" if done.returncode == 0 else "FAILS"
        print(f"{where}: pip install {pip_args}: {status} on CUDA Linux x86-64, CPython 3.11")
        if done.returncode:
            failed += 1
            print(done.stderr.strip(), file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="resolve the documented GPU install commands")
    if parser.parse_args().check:
        return check()
    done = compile_for_cuda_linux([f"-e {ROOT}[gpu]"], ["-c", str(CPU_LOCK)])
    if done.returncode:
        print(done.stderr.strip(), file=sys.stderr)
        return 1
    pins = pins_of(done.stdout)
    lines = [
        "# The package index's resolution of `.[gpu]` for CUDA Linux x86-64 (manylinux_2_28), CPython 3.11,",
        "# constrained by requirements/cpu-lock.txt (uv pip compile). Regenerate with: make gpu-lock.",
        *(f"{name}=={pins[name]}" for name in sorted(pins, key=str.lower) if name != "rvpo-repro"),
    ]
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"{LOCK.relative_to(ROOT)}: {len(lines) - 2} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
