"""Two single-threaded jobs at once (joblib launcher) give the same runs as one after the other."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


def _sweep(train_cmd, where: Path, cache: Path, launcher: list[str]) -> dict[str, tuple]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "RVPO_ROOT": str(where),
        "RVPO_CACHE": str(cache),
        "PYTHONPATH": str(ROOT),
    }
    cmd = train_cmd(
        "trainer.max_steps=3",
        "trainer.save_steps=3",
        "task.num_eval_prompts=4",
        "aggregator=grpo,rvpo",
        "logger=disabled",
        *launcher,
        multirun=True,
        isolated=False,  # the paths follow RVPO_ROOT and RVPO_CACHE, as users set them
    )
    subprocess.run(cmd, cwd=where, env=env, check=True, capture_output=True, timeout=600)
    out = {}
    for rec in sorted((where / "results" / "runs" / "toy_smoke").glob("*/result.json")):
        data = json.loads(rec.read_text())
        history = [
            {k: v for k, v in row.items() if k not in TIMING}
            for row in map(json.loads, (rec.parent / "log_history.jsonl").read_text().splitlines())
        ]
        out[rec.parent.name] = (data["metrics"], history, (rec.parent / "examples.jsonl").read_text())
    return out


@pytest.mark.slow
def test_joblib_jobs_match_sequential_jobs(tmp_path, cache_dir, train_cmd):
    (tmp_path / "par").mkdir()
    (tmp_path / "seq").mkdir()
    parallel = _sweep(train_cmd, tmp_path / "par", cache_dir, ["+launcher=joblib", "hydra.launcher.n_jobs=2"])
    sequential = _sweep(train_cmd, tmp_path / "seq", cache_dir, [])
    assert len(parallel) == 2 and parallel.keys() == sequential.keys()
    for run in parallel:
        assert parallel[run] == sequential[run], run  # bit-identical metrics, history and samples
