"""The paper sweeps (sweeps/*.yaml, scripts/sweep.py): every run composes to the intended model,
task, aggregator and seed; costs in the headers match the estimator; dry runs print the plan."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rvpo_repro import records
from rvpo_repro.config import compose, validate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def _load_sweep_module():
    spec = importlib.util.spec_from_file_location("rvpo_sweep_script", ROOT / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep_module()


# ----------------------------------------------------------------------------- expectations
# Written out independently of the sweep files: (model, task, aggregator signature) per run.
GRPO = ("grpo",)
GDPO = ("gdpo",)
RVPO_K1 = ("rvpo", "constant", 1.0)
RVPO_ANNEALED = ("rvpo", "linear", 0.5, 2.0)
RUBRIC_AGGS = (GRPO, GDPO, RVPO_ANNEALED)


def agg_signature(agg) -> tuple:
    if agg.name == "rvpo":
        if agg.schedule in (None, "constant"):
            return ("rvpo", "constant", float(agg.risk))
        return ("rvpo", agg.schedule, float(agg.risk_start), float(agg.risk_end))
    if agg.name == "variance_penalty":
        return ("variance_penalty", float(agg.beta))
    return (agg.name,)


def _cells(models, task, aggs):
    return {(m, task, a, s) for m, a, s in itertools.product(models, aggs, SEEDS)}


RUBRIC_SIZES = ("qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b")
EXPECTED = {
    "tool_calling": _cells(("qwen2.5-1.5b", "qwen2.5-3b"), "toolrl", (GRPO, GDPO, RVPO_K1)),
    "healthbench_scaling": _cells(RUBRIC_SIZES, "rar_medicine", RUBRIC_AGGS),
    "gpqa": _cells(RUBRIC_SIZES, "rar_science", RUBRIC_AGGS),
    "risk_ablation": _cells(
        ("qwen2.5-7b",),
        "rar_medicine",
        (("rvpo", "constant", 5.0), RVPO_ANNEALED, GDPO, ("hard_min",), ("variance_penalty", 0.5)),
    ),
}
ACCELERATE_BY_MODEL = {
    "qwen2.5-1.5b": "ddp",
    "qwen2.5-3b": "zero2",
    "qwen2.5-7b": "zero2",
    "qwen2.5-14b": "zero3",
}
GPUS_BY_MODEL = {"qwen2.5-1.5b": 4, "qwen2.5-3b": 4, "qwen2.5-7b": 8, "qwen2.5-14b": 8}


@pytest.fixture(scope="module")
def plans() -> dict:
    """Every sweep planned once (composing all its runs), without touching results/."""
    return {name: sweep.plan(sweep.load_sweep(name), status=False) for name in sweep.available()}


def test_every_sweep_is_expected():
    assert set(sweep.available()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sweep_runs_resolve_to_intended_cells(plans, name):
    jobs = [job for pb in plans[name] for job in pb.jobs]
    got = [(j.cfg.model.name, j.cfg.task.name, agg_signature(j.cfg.aggregator), j.cfg.seed) for j in jobs]
    assert len(got) == len(set(got)), f"{name}: a run is planned twice"
    assert set(got) == EXPECTED[name]
    run_dirs = {records.run_dir(j.cfg) for j in jobs}
    assert len(run_dirs) == len(jobs), f"{name}: two runs would share one record"
    for job in jobs:
        validate(job.cfg)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_blocks_have_one_model_its_gpus_and_accelerate_config(plans, name):
    for pb in plans[name]:
        models = {j.cfg.model.name for j in pb.jobs}
        assert len(models) == 1, f"{name}/{pb.block.name} mixes models {models}"
        (model,) = models
        assert pb.gpus == GPUS_BY_MODEL[model]
        assert pb.block.accelerate == ACCELERATE_BY_MODEL[model]
        assert (ROOT / "conf" / "accelerate" / f"{pb.block.accelerate}.yaml").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_header_states_runs_and_gpu_hours_that_match_the_estimate(plans, name):
    s = sweep.load_sweep(name)
    runs = re.search(r"^# Runs: (\d+)", s.header, re.M)
    hours = re.search(r"^# Expected GPU-hours: (\d+)", s.header, re.M)
    assert runs and hours, f"sweeps/{name}.yaml: header lacks 'Runs: N' or 'Expected GPU-hours: N'"
    assert int(runs.group(1)) == sum(len(pb.jobs) for pb in plans[name])
    total = sweep.total_gpu_hours(plans[name])
    assert total > 0 and abs(int(hours.group(1)) - total) <= 0.02 * total + 1, (name, hours.group(1), total)
    assert "assumptions" in s.header.lower() or "Derivation" in s.header


def test_risk_ablation_shares_the_annealed_and_gdpo_runs_with_healthbench_scaling(plans):
    scaling = {records.run_dir(j.cfg) for pb in plans["healthbench_scaling"] for j in pb.jobs}
    ablation = {pb.block.name: {records.run_dir(j.cfg) for j in pb.jobs} for pb in plans["risk_ablation"]}
    assert ablation["annealed"] <= scaling and ablation["gdpo_k0"] <= scaling
    for block in ("fixed_k5", "hard_min", "variance_penalty"):
        assert not ablation[block] & scaling
        assert all(d.parent.name.startswith("rubric_medicine_7b_") for d in ablation[block])


def test_estimate_follows_model_size_and_is_zero_on_cpu():
    small = sweep.estimate(compose(["experiment=tool_calling_1.5b_rvpo"]), {"prompt_tokens": 1000})
    large = sweep.estimate(compose(["experiment=tool_calling_3b_rvpo"]), {"prompt_tokens": 1000})
    assert 0 < small.step_seconds < large.step_seconds and small.gpus == large.gpus == 4
    assert sweep.estimate(compose(["experiment=toy"])).gpu_hours == 0.0
    judged = sweep.estimate(
        compose(["experiment=rubric_medicine_7b_rvpo"]), {"judge_items": 10, "judge_gpus": 2}
    )
    assert judged.gpus == 10 and judged.parts["judge"] > 0


# ----------------------------------------------------------------------------- experiment configs
EXPERIMENT = re.compile(r"^(tool_calling|rubric_medicine|rubric_science)_(1\.5b|3b|7b|14b)_(grpo|gdpo|rvpo)$")
TASK_OF = {"tool_calling": "toolrl", "rubric_medicine": "rar_medicine", "rubric_science": "rar_science"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_config_composes(name):
    cfg = compose([f"experiment={name}"])
    match = EXPERIMENT.match(name)
    if not match:  # toy, smoke and *_base files: composing is the check
        return
    track, size, agg = match.groups()
    validate(cfg)
    assert cfg.experiment_name == name
    assert cfg.model.name == f"qwen2.5-{size}" and cfg.model.path == f"Qwen/Qwen2.5-{size.upper()}-Instruct"
    assert cfg.task.name == TASK_OF[track]
    rvpo = RVPO_K1 if track == "tool_calling" else RVPO_ANNEALED
    expected = {"grpo": GRPO, "gdpo": GDPO, "rvpo": rvpo}[agg]
    assert agg_signature(cfg.aggregator) == expected
    assert cfg.trainer.num_generations == (4 if track == "tool_calling" else 16)  # paper's group sizes


# ----------------------------------------------------------------------------- overrides and commands
def test_extra_overrides_replace_sweep_params_or_add_to_every_block():
    s = sweep.load_sweep("tool_calling", ["seed=0", "trainer.max_steps=10"])
    for block in s.blocks:
        assert len(block.jobs()) == 3
        assert "seed=0" in block.fixed and "trainer.max_steps=10" in block.fixed
    s = sweep.load_sweep("tool_calling", ["seed=3,4"])
    assert all(b.swept["seed"] == ["3", "4"] for b in s.blocks)


def _hydra_args(command: list[str]) -> list[str]:
    """A block command's Hydra overrides, each swept key cut to its first value (one job)."""
    args = command[command.index("--multirun") + 1 :]
    out = []
    for a in args:
        key, value = a.split("=", 1)
        swept = "," in value and "${" not in value and not value.startswith(('"', "'"))
        out.append(f"{key}={value.split(',')[0]}" if swept else a)
    return out


