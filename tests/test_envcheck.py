from __future__ import annotations

import re
from pathlib import Path

import torch

from rvpo_repro import envcheck

ROOT = Path(__file__).resolve().parent.parent


def _makefile_torch() -> str:
    return re.search(r"^TORCH_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_installed_torch_is_the_pinned_build():
    expected = _makefile_torch()
    assert envcheck.check_torch(expected) == [], "the venv holds another torch than the Makefile pins"
    if not envcheck.has_nvidia_device():
        assert torch.version.cuda is None, "a CUDA build of torch on a machine without a GPU"


def test_check_reports_a_version_mismatch():
    problems = envcheck.check_torch("0.0.1")
    assert len(problems) == 1 and "expected 0.0.1" in problems[0]


def test_pyproject_range_admits_the_pinned_torch():
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    assert torch_req.specifier.contains(_makefile_torch())
    trl_req = next(Requirement(d) for d in deps if Requirement(d).name == "trl")
    assert str(trl_req.specifier).startswith("=="), (
        "trl is pinned exactly (the trainer overrides its internals)"
    )
