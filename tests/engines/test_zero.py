"""DeepSpeed ZeRO-2 and ZeRO-3 with the shipped accelerate configs, 2 gloo ranks on CPU, as users
launch them: train, save, get killed after a checkpoint, resume with the same command.

Each run must say what it ran under (`ranks.json`: DEEPSPEED, the ZeRO stage, 2 ranks, gloo) and
every rank must end with the same parameters; the resumed run must end where the uninterrupted
one does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from engine_run import REPO, engine_env, only_record, run, script, tail
from safetensors.torch import load_file

from rvpo_repro.run.checkpoints import SEAL

STEPS, SAVE = 8, 2  # steps 3-8 leave the kill seconds to land before training ends


def launch(stage: int, root: Path) -> list[str]:
    return [
        script("accelerate"), "launch",
        "--config_file", str(REPO / "conf" / "accelerate" / f"zero{stage}.yaml"),
        "--num_processes", "2",
        "-m", "rvpo_repro.train",
        "experiment=toy_smoke", "logger=disabled", f"paths.root_dir={root}",
        f"trainer.max_steps={STEPS}", f"trainer.save_steps={SAVE}",
    ]  # fmt: skip


def ranks_report(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "checkpoints" / "ranks.json").read_text())


def weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def kill_after_checkpoint(cmd: list[str], env: dict, root: Path, timeout: float = 900) -> str:
    """Start `cmd`, SIGKILL it and its ranks once a checkpoint is sealed; the checkpoint's name."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, sealed = time.monotonic() + timeout, []
    try:
        while time.monotonic() < deadline and proc.poll() is None and not sealed:
            # the job seals a checkpoint once every rank has written its part
            sealed = list(root.glob(f"results/runs/*/*/checkpoints/checkpoint-*/{SEAL}"))
            time.sleep(0.05)
        assert sealed, f"the run ended (rc {proc.returncode}) before a checkpoint was sealed"
    finally:
        kill_tree(proc)
    return sealed[0].parent.name


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every rank: torchrun starts each rank in a session of its own, so
    killing the launcher's process group would leave the ranks training."""
    import psutil

    try:
        ranks = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        ranks = []
    for p in [*ranks, psutil.Process(proc.pid)] if proc.poll() is None else ranks:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(ranks, timeout=30)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_trains_on_two_gloo_ranks_saves_and_resumes(stage, tmp_path, engine_cache):
    env = engine_env(engine_cache)
    whole = run(launch(stage, tmp_path / "whole"), env, timeout=600)
    assert whole.returncode == 0, tail(whole)
    run_dir, record = only_record(tmp_path / "whole")
    ranks = ranks_report(run_dir)
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert (r["distributed_type"], r["zero_stage"], r["world_size"], r["backend"]) == (
            "DEEPSPEED",
            stage,
            2,
            "gloo",
        ), r
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]
    assert record["extra"]["train"]["world_size"] == 2
    assert record["extra"]["train"]["distributed_type"] == "DEEPSPEED"
    assert record["extra"]["train"]["global_step"] == STEPS

    checkpoint = kill_after_checkpoint(launch(stage, tmp_path / "resumed"), env, tmp_path / "resumed")
    killed = list((tmp_path / "resumed").glob("results/runs/*/*"))
    assert len(killed) == 1 and not (killed[0] / "model").exists(), "the kill came after training ended"
    again = run(launch(stage, tmp_path / "resumed"), env, timeout=600)
    assert again.returncode == 0, tail(again)
    resumed_dir, resumed = only_record(tmp_path / "resumed")
    assert (resumed["extra"]["train"]["resumed_from"] or "").endswith(checkpoint), resumed["extra"]["train"]
    assert ranks_report(resumed_dir)[0]["params_sha256"] == ranks[0]["params_sha256"]
    a, b = weights(run_dir), weights(resumed_dir)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), (
        "resume did not end where the run does"
    )
