"""Hydra launchers (conf/launcher/) and the GPU check script (scripts/gpu_check.py).

The Slurm launcher's code path (hydra-submitit-launcher) runs a two-job sweep through submitit's
local executor; a rerun after a "killed" sweep runs only the unfinished job.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rvpo_repro.config import compose
from rvpo_repro.run.record import config_hash, load_record, run_dir

ROOT = Path(__file__).resolve().parents[1]


def _has_plugin(name: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{name}") is not None


needs_submitit = pytest.mark.skipif(
    not _has_plugin("hydra_submitit_launcher"), reason="needs hydra-submitit-launcher==1.2.0"
)
needs_joblib = pytest.mark.skipif(
    not _has_plugin("hydra_joblib_launcher"), reason="needs hydra-joblib-launcher==1.2.0"
)


# ----------------------------------------------------------------------------- launcher configs
def _launcher(*overrides: str):
    cfg = compose(list(overrides), return_hydra_config=True)
    return cfg, cfg.hydra.launcher


def test_local_launcher_is_hydras_basic_one():
    cfg, launcher = _launcher("experiment=toy", "+launcher=local")
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "basic"
    assert launcher._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@needs_joblib
def test_joblib_launcher():
    _, launcher = _launcher("experiment=toy", "+launcher=joblib", "hydra.launcher.n_jobs=3")
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 3


@needs_submitit
def test_slurm_launcher_takes_site_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("RVPO_SLURM_PARTITION", "h100")
    monkeypatch.setenv("RVPO_SLURM_ACCOUNT", "rl-lab")
    _, launcher = _launcher("experiment=tool_calling", "+launcher=slurm")
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.qos) == ("h100", "rl-lab", None)
    assert launcher.gpus_per_node is None and launcher.tasks_per_node == 1  # rvpo-sweep sets GPUs
    assert launcher.max_num_timeout > 0  # a run cut by its time limit is requeued and resumes


@needs_submitit
def test_slurm_ddp_runs_one_task_per_gpu_with_torch_distributed_variables():
    cfg, launcher = _launcher("experiment=rubric_medicine", "model=qwen2.5-7b", "+launcher=slurm_ddp")
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == 8
    assert any("MASTER_ADDR" in line for line in launcher.setup)
    assert any("MASTER_PORT" in line for line in launcher.setup)
    from omegaconf import OmegaConf

    env = OmegaConf.to_container(cfg.hydra.job.env_set, resolve=False)
    assert env == {
        "RANK": "${oc.env:SLURM_PROCID}",
        "LOCAL_RANK": "${oc.env:SLURM_LOCALID}",
        "WORLD_SIZE": "${oc.env:SLURM_NTASKS}",
    }


def _sbatch_script(tmp_path: Path, monkeypatch, *overrides: str) -> str:
    """The batch script submitit would hand `sbatch` for this launcher config (no cluster: a fake
    `srun` on PATH satisfies submitit's check); parameters mapped as the Hydra plugin maps them."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = compose([*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    del params["_target_"], params["submitit_folder"]
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=tmp_path / "submitit", slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -u -m submitit.core._submit FOLDER", "uid")


@needs_submitit
def test_slurm_batch_scripts(tmp_path, monkeypatch):
    monkeypatch.setenv("RVPO_SLURM_PARTITION", "h100")
    ddp = _sbatch_script(
        tmp_path / "a", monkeypatch, "experiment=rubric_medicine", "model=qwen2.5-7b", "+launcher=slurm_ddp"
    )
    for line in (
        "#SBATCH --partition=h100",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --mem-per-gpu=96G",
        "#SBATCH --nodes=1",
        'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
    ):
        assert line in ddp.splitlines(), (line, ddp)
    assert "srun --unbuffered" in ddp
    cpu = _sbatch_script(tmp_path / "b", monkeypatch, "experiment=toy", "+launcher=slurm")
    assert "#SBATCH --ntasks-per-node=1" in cpu and "#SBATCH --mem=64GB" in cpu
    assert "gpus-per-node" not in cpu and "MASTER_ADDR" not in cpu


@needs_submitit
def test_submitit_local_launcher():
    _, launcher = _launcher("experiment=toy_smoke", "+launcher=submitit_local")
    assert launcher._target_.endswith("submitit_launcher.LocalLauncher")


@needs_submitit
@pytest.mark.parametrize("launcher", ["local", "joblib", "slurm", "slurm_ddp", "submitit_local"])
def test_choosing_a_launcher_leaves_the_run_record_unchanged(launcher):
    """The launcher only touches `hydra`, so a run's config hash (its record) is the same."""
    base = compose(["experiment=tool_calling", "model=qwen2.5-1.5b", "aggregator=gdpo", "seed=1"])
    other = compose(
        [
            "experiment=tool_calling",
            "model=qwen2.5-1.5b",
            "aggregator=gdpo",
            "seed=1",
            f"+launcher={launcher}",
        ]
    )
    assert config_hash(base) == config_hash(other)
    assert run_dir(base) == run_dir(other)


# ----------------------------------------------------------------------------- a sweep through submitit
def _env() -> dict:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",  # two jobs side by side on a small machine
    }


