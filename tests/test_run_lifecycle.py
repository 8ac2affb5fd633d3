"""The run lifecycle's pieces without processes: rank agreement, the advantage slice, the lock,
the step-weighted loss, missing-verdict limits, file modes."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest
import torch

from rvpo_repro.config import ConfigError
from rvpo_repro.run.errors import RunFailed
from rvpo_repro.run.lock import check_same_config
from rvpo_repro.run.plan import RunPlan
from rvpo_repro.run.ranks import Ranks, agree
from rvpo_repro.run.verdicts import check_missing_share


class FakeRanks(Ranks):
    """Rank 0 of a job whose other ranks gather `others` and broadcast nothing new."""

    def __init__(self, others: list, world_size: int = 2):
        super().__init__(rank=0, world_size=world_size)
        self.others, self.sent = others, []

    def gather(self, obj):
        return [obj, *(o(obj) if callable(o) else o for o in self.others)]

    def broadcast(self, obj):
        self.sent.append(obj)
        return obj


def _plan(config: dict, digest: str) -> RunPlan:
    return RunPlan(cfg=None, config=config, config_hash=digest, run_id="r", run_dir=None)


def test_ranks_with_one_config_agree():
    plan = _plan({"seed": 0}, "abc")
    check_same_config(plan, FakeRanks(["abc"]))


def test_a_rank_with_another_config_is_named_with_the_first_key_that_differs():
    plan = _plan({"seed": 0, "trainer": {"lr": 1e-6, "steps": 5}}, "abc")
    others = iter(["abd", {"seed": 0, "trainer": {"lr": 2e-6, "steps": 5}}])  # rank 1's hash, config
    ranks = FakeRanks([lambda _: next(others)])
    with pytest.raises(ConfigError, match=r"rank 1 differs at trainer\.lr \(1e-06 on rank 0, 2e-06\)"):
        check_same_config(plan, ranks)


def test_rank0s_failure_reaches_every_rank_as_one_line():
    ranks = FakeRanks([], world_size=2)

    def boom():
        raise RunFailed("judge x missed 5 of 5 verdicts")

    with pytest.raises(RunFailed):
        agree(ranks, boom)
    assert ranks.sent == [{"error": "rank 0: judge x missed 5 of 5 verdicts"}]

    waiting = Ranks(rank=1, world_size=2)
    waiting.broadcast = lambda obj: {"error": "rank 0: judge x missed 5 of 5 verdicts"}
    with pytest.raises(RunFailed, match="^rank 0: judge x missed 5 of 5 verdicts$"):
        agree(waiting, lambda: pytest.fail("only rank 0 works"))
    waiting.broadcast = lambda obj: {"value": {"score": 1.0}}
    assert agree(waiting, lambda: pytest.fail("only rank 0 works")) == {"score": 1.0}


def test_each_process_takes_its_own_rows_of_the_gathered_advantages():
    from rvpo_repro.trainer import process_rows

    gathered = torch.arange(12.0)  # 3 processes x 4 rows, process 0's rows first
    assert process_rows(gathered, 0, 4).tolist() == [0, 1, 2, 3]
    assert process_rows(gathered, 1, 4).tolist() == [4, 5, 6, 7]
    assert process_rows(gathered, 2, 4).tolist() == [8, 9, 10, 11]


def test_the_closing_train_loss_weights_each_logged_loss_by_the_steps_it_covers():
    from rvpo_repro.run.resume import recompute_train_loss

    rows = [{"loss": 1.0, "step": 1}, {"loss": 2.0, "step": 4}, {"train_loss": 99.0, "step": 4}]
    assert recompute_train_loss(rows)[-1]["train_loss"] == pytest.approx((1.0 * 1 + 2.0 * 3) / 4)


def test_a_lock_file_replaced_between_open_and_flock_is_not_trusted(tmp_path, monkeypatch):
    import fcntl

    from rvpo_repro.run import lock

    real_flock, swapped = fcntl.flock, []

    def flock(fd, op):
        if not swapped:  # another writer unlinks and recreates the file after our open
            swapped.append(True)
            os.unlink(tmp_path / lock.LOCK_FILE)
            (tmp_path / lock.LOCK_FILE).write_text("")
        return real_flock(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock)
    with lock.run_lock(tmp_path):
        monkeypatch.setattr(lock.fcntl, "flock", real_flock)
        with pytest.raises(lock.RunLockedError):  # the file at the path is the one held
            with lock.run_lock(tmp_path):
                pass


@pytest.mark.parametrize(("missing", "verdicts", "limit", "fails"), [(0, 10, 0.1, False), (1, 10, 0.1, False),
                         (2, 10, 0.1, True), (10, 10, 1.0, False), (0, 0, 0.0, False)])  # fmt: skip
def test_a_run_over_the_missing_verdict_limit_fails_naming_the_judge(missing, verdicts, limit, fails):
    usage = {"judge": "openai/gpt", "verdicts": verdicts, "missing": missing,
             "missing_share": missing / verdicts if verdicts else 0.0, "first_error": "HTTP 401"}  # fmt: skip
    if not fails:
        check_missing_share(usage, limit)
        return
    with pytest.raises(RunFailed) as info:
        check_missing_share(usage, limit)
    assert str(info.value) == (
        f"judge openai/gpt missed {missing} of {verdicts} verdicts ({missing / verdicts:.1%}, over "
        f"run.max_missing_share={limit:g}); nothing sealed; first error: HTTP 401"
    )


def test_written_files_follow_the_umask(tmp_path):
    from rvpo_repro.io import atomic_write

    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "result.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failure_after_publishing_keeps_the_model_when_there_is_no_checkpoint(tmp_path):
    from rvpo_repro.run.checkpoints import publish_model
    from rvpo_repro.run.lock import discard_if_unstarted

    partial = tmp_path / "model.partial"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"w" * 10)
    publish_model(partial, tmp_path / "model", {"global_step": 6})  # checkpoints rotated out or never kept
    assert discard_if_unstarted(tmp_path) is False
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == b"w" * 10

    empty = tmp_path / "unstarted"
    (empty / "checkpoints" / "checkpoint-2").mkdir(parents=True)  # never sealed
    assert discard_if_unstarted(empty) is True and not empty.exists()


def test_an_unstarted_run_in_hydras_own_folder_keeps_hydras_files(tmp_path):
    from rvpo_repro.run.lock import discard_if_unstarted

    (tmp_path / ".hydra").mkdir()
    (tmp_path / "train.log").write_text("the log of this launch\n")
    (tmp_path / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    assert discard_if_unstarted(tmp_path, keep=frozenset({".hydra", "train.log"})) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", "train.log"]
    assert (tmp_path / "train.log").read_text() == "the log of this launch\n"


def test_a_checkpoint_of_another_number_of_ranks_is_refused_naming_the_launch(tmp_path, monkeypatch):
    from rvpo_repro.run.checkpoints import seal
    from rvpo_repro.run.lock import other_world_size

    ckpt = tmp_path / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"w")
    seal(ckpt, world_size=2)
    monkeypatch.setattr("sys.argv", ["rvpo-train", "experiment=toy_smoke", "seed=1"])
    assert other_world_size(str(ckpt), 2) is None
    line = other_world_size(str(ckpt), 1)
    assert line == (
        f"{ckpt} was saved by 2 rank(s) and this launch has 1: a run resumes on the ranks it started "
        "with; resume with: torchrun --nproc_per_node 2 -m rvpo_repro.train experiment=toy_smoke seed=1 "
        f"(or move {ckpt.parent} aside to start afresh)"
    )
    seal(ckpt, world_size=1)
    assert "resume with: rvpo-train experiment=toy_smoke seed=1 " in other_world_size(str(ckpt), 4)


@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "a\\b", ""])
def test_an_experiment_name_that_is_a_path_is_refused_in_one_line(name, compose_cfg):
    from rvpo_repro.run.plan import plan_run

    cfg = compose_cfg("experiment=toy_smoke", f"experiment_name='{name}'")
    with pytest.raises(ConfigError, match=r"^experiment_name=.*: expected one folder name") as info:
        plan_run(cfg)
    assert "\n" not in str(info.value)


def test_a_bare_ctrl_c_is_one_real_line_and_exit_130(capsys):
    from rvpo_repro.cli import one_line_errors

    def job(cfg):
        raise KeyboardInterrupt  # e.g. during the first imports, before the run opened

    with pytest.raises(SystemExit) as info:
        one_line_errors(job, "rvpo-train")(None)
    assert info.value.code == 130
    assert capsys.readouterr().err == "rvpo-train: interrupted before the run opened; nothing kept\n"


def test_rank0s_bare_error_reaches_the_other_ranks_with_its_name():
    ranks = FakeRanks([], world_size=2)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        agree(ranks, boom)
    assert ranks.sent == [{"error": "rank 0: KeyboardInterrupt"}]


def test_the_resume_command_of_a_rank_is_its_launchers_own_line(monkeypatch):
    from rvpo_repro.run import ranks

    venv_python, torchrun = "/venv/bin/python3.11", "/venv/bin/torchrun"
    parent = [venv_python, torchrun, "--nproc_per_node", "2", "-m", "rvpo_repro.train", "seed=1"]
    monkeypatch.setattr(ranks, "_parent_argv", lambda: parent)
    monkeypatch.setattr(ranks.shutil, "which", lambda name: torchrun if name == "torchrun" else None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert (
        ranks.launch_command(["rvpo-train"], ["seed=1"])
        == "torchrun --nproc_per_node 2 -m rvpo_repro.train seed=1"
    )
    monkeypatch.setattr(ranks.shutil, "which", lambda name: None)  # not on PATH: the path as launched
    assert ranks.launch_command(["rvpo-train"], ["seed=1"]).startswith(f"{torchrun} --nproc_per_node 2 ")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")  # e.g. Slurm tasks: no launcher process to name
    assert (
        ranks.launch_command(["rvpo-train"], ["seed=1"]) == "rvpo-train seed=1 (on all 2 ranks, as launched)"
    )
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ranks.launch_command(["rvpo-train"], ["a b"]) == "rvpo-train 'a b'"


def test_a_rank_in_a_session_of_its_own_dies_with_its_launcher(tmp_path):
    """As torchrun starts a rank (start_new_session): SIGKILL of the launcher alone ends the rank."""
    import signal
    import subprocess
    import sys

    import psutil

    rank = "from rvpo_repro.run.ranks import die_with_launcher; die_with_launcher(); print('armed', flush=True); import time; time.sleep(600)"
    launcher = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {rank!r}], start_new_session=True, stdout=sys.stdout)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = psutil.Process(int(proc.stdout.readline()))
        assert proc.stdout.readline().strip() == "armed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs([child], timeout=30)  # not our child: its status is not ours to read
        assert not alive
    finally:  # only what this test started: a worker's other children (W&B's service) live on
        if proc.poll() is None:
            proc.kill()
        if child is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def test_a_job_builds_its_aggregator_once_and_trains_with_the_one_validation_built(compose_cfg, monkeypatch):
    import rvpo_repro.aggregators as aggregators
    from rvpo_repro.run.plan import plan_run

    built, build = [], aggregators.aggregator_from_config
    monkeypatch.setattr(
        aggregators, "aggregator_from_config", lambda cfg: built.append(build(cfg)) or built[-1]
    )
    plan = plan_run(compose_cfg("experiment=toy_smoke", "aggregator=rvpo", "aggregator.risk=2.0"))
    assert len(built) == 1 and plan.aggregator is built[0] and plan.aggregator.risk == 2.0


class LearnsRunFromRank0(Ranks):
    """Rank 1 of a job whose rank 0 decided to run."""

    def __init__(self):
        super().__init__(rank=1, world_size=2)

    def gather(self, obj):
        return [obj, obj]

    def broadcast(self, obj):
        return {"action": "run", "trained": None, "resume": None}


CMD = "rvpo-train seed=1"
ENOSPC = OSError(28, "No space left on device", "ckpt/optimizer.pt")


@pytest.mark.parametrize(
    ("rank", "published", "raised", "expected", "kept"),
    [
        (0, False, KeyboardInterrupt(), f"interrupted before the first checkpoint; nothing kept. Start again with: {CMD}", False),
        (0, True, KeyboardInterrupt(), f"interrupted after training; evaluation is left. Finish it with: {CMD}", True),
        (0, False, ENOSPC, f"no space left on the device writing ckpt/optimizer.pt; no complete checkpoint. Free space, then resume with: {CMD}", False),
        (0, False, ValueError("boom"), "boom", False),
        (1, False, KeyboardInterrupt(), "", True),  # rank 0 alone says where the run stands
        (1, False, ENOSPC, f"no space left on the device writing ckpt/optimizer.pt; no complete checkpoint. Free space, then resume with: {CMD}", True),
        (1, False, ValueError("boom"), "boom", True),  # rank 0 alone removes what the run wrote
    ],
)  # fmt: skip
def test_a_run_that_ends_early_says_so_in_one_line_and_rank0_removes_an_unstarted_run(
    tmp_path, rank, published, raised, expected, kept
):
    from rvpo_repro.run.errors import RunInterrupted
    from rvpo_repro.run.lock import open_run

    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    if published:
        from rvpo_repro.run.checkpoints import seal

        seal(run_dir / "model")
    plan = RunPlan(cfg=None, config={}, config_hash="h", run_id="r", run_dir=run_dir)
    ranks = Ranks() if rank == 0 else LearnsRunFromRank0()
    with pytest.raises(BaseException) as info, open_run(plan, ranks, CMD) as run:
        assert run is not None and run.resume is None
        raise raised
    wanted = {KeyboardInterrupt: RunInterrupted if rank == 0 else KeyboardInterrupt, OSError: RunFailed}
    assert type(info.value) is wanted.get(type(raised), type(raised)) and str(info.value) == expected
    assert run_dir.is_dir() is kept and (run_dir / "model").is_dir() is kept
