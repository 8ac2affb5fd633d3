"""Shared fixtures. Tests never touch the network: hub, datasets and W&B are forced offline.

A test's run lives under its tmp_path: `compose_cfg` composes a config whose paths (root, results,
outputs, W&B files) point there, `train_cmd` builds the command line of a training (or evaluation)
process kept there; both use the session's cache, so the tiny model is built once. Tests that
check the config files themselves call `rvpo_repro.config.compose` directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var, _val in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ[_var] = _val
# `make test` runs two pytest-xdist workers on two cores: one thread each (for them and the jobs
# they start) instead of two apiece, which would oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


import pytest  # noqa: E402

# Folders collected only when the marker expression names their marker, never by `make test`:
# tests/engines/ (real vLLM and DeepSpeed processes; `make test-engines`, in their own venv),
# tests/verl/ (verl's own code, `make test-verl`, in its own venv) and tests/carry/ (the GPU
# check's carried wheels, fetched from PyPI; `make gpu-check-rehearsal`).
OWN_MARKER_DIRS = {Path(__file__).parent / name: name for name in ("engines", "verl", "carry")}


def pytest_ignore_collect(collection_path, config):
    marker = OWN_MARKER_DIRS.get(Path(collection_path))
    if marker is not None and marker not in (config.getoption("markexpr") or ""):
        return True
    return None


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One cache directory for the whole session, so the tiny model is built once."""
    return tmp_path_factory.mktemp("rvpo-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(cache_dir):
    """Path to the saved offline tiny Qwen2 model and its tokenizer (seed 0)."""
    from rvpo_repro.models import ensure_tiny_model
    from rvpo_repro.schemas import TinyModelConfig

    return ensure_tiny_model(TinyModelConfig(seed=0), cache_dir)


@pytest.fixture
def compose_cfg(tmp_path, cache_dir):
    """compose(overrides) for a run kept under `root` (default tmp_path) with the session cache.
    Later overrides win, so a test can still move any of these paths."""
    from rvpo_repro.config import compose

    def make(*overrides: str, root: Path | None = None, **kwargs):
        root = Path(tmp_path if root is None else root)
        where = [f"paths.root_dir={root}", f"paths.cache_dir={cache_dir}", f"paths.output_dir={root / 'out'}"]
        return compose([*where, *overrides], **kwargs)

    return make


# The two entry points; their console scripts (rvpo-train, rvpo-eval) run the same `main`.
ENTRY_MODULES = {"rvpo-train": "rvpo_repro.train", "rvpo-eval": "rvpo_repro.evaluate"}


@pytest.fixture
def train_cmd(tmp_path, cache_dir):
    """The command line of a run kept under tmp_path (results/, Hydra's hydra/ and multirun/, W&B
    files) with the session cache: `python -m rvpo_repro.train` as the Makefile runs it, or the
    installed console script (`console_script=True`); `program="rvpo-eval"` evaluates instead.
    `isolated=False` leaves every path to the environment and the working directory."""

    def build(
        *overrides: str,
        experiment: str = "toy_smoke",
        multirun: bool = False,
        program: str = "rvpo-train",
        console_script: bool = False,
        isolated: bool = True,
    ) -> list[str]:
        if console_script:
            head = [str(Path(sys.executable).parent / program)]
        else:
            head = [sys.executable, "-m", ENTRY_MODULES[program]]
        where = [
            f"paths.results_dir={tmp_path / 'results'}",
            f"paths.cache_dir={cache_dir}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
            f"logger.dir={tmp_path}",
        ]
        return [*head, *(["--multirun"] if multirun else []), f"experiment={experiment}",
                *(where if isolated else []), *overrides]  # fmt: skip

    return build


@pytest.fixture(scope="module")
def judge_server():
    """The scripted OpenAI-compatible judge server (tests/helpers/judge_server.py), one per module."""
    from helpers.judge_server import ScriptedChatServer

    with ScriptedChatServer() as server:
        yield server


@pytest.fixture
def srv(judge_server):
    """`judge_server` with its counters cleared and no latency, for one test."""
    judge_server.logic.reset()
    judge_server.logic.latency = 0.0
    return judge_server
