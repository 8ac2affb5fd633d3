"""Install-time check that the environment holds the torch build it was meant to.

`make install` pins torch first; a later dependency range could still upgrade it to a multi-GB
CUDA build on a CPU-only machine. This check fails the install when that happened.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def has_nvidia_device() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def check_torch(expected: str) -> list[str]:
    """Return the problems found (empty when the installed torch is the expected build)."""
    import torch

    problems = []
    base = torch.__version__.split("+")[0]
    if base != expected:
        problems.append(
            f"torch {torch.__version__} is installed, expected {expected} (pinned in the Makefile)"
        )
    if torch.version.cuda is not None and not has_nvidia_device():
        problems.append(
            f"torch {torch.__version__} is a CUDA {torch.version.cuda} build on a machine without an NVIDIA GPU; "
            "reinstall the CPU build: pip install torch==" + expected
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch", required=True, help="expected torch version, e.g. 2.13.0")
    args = parser.parse_args(argv)
    problems = check_torch(args.torch)
    for p in problems:
        print(f"envcheck: {p}", file=sys.stderr)
    if not problems:
        import torch

        print(f"envcheck: torch {torch.__version__} OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