@pytest.mark.parametrize("name", ["tool_calling", "risk_ablation"])
def test_block_commands_compose_with_each_launcher(plans, name):
    s = sweep.load_sweep(name)
    pb = plans[name][0]
    local = sweep.block_command(s, pb.block, "local", pb.gpus, 3.0, 24)
    assert local[1:3] == ["-m", "accelerate.commands.launch"] and f"--num_processes={pb.gpus}" not in local
    assert local[local.index("--num_processes") + 1] == str(pb.gpus)
    cfg = compose(_hydra_args(local), return_hydra_config=True)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "basic"

    slurm = sweep.block_command(s, pb.block, "slurm", pb.gpus, 30.0, 24)
    assert slurm[1:3] == ["-m", "rvpo_repro.train"]  # Slurm starts one process per GPU itself
    cfg = compose(_hydra_args(slurm), return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == pb.gpus
    assert launcher.timeout_min == 24 * 60  # 30 h x 1.25, capped at the 24 h maximum
    env = cfg.hydra.job.env_set
    assert env.ACCELERATE_MIXED_PRECISION == "bf16"
    if pb.block.accelerate == "ddp":
        assert "ACCELERATE_USE_DEEPSPEED" not in env
    else:
        assert env.ACCELERATE_USE_DEEPSPEED == "true"
        assert env.ACCELERATE_DEEPSPEED_ZERO_STAGE == pb.block.accelerate[-1]
        assert (
            env.ACCELERATE_CONFIG_DS_FIELDS
            == sweep.accelerate_env(pb.block.accelerate)["ACCELERATE_CONFIG_DS_FIELDS"]
        )
    with pytest.raises(ValueError, match="joblib"):
        sweep.block_command(s, pb.block, "joblib", pb.gpus, 3.0, 24)


@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3"])
def test_accelerate_env_is_what_accelerate_launch_exports(strategy, monkeypatch):
    """The variables the Slurm launcher sets equal those `accelerate launch --config_file` derives."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    for var in [v for v in os.environ if v.startswith("ACCELERATE_")]:
        monkeypatch.delenv(var)
    config = ROOT / "conf" / "accelerate" / f"{strategy}.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "rvpo_repro.train"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if strategy == "ddp":
        env = prepare_multi_gpu_env(args)
    else:  # as accelerate.commands.launch.launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    theirs = {k: v for k, v in env.items() if k.startswith("ACCELERATE_") and "DYNAMO" not in k}
    assert sweep.accelerate_env(strategy) == theirs


def test_accelerate_env_of_the_zero_configs():
    assert sweep.accelerate_env("ddp") == {"ACCELERATE_MIXED_PRECISION": "bf16"}
    zero3 = sweep.accelerate_env("zero3")
    assert (
        zero3["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3" and zero3["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    )
    assert zero3["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"


def _dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sweep.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_dry_run_of_tool_calling_prints_the_planned_runs_with_their_configs():
    """The command behind `make reproduce-tool_calling DRY_RUN=1`."""
    proc = _dry_run("tool_calling", "--launcher", "local", "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "total: 18 runs" in out and "GPU-h" in out
    for header in "experiment model task aggregator seed steps G compl/step lr status".split():
        assert re.search(rf"\b{re.escape(header)}\b", out)
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+tool_calling_", line)]
    assert len(rows) == 18
    for row in rows:
        experiment, model, task, aggregator, seed, steps, group, per_step = row[1:9]
        size, agg = experiment.split("_")[2:4]
        assert model == f"qwen2.5-{size}" and task == "toolrl" and aggregator.startswith(agg)
        assert seed in {"0", "1", "2"} and steps == "420" and group == "4" and per_step == "512"
    assert "-m accelerate.commands.launch --config_file conf/accelerate/ddp.yaml --num_processes 4" in out
    assert (
        "--multirun seed=0,1,2 experiment=tool_calling_1.5b_grpo,tool_calling_1.5b_gdpo,tool_calling_1.5b_rvpo"
        in out
    )


def test_dry_run_with_slurm_and_overrides():
    proc = _dry_run("tool_calling", "--launcher", "slurm", "--dry-run", "--", "seed=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "total: 6 runs" in proc.stdout
    assert "+launcher=slurm_ddp hydra.launcher.gpus_per_node=4" in proc.stdout
    assert "'++hydra.job.env_set.ACCELERATE_USE_DEEPSPEED=\"true\"'" in proc.stdout  # the 3B block (ZeRO-2)
    bad = _dry_run("no_such_sweep", "--dry-run")
    assert bad.returncode != 0 and "known:" in (bad.stderr + bad.stdout)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_target_calls_the_sweep_script():
    proc = subprocess.run(
        ["make", "-n", "reproduce-tool_calling", "DRY_RUN=1", "LAUNCHER=slurm"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "scripts/sweep.py tool_calling --launcher slurm --dry-run" in proc.stdout, (
        proc.stdout + proc.stderr
    )
