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
import torch
from engine_run import REPO, engine_env, only_record, run, script, tail
from safetensors.torch import load_file

from rvpo_repro.run.checkpoints import SEAL

STEPS, SAVE = 8, 2  # steps 3-8 leave the kill seconds to land before training ends


def launch(stage: int, root: Path, steps: int = STEPS, save: int = SAVE) -> list[str]:
    return [
        script("accelerate"), "launch",
        "--config_file", str(REPO / "conf" / "accelerate" / f"zero{stage}.yaml"),
        "--num_processes", "2",
        "-m", "rvpo_repro.train",
        "experiment=toy_smoke", "logger=disabled", f"paths.root_dir={root}",
        f"trainer.max_steps={steps}", f"trainer.save_steps={save}",
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


def test_zero2_bf16_mode_updates_fp32_master_weights_at_the_paper_learning_rate(tmp_path, engine_cache):
    """model.dtype=bfloat16 under ZeRO is DeepSpeed's bf16 mode: bf16 module, fp32 master weights in
    the optimizer. At the paper's learning rate (1e-6) the master weights move nearly everywhere
    (a pure-bf16 AdamW step leaves most of a matrix where it was; tests/test_precision.py)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from rvpo_repro.config import compose
    from rvpo_repro.models import resolve_model_path

    env = engine_env(engine_cache)
    cmd = [*launch(2, tmp_path, steps=3, save=3), "model.dtype=bfloat16", "trainer.learning_rate=1e-6"]
    proc = run(cmd, env, timeout=600)
    assert proc.returncode == 0, tail(proc)
    run_dir, record = only_record(tmp_path)
    for r in ranks_report(run_dir):
        assert (r["distributed_type"], r["zero_stage"], r["mixed_precision"]) == ("DEEPSPEED", 2, "bf16"), r
        assert (r["weights_dtype"], r["master_dtype"]) == ("bfloat16", "float32"), r
    assert record["config"]["trainer"]["bf16"] is True
    tiny = Path(resolve_model_path(compose(["experiment=toy_smoke"]).model, engine_cache))
    start = load_file(str(tiny / "model.safetensors"))
    master = get_fp32_state_dict_from_zero_checkpoint(str(run_dir / "checkpoints" / "checkpoint-3"))
    name = "model.layers.0.mlp.up_proj.weight"
    assert master[name].dtype == start[name].dtype == torch.float32
    moved = (master[name] != start[name]).float().mean().item()
    assert moved > 0.99, f"3 steps at lr 1e-6 moved {moved:.2%} of {name}'s fp32 master weights"
