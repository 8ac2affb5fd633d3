"""`make gpu-check` as a lent GPU machine runs it, rehearsed on CPU: no network, torch, transformers
and accelerate installed, everything else from the carried wheels (`make gpu-carry`).

Fetches two carries of ~48 MiB from PyPI, so it runs under `make gpu-check-rehearsal` (CI) and never
in `make test` (tests/conftest.py).
"""

from __future__ import annotations

import csv
import importlib.metadata as md
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from helpers.scripts import load_script
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.carry
slim_wheel = load_script("slim_wheel")
ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 2**20  # what a lent machine carries: the working tree and the wheels
MARGIN = 2 * 2**20  # scripts/gpu_carry.sh's room for the tree to grow
TINY = [
    "--device", "cpu", "--vocab", "tokenizer",
    "--set", "num_hidden_layers=2", "--set", "hidden_size=64", "--set", "intermediate_size=128",
    "--set", "num_attention_heads=4", "--set", "num_key_value_heads=2",
    "--steps", "2", "--batch-size", "4", "--num-generations", "2", "--max-completion-length", "4",
]  # fmt: skip


def _run(cmd: list[str], timeout: int, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)
    assert proc.returncode == 0, f"{cmd[:4]}...: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _carry(dest: Path, python: str, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPU_CARRY": str(dest), "GPU_CARRY_PYTHON": python, "PY": sys.executable, **env}
    return _run(["bash", "scripts/gpu_carry.sh"], timeout=400, env=env)


def _requirements() -> list[str]:
    lines = (ROOT / "requirements" / "gpu-check.txt").read_text().splitlines()
    return [
        line.split("==")[0].lower().replace("-", "_") for line in lines if line and not line.startswith("#")
    ]


def _tree_bytes() -> int:
    """The working tree as a lent machine copies it: tracked files and untracked ones not ignored."""
    listed = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], timeout=60).stdout
    paths = [ROOT / p for p in listed.split("\0") if p]
    return sum(p.lstat().st_size for p in paths if p.is_file() or p.is_symlink())


def _slimmed_pyarrow(wheel: Path) -> None:
    """No Flight, headers or tests left, and RECORD lists every kept file with its hash and size.
    (That no kept library needs a dropped one: the rehearsal loads them all.)"""
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if not n.endswith("/")}  # RECORD lists files, not folders
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = {r[0]: r for r in csv.reader(io.StringIO(z.read(record).decode()))}
        assert set(rows) == names
        assert all(rows[n] == slim_wheel.record_row(n, z.read(n)) for n in sorted(names - {record}))
    assert not [n for n in names if "_flight" in n or "/include/" in n or "/tests/" in n]
    assert wheel.stat().st_size < 38e6


def test_the_carry_for_cpython_312_fits_and_installs_offline(tmp_path):
    proc = _carry(tmp_path / "carry", "3.12")
    wheels = sorted((tmp_path / "carry" / "wheels").glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    assert names == set(_requirements()), names ^ set(_requirements())
    size, tree = sum(w.stat().st_size for w in wheels), _tree_bytes()
    assert f"tree {tree} + wheels {size} = {tree + size} bytes" in proc.stdout, proc.stdout
    assert tree + size + MARGIN <= LIMIT, (tree, size)
    # a limit with room for the wheels alone, not for the tree beside them, is refused
    low = -(-(size + MARGIN) // 2**20) + 1
    with pytest.raises(AssertionError, match="exceed the .* bytes the lent machine's"):
        _carry(tmp_path / "low", "3.12", GPU_CARRY_LIMIT_MIB=str(low))
    _slimmed_pyarrow(next(w for w in wheels if w.name.startswith("pyarrow-")))
    assert 'bash scripts/gpu_check.sh --out "$OUT/gpu_check.json"' in proc.stdout  # the one command
    assert all(w.name.endswith("-none-any.whl") or "-cp312-" in w.name for w in wheels)
    # the wheels install for a CPython 3.12 x86-64 machine, from the folder alone
    target = [
        "--no-index", "--no-deps", "--target", str(tmp_path / "site"), "--only-binary=:all:",
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.12", "--implementation", "cp",
    ]  # fmt: skip
    _run([sys.executable, "-m", "pip", "install", "--quiet", *target, *map(str, wheels)], timeout=300)
    assert (tmp_path / "site" / "trl").is_dir() and (tmp_path / "site" / "pyarrow").is_dir()


def _preinstalled(names: tuple[str, ...]) -> dict[str, md.Distribution]:
    """`names` and everything they require (markers evaluated here, no extras), as installed here."""
    found: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        dist = md.distribution(name)
        found[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def _lent_venv(path: Path) -> Path:
    """A clean venv holding what a lent machine holds: torch, transformers and accelerate with their
    dependencies (this machine's installed copies, linked in: no download, no unpacking of torch)."""
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(path)], timeout=300)
    py = path / "bin" / "python"
    site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], 60).stdout.strip()
    )
    for dist in _preinstalled(("torch", "transformers", "accelerate")).values():
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "bin")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return py


