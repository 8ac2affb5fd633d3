"""One short training run as a user sees it in a log file: a bar and compact lines, no dict dumps;
its W&B run has the nested config, TRL's completions table and the evaluation's example table."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers.wandb_file import run_config

from rvpo_repro.run.record import load_record

pytestmark = pytest.mark.slow


def test_short_run_shows_progress_and_logs_a_browsable_wandb_run(tmp_path, train_cmd):
    cmd = train_cmd(
        "trainer.max_steps=4",
        "trainer.save_steps=4",
        "trainer.log_completions=true",
        "trainer.num_completions_to_print=1",
        f"paths.root_dir={tmp_path}",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK")}
    env.update(WANDB_MODE="offline", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)  # stderr: not a TTY
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr.splitlines()

    summaries = [ln for ln in err if ln.startswith("step ")]
    assert [s.split(" | ")[0] for s in summaries] == [f"step {i}/4" for i in range(1, 5)]
    assert all(" | reward " in s and " | all_constraints " in s and " | risk " in s for s in summaries)
    assert "'loss':" not in proc.stderr + proc.stdout  # transformers' per-step dict is gone
    for desc in ("train:", "generate:"):
        bar = [ln for ln in err if ln.startswith(desc)]
        assert 2 <= len(bar) <= 11 and not any("\r" in ln for ln in bar), bar
    assert "4/4" in [ln for ln in err if ln.startswith("train:")][-1]

    run_dir = next((tmp_path / "results" / "runs" / "toy_smoke").iterdir())
    wb = load_record(run_dir).extra["wandb"]
    assert wb["id"] == run_dir.name and wb["mode"] == "offline" and wb["url"] is None
    folder = Path(wb["dir"])
    assert folder.parent == tmp_path / "wandb"

    config = run_config(next(folder.glob("run-*.wandb")))
    model_cfg = config["model_config"]
    assert model_cfg["model_type"] == "qwen2" and "vocab_size" not in config and "model_type" not in config
    assert config["grpo_config"]["log_completions"] is True and config["trainer"]["max_steps"] == 4
    tables = folder / "files" / "media" / "table"
    assert list(tables.glob("completions_*.table.json")), "TRL's completions table was not logged"
    assert list((tables / "eval").glob("examples_*.table.json")), "the evaluation's example table is missing"
