"""A run SIGKILLed at every phase of its life, then rerun with the same command, ends exactly as
the uninterrupted run: the same record, examples, per-step log and final weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.toy_runs import process_env, toy_smoke_overrides

from rvpo_repro.config import compose
from rvpo_repro.io import read_jsonl
from rvpo_repro.run import record

pytestmark = [pytest.mark.runs, pytest.mark.faults]

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "kill_at.py"
TIMING = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "step_time"}
# 8 prompts: 2 steps an epoch; checkpoints at steps 3 and 6 (the last step).
SHAPE = ("task.num_train_prompts=8", "trainer.max_steps=6", "trainer.save_steps=3")


def train(root: Path, cache_dir: Path, *extra: str) -> Path:
    from rvpo_repro.run.job import train_and_evaluate

    return train_and_evaluate(compose(toy_smoke_overrides(root, cache_dir, *SHAPE, *extra, process=False)))


def killed_at(phase: str, root: Path, cache_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(HELPER), phase, *toy_smoke_overrides(root, cache_dir, *SHAPE, *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, env=process_env(), timeout=600)


def steps(run_dir: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(run_dir / "log_history.jsonl")
    ]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, cache_dir) -> Path:
    return train(tmp_path_factory.mktemp("clean"), cache_dir)


# phase -> (checkpoint the rerun resumes from, None: fresh or not retrained; what is set aside)
PHASES = {
    "step:2": (None, None),  # before the first checkpoint: nothing to resume, a fresh start
    "step:4": ("checkpoint-3", None),  # mid-training
    "save:6": ("checkpoint-3", "checkpoint-6"),  # while saving: the unsealed checkpoint is skipped
    "publish": ("checkpoint-6", None),  # trained, final model unpublished: resume trains no step
    "evaluate": (None, None),  # final model published: only evaluation is rerun
    "seal": (None, None),  # examples written, record not: evaluation is rerun
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_at_any_phase_then_rerun_ends_as_the_uninterrupted_run(phase, clean, tmp_path, cache_dir):
    proc = killed_at(phase, tmp_path, cache_dir)
    assert proc.returncode == -9, proc.stderr[-3000:]  # it really died of SIGKILL
    (run_dir,) = (tmp_path / "results" / "runs" / "toy_smoke").iterdir()
    assert not (run_dir / record.RESULT_FILE).exists()

    again = train(tmp_path, cache_dir)
    assert again == run_dir
    a, b = record.load_record(clean), record.load_record(again)
    resumed_from, set_aside = PHASES[phase]
    got = b.extra["train"]["resumed_from"]
    assert (got is None) if resumed_from is None else got.endswith(resumed_from)
    if set_aside:
        assert (run_dir / "broken" / set_aside).is_dir()
    assert b.extra["train"]["global_step"] == 6  # never a step past max_steps
    assert b.metrics == a.metrics
    assert record.load_examples(again) == record.load_examples(clean)
    assert steps(again) == steps(clean) and len(steps(again)) == 7
    assert (again / "model" / "model.safetensors").read_bytes() == (
        clean / "model" / "model.safetensors"
    ).read_bytes()
    assert b.extra["train"]["ranks"] == a.extra["train"]["ranks"]


def test_a_truncated_weight_file_in_the_last_checkpoint_is_skipped_and_named(
    clean, tmp_path, cache_dir, caplog
):
    keep = "trainer.save_total_limit=2"  # checkpoints 3 and 6 both kept
    proc = killed_at("publish", tmp_path, cache_dir, keep)  # both written, no final model
    assert proc.returncode == -9, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "results" / "runs" / "toy_smoke").iterdir()
    weights = run_dir / "checkpoints" / "checkpoint-6" / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size // 2)
    with caplog.at_level("WARNING"):
        again = train(tmp_path, cache_dir, keep)
    (line,) = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert "checkpoint-6" in line and f"model.safetensors has {size // 2} bytes, {size} when saved" in line
    b = record.load_record(again)
    assert b.extra["train"]["resumed_from"].endswith("checkpoint-3")
    assert b.metrics == record.load_record(clean).metrics
