"""One job on two gloo ranks, launched exactly as users launch a multi-GPU run.

Every launch is a real pair of processes on the tiny model: `torchrun --nproc_per_node 2`,
`accelerate launch --config_file conf/accelerate/ddp.yaml --num_processes 2` (ACCELERATE_USE_CPU=1),
and the command `rvpo-sweep` itself starts for a two-job multirun. Each test checks the distributed
type the run trained under and what every rank held, so a launch silently running as one process
(or as plain DDP where another strategy was asked for) fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers.toy_runs import process_env, sigint_as_in_a_terminal, toy_smoke_overrides

from rvpo_repro.run import record

pytestmark = [pytest.mark.runs, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DDP = REPO / "conf" / "accelerate" / "ddp.yaml"
KILL_AT = REPO / "tests" / "helpers" / "kill_at.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return process_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", **extra)


def job_args(root: Path, cache_dir: Path, *extra: str) -> list[str]:
    return toy_smoke_overrides(root, cache_dir, *extra)


def torchrun(port: int, *args: str) -> list[str]:
    return [
        str(BIN / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "rvpo_repro.train",
        *args,
    ]


def run(cmd: list[str], cwd: Path, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env(**extra), timeout=timeout)


def records(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "results").glob("runs/*/*/result.json"))


def assert_two_rank_record(run_dir: Path) -> record.RunRecord:
    rec = record.load_record(run_dir)
    train = rec.extra["train"]
    assert train["world_size"] == 2 and train["distributed_type"] == "MULTI_CPU"
    assert train["generation"] == "hf"
    a, b = train["ranks"]
    assert (a["rank"], b["rank"], a["backend"]) == (0, 1, "gloo")
    assert a["params_sha256"] == b["params_sha256"]  # DDP: both ranks hold the same weights
    return rec


@pytest.fixture(scope="module")
def torchrun_job(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("torchrun")
    proc = run(torchrun(free_port(), *job_args(root, cache_dir)), cwd=root)
    return root, proc


def test_torchrun_two_ranks_train_one_job_and_rank0_alone_writes(torchrun_job):
    root, proc = torchrun_job
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = records(root)
    assert_two_rank_record(run_dir)
    out = proc.stdout + proc.stderr
    assert out.count("training done:") == 1  # one console: rank 0's
    log = (root / "hydra" / "train.log").read_text()
    assert log.count("/model on 8 prompts x") == 1 and log.count(" done: {") == 1  # one log writer
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "examples.jsonl", "log_history.jsonl", "model", "result.json",
    ]  # fmt: skip


def test_accelerate_launch_with_the_shipped_ddp_config_matches_torchrun(torchrun_job, tmp_path, cache_dir):
    cmd = [str(BIN / "accelerate"), "launch", "--config_file", str(DDP), "--num_processes", "2"]
    cmd += ["--main_process_port", str(free_port()), "-m", "rvpo_repro.train", *job_args(tmp_path, cache_dir)]
    proc = run(cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = records(tmp_path)
    rec = assert_two_rank_record(run_dir)
    (reference,) = records(torchrun_job[0])
    ref = record.load_record(reference)
    assert rec.config_hash == ref.config_hash
    assert rec.metrics == ref.metrics  # the same two-rank job, bit for bit, whichever launcher
    assert rec.extra["train"]["ranks"] == ref.extra["train"]["ranks"]


SWEEP = """# @package _global_
# Two toy_smoke jobs on two ranks each: the CPU twin of a multi-GPU sweep
defaults:
  - override /experiment: toy_smoke

model:
  num_gpus: 2
  accelerate: ddp

hydra:
  sweeper:
    params:
      aggregator: grpo,rvpo
