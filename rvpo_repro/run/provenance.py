"""Provenance of a run: redaction of secrets, library versions and git state.

Secrets (API keys) come from the environment and must never reach logs, W&B configs or
result files; every reported number carries the versions and commit that produced it.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"
PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "hydra-core", "omegaconf", "wandb")
PACKAGES += ("numpy", "scipy", "vllm")

_SECRET_WORDS = r"api_?key|token|secret|password|passwd|authorization|credentials?"
_SECRET = re.compile(rf"(?:^|_)(?:{_SECRET_WORDS})(?:_|$)")
# Tokenizer special tokens (eos_token: "</s>") are vocabulary, not credentials.
_NOT_SECRET = re.compile(r"(?:^|_)(?:bos|eos|pad|unk|sep|cls|mask)_tokens?(?:_id)?$")


def is_secret_key(key: Any) -> bool:
    """Whether a config key or environment variable name names a secret.

    Matched on word boundaries (after camelCase/kebab -> snake) so `max_new_tokens` and
    `tokenizer` are not secrets; names ending in `_env` hold a variable NAME and are kept.
    """
    if not isinstance(key, str):
        return False
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower().replace("-", "_").replace(".", "_")
    return not snake.endswith("_env") and not _NOT_SECRET.search(snake) and bool(_SECRET.search(snake))


def redact(obj: Any, env: Mapping[str, str] = os.environ) -> Any:
    """Deep copy of `obj` (nested dicts/lists) with secrets replaced by "<redacted>".

    String values under secret keys are redacted (numbers, booleans and None are kept: they are
    knobs such as `token_budget: 512`, not credentials). Any string anywhere containing the value
    (8+ chars) of an environment variable with a secret name has that value scrubbed.
    """
    values = sorted((v for k, v in env.items() if is_secret_key(k) and len(v) >= 8), key=len, reverse=True)

    def scrub(text: str) -> str:
        for v in values:
            text = text.replace(v, REDACTED)
        return text

    def walk(node: Any, secret: bool) -> Any:
        if secret and not (node is None or isinstance(node, bool | int | float)):
            return REDACTED
        if isinstance(node, Mapping):
            return {scrub(k) if isinstance(k, str) else k: walk(v, is_secret_key(k)) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return type(node)(walk(v, False) for v in node)
        if isinstance(node, str):
            return scrub(node)
        return copy.deepcopy(node)

    return walk(obj, False)


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_info(repo_dir: str | Path) -> dict:
    """{"commit", "dirty", "branch"} of the repo holding `repo_dir`; None where unavailable."""
    commit = _git(Path(repo_dir), "rev-parse", "HEAD")
    # Tracked changes only: a log file or a fresh output beside the code is not a change to it.
    status = _git(Path(repo_dir), "status", "--porcelain", "--untracked-files=no")
    branch = _git(Path(repo_dir), "symbolic-ref", "--short", "-q", "HEAD")  # None when detached
    return {"commit": commit, "dirty": None if status is None else bool(status), "branch": branch}


def environment_info(repo_dir: str | Path | None = None) -> dict:
    """Package versions (None if absent), platform, CUDA device and git state of `repo_dir`
    (default: the directory of this package). Never imports vllm (slow, may touch the GPU)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cuda, device = False, None
    try:
        import torch

        cuda = torch.cuda.is_available()
        device = torch.cuda.get_device_name(0) if cuda else None
    except Exception:  # a broken torch install should not lose the run's record
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "cuda_available": cuda,
        "cuda_device": device,
        "git": git_info(repo_dir if repo_dir is not None else Path(__file__).resolve().parent),
    }