SWEEP = ["aggregator=grpo,rvpo", "trainer.max_steps=1", "task.num_eval_prompts=4", "task.eval_samples=1",
         "logger=disabled", "+launcher=submitit_local"]  # fmt: skip


def _records(tmp_path: Path) -> dict[str, Path]:
    found = (tmp_path / "results" / "runs" / "toy_smoke").glob("*/result.json")
    return {p.parent.name.split("-")[2]: p for p in found}  # aggregator -> result.json


def _skip_lines(tmp_path: Path) -> set[str]:
    """The pipeline's skip log lines, from the Hydra job logs and submitit's copies of stdout."""
    lines = set()
    for path in (tmp_path / "multirun").rglob("*"):
        if path.is_file() and path.suffix in (".log", ".out", ".err"):
            lines |= {
                line
                for line in path.read_text(errors="replace").splitlines()
                if "skipping finished run" in line
            }
    return lines


@pytest.mark.slow
@needs_submitit
def test_submitit_sweep_runs_both_jobs_then_a_rerun_runs_only_the_missing_one(
    tmp_path, train_cmd, tiny_model_dir
):
    cmd = train_cmd(*SWEEP, multirun=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    first = _records(tmp_path)
    assert set(first) == {"grpo", "rvpo"}, first
    assert list((tmp_path / "multirun").glob(".submitit/*/*_result.pkl"))  # submitit ran them
    assert not _skip_lines(tmp_path)

    # A killed sweep: the rvpo job never finished (its record is missing), the grpo one did.
    first["rvpo"].unlink()
    kept_mtime = first["grpo"].stat().st_mtime_ns
    time.sleep(0.05)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    second = _records(tmp_path)
    assert set(second) == {"grpo", "rvpo"}
    assert second["grpo"].stat().st_mtime_ns == kept_mtime  # not rerun
    skipped = _skip_lines(tmp_path)
    assert len(skipped) == 1 and first["grpo"].parent.name in skipped.pop(), skipped
    assert load_record(second["rvpo"]).seed == 0


# ----------------------------------------------------------------------------- GPU check script
def _gpu_check():
    spec = importlib.util.spec_from_file_location("rvpo_gpu_check_script", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _gpu_check()
TINY = [
    "--set", "num_hidden_layers=2",
    "--set", "hidden_size=64",
    "--set", "intermediate_size=128",
    "--set", "num_attention_heads=4",
    "--set", "num_key_value_heads=2",
]  # fmt: skip


def test_gpu_check_arguments():
    args = gpu_check.parse_args([])
    defaults = (args.steps, args.batch_size, args.num_generations, args.vocab, args.device)
    assert defaults == (6, 16, 8, "qwen", "cuda")
    args = gpu_check.parse_args(["--steps", "3", "--max-completion-length", "64", *TINY])
    assert args.steps == 3 and args.max_completion_length == 64 and len(args.overrides) == 5
    for bad in (["--batch-size", "10"], ["--steps", "1"], ["--set", "hidden=3"], ["--set", "hidden_size"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)


def test_gpu_check_builds_the_qwen25_1_5b_architecture():
    from rvpo_repro.models import build_tiny_tokenizer

    tok = build_tiny_tokenizer(512)
    config = gpu_check.build_model_config(gpu_check.parse_args([]), tok)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (1536, 28, 8960)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (12, 2, 151936)
    assert config.tie_word_embeddings and config.rope_parameters["rope_theta"] == 1e6
    assert config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")

    small = gpu_check.build_model_config(gpu_check.parse_args([*TINY, "--vocab", "tokenizer"]), tok)
    assert (small.hidden_size, small.num_hidden_layers, small.vocab_size) == (64, 2, len(tok))
    assert small.intermediate_size == 128  # overridden
    assert small.rope_parameters["rope_theta"] == 1e6 and small.tie_word_embeddings  # the rest stays real
    from transformers import Qwen2ForCausalLM

    n_params = sum(p.numel() for p in Qwen2ForCausalLM(small).parameters())
    assert n_params < 200_000


def _run_gpu_check(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_env(), "PY": sys.executable},
        cwd=ROOT,
    )


def test_gpu_check_fails_fast_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    t0 = time.perf_counter()
    proc = _run_gpu_check(timeout=60)
    assert proc.returncode == gpu_check.NO_CUDA_EXIT
    assert "no CUDA device" in proc.stderr
    assert time.perf_counter() - t0 < 30


@pytest.mark.slow
def test_gpu_check_loop_runs_on_cpu_with_a_tiny_override():
    """Part 1 of the check (model, task data, RVPOTrainer, meters: hf generation) on CPU, shrunk, for
    machines without a GPU; parts 2 and 3 (colocated vLLM, ZeRO-2 on two GPUs) need CUDA."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--vocab", "tokenizer", *TINY,
        "--steps", "2", "--batch-size", "4", "--num-generations", "2", "--max-completion-length", "4"],
        capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["timed_steps"] == 1 and summary["tokens_per_s"] > 0
    assert summary["mean_completion_length"] <= 4 and "tokens per second" in proc.stdout


@pytest.mark.gpu
def test_gpu_check_on_a_gpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run_gpu_check("--steps", "3", "--max-completion-length", "64", "--out", str(out), timeout=520)
    report = json.loads(out.read_text())
    assert proc.returncode == 0, {k: v.get("log_tail", "")[-1000:] for k, v in report["parts"].items()}
    rvpo = report["parts"]["rvpo-1.5b"]["result"]
    assert rvpo["params"] > 1.5e9 and rvpo["tokens_per_s"] > 0
    assert 3 < rvpo["peak_memory_allocated_gib"] < 80
    assert report["parts"]["roofline"]["result"]["bf16_matmul_flops"] > 1e14
    assert report["comparison"]["rvpo_over_grpo_step_time_1.5b"] > 0


def test_gpu_check_parts_get_the_shared_arguments_only():
    argv = ["--part", "all", "--out", "x.json", "--deadline-s=100", "--steps", "3", "--set", "hidden_size=64"]
    assert gpu_check._passthrough(argv) == ["--steps", "3", "--set", "hidden_size=64"]


@pytest.mark.slow
def test_gpu_check_goes_on_past_a_failing_and_a_killed_part(tmp_path, monkeypatch):
    """A part that fails and a part killed at its hard limit are recorded; the parts after them run."""
    monkeypatch.setattr(gpu_check, "PARTS", [
        ("broken", ["--part", "rvpo", "--attn", "no_such_attention"], 120),
        ("killed", ["--part", "rvpo"], 3),
        ("roofline", ["--part", "roofline"], 120),
    ])  # fmt: skip
    monkeypatch.setattr(gpu_check, "MIN_PART_S", 1.0)
    out = tmp_path / "check.json"
    args = [*TINY, "--device", "cpu", "--vocab", "tokenizer", "--steps", "2", "--batch-size", "4",
            "--num-generations", "2", "--max-completion-length", "4", "--part", "all", "--out", str(out)]  # fmt: skip
    assert gpu_check.main(args) == 1
    parts = json.loads(out.read_text())["parts"]
    assert [parts[k]["status"] for k in ("broken", "killed", "roofline")] == ["failed", "timeout", "ok"]
    assert "no_such_attention" in parts["broken"]["log_tail"] and parts["broken"]["returncode"] != 0
    assert parts["killed"]["seconds"] < 10 and parts["roofline"]["result"]["copy_bytes_per_s"] > 0


def test_gpu_check_plans_the_config_it_measures():
    from rvpo_repro.config import compose

    args = gpu_check.parse_args(["--size", "3b", "--batch-size", "16", "--max-completion-length", "128"])
    cfg = compose(gpu_check.plan_overrides(args, 40))
    got = (cfg.model.name, cfg.model.num_gpus, cfg.model.accelerate, cfg.model.per_device_train_batch_size)
    assert got == ("qwen2.5-3b", 1, "ddp", 16) and cfg.model.gradient_accumulation_steps == 1
    assert (cfg.task.max_prompt_tokens, cfg.trainer.max_completion_length) == (40, 128)
    assert not cfg.trainer.use_vllm and cfg.trainer.beta == 0.0
    plan = gpu_check.planned_memory(args, 40)
    if "error" in plan:  # a suite without the memory plan: said, not raised
        assert "memory" in plan["error"]
    else:  # DDP keeps fp32 weights, gradients and two AdamW moments: 16 bytes a parameter
        assert plan["peak_gb"] > 16 * 3.09 and plan["phase"] in ("training", "generation")


@pytest.fixture(scope="module")
def toy_prompts():
    """The check's task (toy_constraints) as its parts build it, with the suite's tiny tokenizer."""
    from rvpo_repro.config import compose
    from rvpo_repro.models import build_tiny_tokenizer
    from rvpo_repro.run.task import build_task

    cfg = compose(["experiment=toy", "seed=0"])
    tokenizer = build_tiny_tokenizer(cfg.model.tiny.vocab_size)
    return build_task(cfg, tokenizer)[1].train_dataset, tokenizer


def test_gpu_check_counts_the_prompt_tokens_the_trainer_feeds(toy_prompts):
    dataset, tok = toy_prompts
    ids = [tok.apply_chat_template(r["prompt"], add_generation_prompt=True)["input_ids"] for r in dataset]
    assert gpu_check.longest_prompt(dataset, tok) == max(map(len, ids)) > 10


def test_gpu_check_parts_fit_one_80_gb_gpu_by_the_plan(toy_prompts):
    """Each training part's config, as --part all runs it, is planned within 80 GB (no OOM by design)."""
    prompt = gpu_check.longest_prompt(*toy_prompts)
    planned = {}
    for name, part_args, _ in gpu_check.PARTS:
        if "roofline" not in part_args:
            args = gpu_check.parse_args(part_args)
            plan = gpu_check.planned_memory(args, prompt)
            assert "peak_gb" in plan, plan
            planned[name] = plan["peak_gb"]
            assert plan["parts_gb"]["HF generation (KV cache, logits)"] < 1.0  # one micro-batch generated
    assert set(planned) == {"rvpo-1.5b", "grpo-1.5b", "rvpo-3b"}
    assert all(peak <= 80 for peak in planned.values()), planned
    assert planned["rvpo-3b"] > 16 * 3.09  # fp32 weights, grads and AdamW of 3.09B parameters