"""


def test_the_command_rvpo_sweep_launches_runs_a_two_job_multirun_on_two_ranks(tmp_path, cache_dir):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "ddp_pair.yaml").write_text(SWEEP)
    overrides = ["--", "logger=disabled", f"paths.cache_dir={cache_dir}"]
    extra = {"RVPO_ROOT": str(tmp_path)}
    dry = run([str(BIN / "rvpo-sweep"), "ddp_pair", "--dry-run", *overrides], cwd=tmp_path, **extra)
    assert dry.returncode == 0, dry.stderr[-3000:]
    (line,) = [ln for ln in dry.stdout.splitlines() if ln.startswith("$ ")]
    assert f"--config_file {DDP} --num_processes 2 -m rvpo_repro.train --multirun" in line

    first = run(shlex.split(line[2:]), cwd=tmp_path, **extra)  # the command, as rvpo-sweep runs it
    assert first.returncode == 0, first.stderr[-4000:]
    done = records(tmp_path)
    assert len(done) == 2
    names = set()
    for run_dir in done:
        names.add(assert_two_rank_record(run_dir).config["aggregator"]["name"])
    assert names == {"grpo", "rvpo"}
    stamps = {p: (p / "result.json").stat().st_mtime_ns for p in done}

    again = run([str(BIN / "rvpo-sweep"), "ddp_pair", *overrides], cwd=tmp_path, **extra)  # both finished
    assert again.returncode == 0, again.stderr[-4000:]
    assert (again.stdout + again.stderr).count("skipping finished run") == 2  # rank 0 says it, once a job
    assert "training done" not in again.stdout + again.stderr
    assert {p: (p / "result.json").stat().st_mtime_ns for p in done} == stamps


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the launch ended (rc {proc.returncode}) before {what}: {out[-3000:]}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_second_launch_exits_75_and_a_rank_killed_with_sigkill_resumes(tmp_path, cache_dir):
    args = job_args(tmp_path, cache_dir, "trainer.max_steps=8", "trainer.save_steps=2")
    hold = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), str(KILL_AT)]
    first = subprocess.Popen(  # rank 0 stops after step 4 and waits there, holding the run
        [*hold, "hold:4@0", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env(),
    )  # fmt: skip
    try:

        def sealed():
            return list((tmp_path / "results").glob("runs/*/*/checkpoints/checkpoint-2/rvpo-complete.json"))

        _wait_for(sealed, first, "checkpoint-2 sealed")
        second = run(torchrun(free_port(), *args), cwd=tmp_path)
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.startswith("rvpo-train:")]
        assert len(lines) == 1 and "is being written by PID" in lines[0], second.stderr[-3000:]
        assert first.poll() is None  # the first launch goes on
        workers = [
            p
            for p in psutil.Process(first.pid).children(recursive=True)
            if "kill_at" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        rank1 = next(p for p in workers if p.environ().get("RANK") == "1")
        os.kill(rank1.pid, signal.SIGKILL)  # one rank dies; torchrun stops the other
        first.wait(timeout=300)
        assert first.returncode != 0
    finally:
        if first.poll() is None:
            first.kill()
    (run_dir,) = (tmp_path / "results" / "runs" / "toy_smoke").iterdir()
    assert not (run_dir / "result.json").exists()

    resumed = run(torchrun(free_port(), *args), cwd=tmp_path)  # the command the user ran
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    rec = assert_two_rank_record(run_dir)
    assert rec.extra["train"]["resumed_from"].endswith("checkpoint-2")  # 4 was never sealed
    assert rec.extra["train"]["global_step"] == 8


def test_ranks_with_different_configs_fail_in_one_line_and_write_nothing(tmp_path, cache_dir):
    proc = run(torchrun(free_port(), *job_args(tmp_path, cache_dir, "seed=${oc.env:RANK}")), cwd=tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("rvpo-train:")]
    assert lines == [
        "rvpo-train: the ranks of this launch have different configs: rank 1 differs at seed "
        "(0 on rank 0, 1); launch every rank with the same overrides"
    ], proc.stderr[-3000:]
    assert not (tmp_path / "results").exists()


def test_a_missing_rank_fails_in_one_line(tmp_path, cache_dir):
    port = free_port()
    cmd = [sys.executable, "-m", "rvpo_repro.train", *job_args(tmp_path, cache_dir, "+trainer.ddp_timeout=5")]
    proc = run(cmd, cwd=tmp_path, timeout=300, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rvpo-train: rank 0 of 2: the other ranks did not join at 127.0.0.1:")
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


def test_slurm_ddp_task_environment_under_submitit_local_forms_one_two_rank_job(tmp_path, cache_dir):
    """The slurm_ddp launcher maps each task's Slurm ids to RANK/LOCAL_RANK/WORLD_SIZE through
    hydra.job.env_set, with MASTER_ADDR/PORT from the batch script's setup lines. submitit's local
    executor starts the same kind of tasks (two here) with its own ids in SUBMITIT_LOCAL_*: the same
    mapping onto those shows a pickled Hydra job of two tasks forming one job. (Its launcher config
    has no setup lines: MASTER_ADDR/PORT come from the environment the tasks inherit.)"""
    port = free_port()
    cmd = [sys.executable, "-m", "rvpo_repro.train", "--multirun", *job_args(tmp_path, cache_dir)[:-1]]
    cmd += [
        "+launcher=submitit_local",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        "hydra.launcher.tasks_per_node=2",
        "++hydra.job.env_set.RANK=${oc.env:SUBMITIT_LOCAL_GLOBALID}",
        "++hydra.job.env_set.LOCAL_RANK=${oc.env:SUBMITIT_LOCAL_LOCALID}",
        "++hydra.job.env_set.WORLD_SIZE=${oc.env:SUBMITIT_LOCAL_NTASKS}",
    ]
    proc = run(cmd, cwd=tmp_path, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "multirun").rglob("*.err"))
    assert proc.returncode == 0, (proc.stderr + logs)[-4000:]
    (run_dir,) = records(tmp_path)
    assert_two_rank_record(run_dir)


def _workers(launcher: subprocess.Popen) -> list[psutil.Process]:
    return [
        p for p in psutil.Process(launcher.pid).children(recursive=True) if "kill_at" in " ".join(p.cmdline())
    ]


def test_a_two_rank_job_says_its_launch_on_ctrl_c_dies_with_its_launcher_and_resumes_only_on_two_ranks(
    tmp_path, cache_dir
):
    args = job_args(tmp_path, cache_dir, "trainer.max_steps=8", "trainer.save_steps=2")
    hold = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), str(KILL_AT)]
    seals = "runs/*/*/checkpoints/checkpoint-2/rvpo-complete.json"

    # 1. Ctrl-C: torchrun hands SIGINT to its ranks; rank 0 names the launcher's own command line.
    first = subprocess.Popen([*hold, "hold:3", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env(), preexec_fn=sigint_as_in_a_terminal)  # fmt: skip
    try:
        _wait_for(lambda: list((tmp_path / "results").glob(seals)), first, "checkpoint-2 sealed")
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    (line,) = [ln for ln in err.splitlines() if ln.startswith("rvpo-train: interrupted")]
    assert "last checkpoint:" in line and "checkpoint-2" in line, err[-3000:]
    launch = r"Resume from it with: \S*torchrun --nproc_per_node 2 --master_port \d+ \S*kill_at\.py hold:3 experiment="
    assert re.search(launch, line), line

    # 2. SIGKILL of the launcher alone: its ranks (sessions of their own) end with it.
    second = subprocess.Popen([*hold, "hold:3", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env())  # fmt: skip
    ranks: list[psutil.Process] = []
    try:
        log = tmp_path / "hydra" / "train.log"  # rank 0 logs the resume once every rank has joined
        _wait_for(lambda: "resuming" in log.read_text(errors="replace"), second, "the job resumed")
        ranks = _workers(second)
        assert len(ranks) == 2
        os.kill(second.pid, signal.SIGKILL)
        second.wait(timeout=60)
        gone, alive = psutil.wait_procs(ranks, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
    finally:  # only what this step started: the worker's other children live on
        for p in ranks or (_workers(second) if second.poll() is None else []):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        if second.poll() is None:
            second.kill()

    # 3. The two-rank checkpoint on one process: refused in one line naming the two-rank launch.
    single = run([sys.executable, "-m", "rvpo_repro.train", *args], cwd=tmp_path, timeout=600)
    assert single.returncode == 2, single.stderr[-3000:]
    last = single.stderr.strip().splitlines()[-1]
    assert "was saved by 2 rank(s) and this launch has 1: a run resumes on the ranks it started with" in last
    assert "resume with: torchrun --nproc_per_node 2 -m rvpo_repro.train experiment=toy_smoke" in last
    (run_dir,) = (tmp_path / "results" / "runs" / "toy_smoke").iterdir()
    assert not (run_dir / "result.json").exists() and not (run_dir / "model").exists()
