"""End to end through Hydra: train, evaluate, record, W&B offline, skip, resume, crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rvpo_repro.run.record import load_examples, load_log_history, load_record

pytestmark = pytest.mark.slow

SECRET = "sk-test-do-not-leak-4f2a9c"


def _env() -> dict:
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OPENAI_API_KEY": SECRET,  # must never reach a log, the W&B run or the record
    }


def _run(cmd: list[str], timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cwd = cwd or Path(tempfile.mkdtemp(prefix="rvpo-cwd-"))  # outside the repository
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=cwd)


def _only_run_dir(tmp_path: Path, experiment: str = "toy_smoke") -> Path:
    dirs = list((tmp_path / "results" / "runs" / experiment).iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_train_then_evaluate_writes_record_and_wandb_run(tmp_path, train_cmd):
    proc = _run(train_cmd("aggregator=rvpo", "seed=3", console_script=True))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path)
    assert run_dir.name.startswith("tiny_h32-toy_constraints-rvpo-s3-")

    rec = load_record(run_dir)
    assert rec.seed == 3 and rec.experiment == "toy_smoke" and len(rec.config_hash) == 12
    assert rec.config["aggregator"]["name"] == "rvpo" and rec.config["trainer"]["max_steps"] == 10
    assert rec.environment["packages"]["trl"] == "1.16.0" and "torch" in rec.environment["packages"]
    assert "commit" in rec.environment["git"] and "dirty" in rec.environment["git"]
    assert rec.started_at < rec.finished_at
    assert rec.extra["train"]["global_step"] == 10
    scale = rec.config["task"]["fluency_scale"]  # fluency lies in [0, scale], the rest in [0, 1]
    for name in ["all_constraints", "upper", "digit", "bottleneck"]:
        assert 0.0 <= rec.metrics[f"rewards/{name}"]["value"] <= 1.0
    assert 0.0 <= rec.metrics["rewards/fluency"]["value"] <= scale
    assert rec.metrics["rewards/digit"]["stderr"] is not None and rec.metrics["rewards/digit"]["n"] == 8
    assert rec.primary_metric == "rewards/all_constraints"
    assert rec.example_columns["rewards/all_constraints"] == "all_constraints"

    examples = load_examples(run_dir)
    assert len(examples) == 8 and len({e["id"] for e in examples}) == 8
    assert {"id", "all_constraints", "fluency", "upper", "digit"} <= set(examples[0])
    mean_score = sum(e["all_constraints"] for e in examples) / len(examples)
    assert mean_score == pytest.approx(rec.metrics["rewards/all_constraints"]["value"])
    assert (run_dir / "model" / "model.safetensors").exists()
    history = load_log_history(run_dir)  # per-step curves for the report
    steps = [h for h in history if "channels/digit/satisfied" in h]
    assert len(steps) == 10 and all("aggregator/weight/digit" in h and "aggregator/risk" in h for h in steps)

    wandb_runs = list((tmp_path / "wandb").glob("offline-run-*"))  # logger.dir=<root>: <root>/wandb
    assert len(wandb_runs) == 1 and list(wandb_runs[0].glob("run-*.wandb"))
    debug = (wandb_runs[0] / "logs" / "debug.log").read_text()
    assert "got exitcode: 0" in debug

    # rvpo-eval on the saved policy: a record of its own under <experiment>-eval, same eval set.
    ev = _run(train_cmd(f"checkpoint={run_dir / 'model'}", program="rvpo-eval", console_script=True))
    assert ev.returncode == 0, ev.stderr[-3000:]
    eval_dir = _only_run_dir(tmp_path, "toy_smoke-eval")
    eval_rec = load_record(eval_dir)
    assert eval_rec.extra["checkpoint"] == str(run_dir / "model")
    assert {e["id"] for e in load_examples(eval_dir)} == {e["id"] for e in examples}
    assert eval_rec.config["model"]["path"] == str((run_dir / "model").resolve())

    # The API key in the environment reached no file: record, Hydra logs, W&B run (config, logs).
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked and SECRET not in proc.stdout + proc.stderr

    # Same config again: skipped, record untouched.
    before = (run_dir / "result.json").read_bytes()
    again = _run(train_cmd("aggregator=rvpo", "seed=3", console_script=True))
    assert again.returncode == 0 and "skipping finished run" in again.stdout + again.stderr
    assert (run_dir / "result.json").read_bytes() == before


def test_killed_run_resumes_from_checkpoint(tmp_path, train_cmd):
    overrides = ["aggregator=gdpo", "trainer.max_steps=12", "trainer.save_steps=3", "logger=disabled"]
    proc = subprocess.Popen(
        train_cmd(*overrides, console_script=True),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    ckpt_root = None
    while time.time() < deadline and proc.poll() is None:
        found = list(
            (tmp_path / "results").glob("runs/toy_smoke/*/checkpoints/checkpoint-*/rvpo-complete.json")
        )  # sealed: a checkpoint killed before its seal is set aside, not resumed from
        if found:
            ckpt_root = found[0].parent.parent
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt_root is not None, "no checkpoint appeared before the run ended"
    run_dir = ckpt_root.parent
    assert not (run_dir / "result.json").exists()

    done = _run(train_cmd(*overrides, console_script=True))
    assert done.returncode == 0, done.stderr[-3000:]
    rec = load_record(run_dir)
    assert rec.extra["train"]["resumed_from"] and "checkpoint-" in rec.extra["train"]["resumed_from"]
    assert rec.extra["train"]["global_step"] == 12


def test_crashing_reward_fails_clearly_and_finishes_wandb(tmp_path, compose_cfg, monkeypatch):
    import wandb

    from rvpo_repro.run.job import train_and_evaluate
    from rvpo_repro.tasks.toy_constraints import ToyRewards

    def boom(self, *args, **kwargs):
        raise RuntimeError("reward exploded on purpose")

    monkeypatch.setattr(ToyRewards, "score", boom)
    cfg = compose_cfg("experiment=toy_smoke", f"logger.dir={tmp_path / 'out'}")
    with pytest.raises(RuntimeError, match="reward exploded on purpose"):
        train_and_evaluate(cfg)
    assert wandb.run is None, "the W&B run was left open"
    debug = next((tmp_path / "out" / "wandb").glob("offline-run-*/logs/debug.log")).read_text()
    assert "got exitcode: 1" in debug
    assert not list((tmp_path / "results").glob("runs/*/*/result.json"))


def test_multirun_survives_a_failed_job(tmp_path, train_cmd):
    """One job with a bad value fails when it runs; the other job of the sweep still finishes its record."""
    proc = _run(
        train_cmd(
            "aggregator=rvpo",
            "aggregator.risk=1.0,-1.0",
            "logger=disabled",
            "trainer.max_steps=2",
            multirun=True,
            console_script=True,
        )
    )
    assert proc.returncode != 0  # a risk coefficient is >= 0
    assert "aggregator.risk=-1.0: must be >= 0" in proc.stderr, proc.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path)
    assert (
        "-rvpo-" in run_dir.name
        and json.loads((run_dir / "result.json").read_text())["run_id"] == run_dir.name
    )


def test_a_sweep_with_an_option_one_of_its_methods_refuses_starts_no_job(tmp_path, train_cmd):
    """Hydra composes every job of a multirun before the first starts: an option that a swept
    method does not take refuses the sweep in one line naming that method and what it accepts."""
    proc = _run(train_cmd("aggregator=rvpo,grpo", "aggregator.risk=2.0", multirun=True, console_script=True))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rvpo-train: aggregator.risk=2.0: option(s) ['risk'] do not apply to aggregator 'grpo'; it accepts "
        "['eps', 'weights', 'use_item_weights', 'missing', 'scale'] (the sweep's job aggregator=grpo)"
    ]
    assert not (tmp_path / "results" / "runs").exists()
