"""Faults of one run: bad config, two writers, kill-and-resume, Ctrl-C (toy_smoke-sized)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rvpo_repro.config import ConfigError, compose
from rvpo_repro.io import read_jsonl
from rvpo_repro.run import record
from rvpo_repro.run.lock import run_lock

pytestmark = pytest.mark.faults

TIMING = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "step_time"}


def _overrides(tmp_path: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "experiment=toy_smoke",
        "logger=disabled",
        f"paths.results_dir={tmp_path / 'results'}",
        f"paths.cache_dir={cache_dir}",
        f"paths.output_dir={tmp_path / 'out'}",
        *extra,
    ]


def _cli(tmp_path, cache_dir, *extra):
    args = [a for a in _overrides(tmp_path, cache_dir, *extra) if not a.startswith("paths.output_dir")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rvpo_repro.train", *args, f"hydra.run.dir={tmp_path / 'hydra'}"]
    return cmd, env


@pytest.mark.parametrize(
    ("fault", "key"),
    [("+foo=1", "foo"), ("trainer.max_steps=0", "trainer.max_steps"), ("seed=-5", "seed"),
     ("trainer.num_generations=1", "trainer.num_generations")],
)  # fmt: skip
def test_bad_config_is_refused_before_any_directory(tmp_path, cache_dir, fault, key):
    from rvpo_repro.run.job import train_and_evaluate

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train_and_evaluate(compose(_overrides(tmp_path, cache_dir, fault)))
    assert not (tmp_path / "results").exists() and not (tmp_path / "out").exists()


def test_bad_config_on_the_command_line_is_one_line_and_exit_2(tmp_path, cache_dir):
    cmd, env = _cli(tmp_path, cache_dir, "+foo=1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("rvpo-train: config key `foo`")
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_second_launch_of_a_running_run_exits_naming_the_holder(tmp_path, cache_dir):
    cfg = compose(_overrides(tmp_path, cache_dir))
    run_dir = record.run_dir(cfg)
    with run_lock(run_dir):  # this test process plays the first writer
        (run_dir / "marker").write_text("first writer's file")
        cmd, env = _cli(tmp_path, cache_dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 75, proc.stderr[-2000:]
        assert f"being written by PID {os.getpid()}" in proc.stderr.strip().splitlines()[-1]
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "marker"]  # nothing touched


@pytest.mark.slow
def test_killed_and_resumed_run_is_bit_identical(tmp_path, cache_dir, monkeypatch):
    """Stopped right after checkpoint-3 is sealed, in the second epoch (8 prompts: 2 steps per epoch)."""
    import rvpo_repro.run.checkpoints as checkpoints
    from rvpo_repro.run.job import train_and_evaluate

    extra = ("task.num_train_prompts=8", "trainer.max_steps=6", "trainer.save_steps=3")

    def run(name: str) -> Path:
        return train_and_evaluate(compose(_overrides(tmp_path / name, cache_dir, *extra)))

    clean = run("clean")

    class Killed(Exception):
        pass

    sealed = checkpoints.seal

    def seal_then_stop(folder):
        sealed(folder)
        raise Killed(folder)

    monkeypatch.setattr(checkpoints, "seal", seal_then_stop)
    with pytest.raises(Killed):
        run("resumed")
    monkeypatch.undo()
    resumed = run("resumed")

    a, b = record.load_record(clean), record.load_record(resumed)
    assert b.extra["train"]["resumed_from"].endswith("checkpoint-3")
    assert b.extra["train"]["resumed"] == "bit-identical"
    assert a.metrics == b.metrics
    assert record.load_examples(clean) == record.load_examples(resumed)
    strip = [
        {k: v for k, v in row.items() if k not in TIMING} for row in read_jsonl(clean / "log_history.jsonl")
    ]
    again = [
        {k: v for k, v in row.items() if k not in TIMING} for row in read_jsonl(resumed / "log_history.jsonl")
    ]
    assert strip == again and len(strip) == 7  # 6 steps + the closing summary


@pytest.mark.slow
def test_ctrl_c_says_where_the_checkpoint_is_and_exits_130(tmp_path, cache_dir):
    # So many steps that no loaded machine finishes them before the signal lands: the run is
    # interrupted once its first checkpoint is sealed, however slowly it got there.
    cmd, env = _cli(tmp_path, cache_dir, "trainer.max_steps=100000", "trainer.save_steps=2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 600
    while not list((tmp_path / "results").glob("runs/*/*/checkpoints/checkpoint-*/rvpo-complete.json")):
        assert proc.poll() is None and time.time() < deadline, "no sealed checkpoint"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "last checkpoint:" in last and "checkpoint-" in last and "rvpo-train" in last
    assert "Traceback" not in err


def _rubric(tmp_path, cache_dir, *extra):
    return compose(
        [
            "experiment=rubric_toy",
            "logger=disabled",
            f"paths.results_dir={tmp_path / 'results'}",
            f"paths.cache_dir={cache_dir}",
            f"paths.output_dir={tmp_path / 'out'}",
            "trainer.max_steps=2",
            "trainer.save_steps=2",
            "trainer.eval_checkpoints=false",
            "judge.reask_limit=0",
            "judge.cache_path=null",
            *extra,
        ]
    )


@pytest.mark.slow
def test_a_judge_that_never_answers_stops_the_first_step_and_seals_nothing(tmp_path, cache_dir):
    from rvpo_repro.run.job import train_and_evaluate
    from rvpo_repro.run.lifecycle import RunFailed

    with pytest.raises(RunFailed) as info:
        train_and_evaluate(_rubric(tmp_path, cache_dir, "judge.failure_rate=1.0"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "step 1: every reward is missing (32 rollouts x 17 channels): judge rules/rules"
    )
    assert "missed" in message and message.endswith("nothing sealed")
    assert not list((tmp_path / "results").glob("runs/*/*"))  # nothing to resume, nothing kept


@pytest.mark.slow
def test_a_run_over_the_missing_verdict_share_is_not_sealed_and_a_finished_run_states_its_share(
    tmp_path, cache_dir
):
    from rvpo_repro.run.job import train_and_evaluate
    from rvpo_repro.run.lifecycle import RunFailed

    with pytest.raises(RunFailed, match=r"judge rules/rules missed \d+ of \d+ verdicts \(\d+\.\d%, over "
                       r"run\.max_missing_share=0\.1\); nothing sealed \(delete .*\)"):  # fmt: skip
        train_and_evaluate(_rubric(tmp_path / "a", cache_dir, "judge.failure_rate=0.3"))
    assert not list((tmp_path / "a" / "results").glob("runs/*/*/result.json"))

    run_dir = train_and_evaluate(
        _rubric(tmp_path / "b", cache_dir, "judge.failure_rate=0.3", "run.max_missing_share=0.5")
    )
    usage = record.load_record(run_dir).extra["train"]["judge"]
    assert usage["judge"] == "rules/rules" and usage["verdicts"] > 0
    assert 0.2 < usage["missing_share"] == usage["missing"] / usage["verdicts"] < 0.4


def test_reward_probes_run_before_any_weights_load(tmp_path, cache_dir, monkeypatch):
    """A user's reward that returns too few values is refused by the task's probe, in one line,
    before the policy's weights are loaded (the job builds the task first)."""
    import rvpo_repro.models as models
    from rvpo_repro.run.job import train_and_evaluate
    from rvpo_repro.tasks.base import TaskInputError

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "bad_rewards.py").write_text("def short(prompts, completions, **kwargs):\n    return [1.0]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("weights loaded before the probe"))
    cfg = compose(
        [
            "task=custom",
            f"task.train_source={repo / 'examples' / 'prompts.jsonl'}",
            "task.rewards=[bad_rewards:short]",
            "model=tiny",
            "logger=disabled",
            f"paths.results_dir={tmp_path / 'results'}",
            f"paths.cache_dir={cache_dir}",
            f"paths.output_dir={tmp_path / 'out'}",
        ]
    )
    with pytest.raises(TaskInputError, match="short") as info:
        train_and_evaluate(cfg)
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "results").glob("runs/*/*"))
