"""Shared fixtures. Tests never touch the network: hub, datasets and W&B are forced offline."""

from __future__ import annotations

import os

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