def test_the_check_runs_on_cpu_from_the_carried_wheels_alone(tmp_path):
    t0 = time.perf_counter()
    py = _lent_venv(tmp_path / "lent")
    missing = subprocess.run([str(py), "-c", "import trl"], capture_output=True, text=True)
    assert missing.returncode != 0  # the lent machine lacks it: only the carry can bring it
    carry = tmp_path / "carry"
    _carry(carry, f"{sys.version_info.major}.{sys.version_info.minor}")
    out = tmp_path / "gpu_check.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PY=str(py), GPU_CARRY=str(carry), PIP_NO_INDEX="1")  # no package index at all
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    proc = _run(["bash", "scripts/gpu_check.sh", *TINY, "--out", str(out)], timeout=520, env=env)
    check_s = time.perf_counter() - t1
    assert "installing 13 carried wheels" in proc.stdout
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert {k: v["status"] for k, v in parts.items()} == dict.fromkeys(
        ("roofline", "rvpo-1.5b", "grpo-1.5b", "rvpo-3b"), "ok"
    ), {k: v.get("log_tail", "")[-800:] for k, v in parts.items()}
    rvpo, grpo = parts["rvpo-1.5b"]["result"], parts["grpo-1.5b"]["result"]
    assert (rvpo["trainer"], grpo["trainer"]) == ("RVPOTrainer", "GRPOTrainer")
    assert rvpo["tokens_per_s"] > 0 and grpo["seconds_per_step"] > 0
    assert report["comparison"]["rvpo_over_grpo_step_time_1.5b"] > 0
    assert parts["roofline"]["result"]["bf16_matmul_flops"] > 0
    assert "peak_gb" in rvpo["memory_plan"] or "memory" in rvpo["memory_plan"]["error"]
    assert report["seconds"] < 480
    # the slimmed pyarrow serves what datasets loads, every library it kept loads (none needs a
    # dropped one), and Flight is gone
    imports = "import datasets, pyarrow.parquet, pyarrow.compute, pyarrow.json, pyarrow.csv, pyarrow.dataset"
    check = (
        f"{imports}; import ctypes, pathlib; p = {str(tmp_path / 'x.parquet')!r}; "
        "datasets.Dataset.from_dict({'a': [1, 2]}).to_parquet(p); "
        "assert pyarrow.parquet.read_table(p).column('a').to_pylist() == [1, 2]; "
        "libs = sorted(pathlib.Path(pyarrow.__file__).parent.glob('*.so*')); "
        "[ctypes.CDLL(str(lib)) for lib in libs]; print(len(libs), 'libraries loaded')"
    )
    env["PYTHONPATH"] = str(carry / "site-packages")
    loaded = _run([str(py), "-c", check], timeout=120, env=env)
    assert int(loaded.stdout.split()[-3]) > 20, loaded.stdout
    flight = subprocess.run([str(py), "-c", "import pyarrow.flight"], capture_output=True, text=True, env=env)
    assert flight.returncode != 0 and "flight" in flight.stderr
    print(f"\ncarry rehearsal: setup {setup_s:.0f} s, check {check_s:.0f} s ({report['seconds']} s of parts)")
    shutil.rmtree(tmp_path / "lent", ignore_errors=True)
