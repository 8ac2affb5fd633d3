"""Faults of one run: bad config, two writers, kill-and-resume, Ctrl-C (toy_smoke-sized)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.toy_runs import process_env, toy_smoke_overrides

from rvpo_repro.config import ConfigError, compose
from rvpo_repro.io import read_jsonl
from rvpo_repro.run import record
from rvpo_repro.run.lock import run_lock

pytestmark = pytest.mark.faults

KILL_AT = Path(__file__).resolve().parents[1] / "helpers" / "kill_at.py"

TIMING = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "step_time"}


def _overrides(tmp_path: Path, cache_dir: Path, *extra: str) -> list[str]:
    return toy_smoke_overrides(tmp_path, cache_dir, *extra, process=False)


def _cli(tmp_path, cache_dir, *extra):
    cmd = [sys.executable, "-m", "rvpo_repro.train", *toy_smoke_overrides(tmp_path, cache_dir, *extra)]
    return cmd, process_env()


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


@pytest.mark.runs
@pytest.mark.slow
def test_a_held_run_fails_its_own_job_of_a_joblib_sweep_in_one_line_and_the_others_finish(
    tmp_path, cache_dir
):
    """The joblib launcher's workers send a failed job's exception back pickled: RunLockedError
    must come back whole, or the pool breaks and takes the sweep's other jobs with it."""
    held = record.run_dir(compose(_overrides(tmp_path, cache_dir, "seed=0")))
    cmd, env = _cli(tmp_path, cache_dir, "+launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1",
                    f"hydra.sweep.dir={tmp_path / 'multirun'}")  # fmt: skip
    cmd.insert(3, "--multirun")
    with run_lock(held):  # this test process plays another launch writing the seed=0 run
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 75, proc.stderr[-3000:]
    assert "BrokenProcessPool" not in proc.stderr and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("rvpo-train:")]
    assert lines == [
        f"rvpo-train: {held} is being written by PID {os.getpid()}; wait for it to finish or stop it first"
    ]
    (done,) = [p.parent for p in (tmp_path / "results").glob("runs/*/*/result.json")]
    assert record.load_record(done).config["seed"] == 1  # the other job finished
    assert list(held.iterdir()) == []  # the locked job wrote nothing (our lock file went with our lock)


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

    def seal_then_stop(folder, **kwargs):
        sealed(folder, **kwargs)
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


def _wait_for(what: str, happened, proc: subprocess.Popen, cap_s: float = 1800) -> None:
    """Wait until `happened()`, however slowly a loaded machine gets there; fail at once if the
    process ends first. `cap_s` only stops a hung run from hanging the suite."""
    deadline = time.monotonic() + cap_s
    while not happened():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} in {cap_s:g} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_ctrl_c_says_where_the_checkpoint_is_and_exits_130(tmp_path, cache_dir):
    # The run holds after step 3 (checkpoint-2 sealed before it), so the signal lands after the
    # first checkpoint however slowly the machine got there, and no step count can run out first.
    cmd, env = _cli(tmp_path, cache_dir, "trainer.max_steps=6", "trainer.save_steps=2")
    cmd[1:3] = [str(KILL_AT), "hold:3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        seals = "runs/*/*/checkpoints/checkpoint-*/rvpo-complete.json"
        _wait_for("sealed checkpoint", lambda: list((tmp_path / "results").glob(seals)), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "last checkpoint:" in last and "checkpoint-2" in last and "Resume from it with: rvpo-train" in last
    assert "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_before_the_first_checkpoint_keeps_hydras_log_when_it_lives_in_the_run_folder(
    tmp_path, cache_dir
):
    run_dir = record.run_dir(compose(_overrides(tmp_path, cache_dir)))
    cmd, env = _cli(tmp_path, cache_dir, "trainer.save_steps=100")
    cmd = [
        sys.executable,
        str(KILL_AT),
        "ctrl_c:1",
        *(a for a in cmd[3:] if not a.startswith("hydra.run.dir=")),
    ]
    proc = subprocess.run(
        [*cmd, f"hydra.run.dir={run_dir}"], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "rvpo-train: interrupted before the first checkpoint; nothing kept. Start again with: rvpo-train "
        )
    )
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "train.log"]  # what the run wrote: gone
    assert (run_dir / "train.log").is_file()  # Hydra's log of this launch (nothing logged yet at step 1)
    assert "trainer.save_steps=100" in (run_dir / ".hydra" / "overrides.yaml").read_text()  # and its record


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_rerun_resumes_from_the_last_complete_one(
    tmp_path, cache_dir
):
    from rvpo_repro.run.job import train_and_evaluate

    shape = ("trainer.max_steps=4", "trainer.save_steps=2", "trainer.save_total_limit=2")
    cmd, env = _cli(tmp_path, cache_dir, *shape)
    cmd[1:3] = [str(KILL_AT), "disk_full:4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (run_dir,) = (tmp_path / "results" / "runs" / "toy_smoke").iterdir()
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"rvpo-train: no space left on the device writing {run_dir}/checkpoints/checkpoint-4/"
    )
    assert (
        f"; last complete checkpoint: {run_dir}/checkpoints/checkpoint-2. Free space, then resume with: "
        in last
    )
    assert (run_dir / "broken" / "checkpoint-4").is_dir()  # the partial save, set aside

    again = train_and_evaluate(compose(_overrides(tmp_path, cache_dir, *shape)))
    train = record.load_record(again).extra["train"]
    assert train["resumed_from"].endswith("checkpoint-2") and train["global_step"] == 4


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
    from rvpo_repro.run.errors import RunFailed
    from rvpo_repro.run.job import train_and_evaluate

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
    from rvpo_repro.run.errors import RunFailed
    from rvpo_repro.run.job import train_and_evaluate

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
