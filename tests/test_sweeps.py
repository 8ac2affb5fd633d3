"""The paper sweeps (sweeps/*.yaml, Hydra configs) and their planner (rvpo_repro.sweep, `rvpo-sweep`):
every run composes to the intended model, task, aggregator and seed; the expansion is Hydra's; the
cost figures and the headers agree; dry runs and launch commands are what Hydra and accelerate take."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rvpo_repro.config import compose, conf_dir, validate
from rvpo_repro.run.record import config_hash, run_dir
from rvpo_repro.sweep import plan, table
from rvpo_repro.sweep.cost import estimate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    """sweeps/ is found under the working directory (or RVPO_ROOT), as for `make`."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("RVPO_ROOT", raising=False)


# ----------------------------------------------------------------------------- expectations
# Written out independently of the sweep files: (model, task, aggregator signature, seed) per run.
GRPO = ("grpo",)
GDPO = ("gdpo", "sum")
GDPO_MEAN = ("gdpo", "mean")
RVPO_K1 = ("rvpo", "constant", 1.0)
RVPO_K5 = ("rvpo", "constant", 5.0)
RVPO_ANNEALED = ("rvpo", "linear", 0.5, 2.0)
RUBRIC_AGGS = (GRPO, GDPO, GDPO_MEAN, RVPO_ANNEALED)  # both GDPO variants


def agg_signature(agg) -> tuple:
    if agg.name == "rvpo":
        if agg.schedule in (None, "constant"):
            return ("rvpo", "constant", float(agg.risk))
        return ("rvpo", agg.schedule, float(agg.risk_start), float(agg.risk_end))
    if agg.name == "variance_penalty":
        return ("variance_penalty", float(agg.beta))
    if agg.name == "gdpo":
        return ("gdpo", agg.reduce or "sum")
    return (agg.name,)


def _cells(models, task, aggs):
    return {(m, task, a, s) for m, a, s in itertools.product(models, aggs, SEEDS)}


RUBRIC_SIZES = ("qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b")
EXPECTED = {
    "tool_calling": _cells(
        ("qwen2.5-1.5b", "qwen2.5-3b"), "toolrl", (GRPO, GDPO, RVPO_K1, RVPO_ANNEALED, RVPO_K5)
    ),
    "healthbench_scaling": _cells(RUBRIC_SIZES, "rar_medicine", RUBRIC_AGGS),
    "gpqa": _cells(RUBRIC_SIZES, "rar_science", RUBRIC_AGGS),
    "risk_ablation": _cells(
        ("qwen2.5-7b",),
        "rar_medicine",
        (RVPO_K5, RVPO_ANNEALED, GDPO_MEAN, GDPO, ("hard_min",), ("variance_penalty", 0.5)),
    ),
}
FAMILY = {"tool_calling": "tool_calling", "healthbench_scaling": "rubric_medicine"}
FAMILY |= {"gpqa": "rubric_science", "risk_ablation": "rubric_medicine"}
ACCELERATE_BY_MODEL = {
    "qwen2.5-1.5b": "ddp",
    "qwen2.5-3b": "zero2",
    "qwen2.5-7b": "zero2",
    "qwen2.5-14b": "zero3",
}
GPUS_BY_MODEL = {"qwen2.5-1.5b": 4, "qwen2.5-3b": 4, "qwen2.5-7b": 8, "qwen2.5-14b": 8}


def run_cfg(cfg):
    """A planned job's config without its `hydra` node: what the run records and hashes."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


@pytest.fixture(scope="module")
def plans() -> dict:
    """Every sweep planned once (composing all its runs), without looking at results/."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        return {name: plan.plan(plan.load(name), status=False) for name in plan.available()}


def test_every_sweep_is_expected():
    assert set(plan.available()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sweep_runs_resolve_to_intended_cells(plans, name):
    jobs = [job for launch in plans[name] for job in launch.jobs]
    got = [(j.cfg.model.name, j.cfg.task.name, agg_signature(j.cfg.aggregator), j.cfg.seed) for j in jobs]
    assert len(got) == len(set(got)), f"{name}: a run is planned twice"
    assert set(got) == EXPECTED[name]
    assert {j.cfg.experiment_name for j in jobs} == {FAMILY[name]}  # one family per sweep
    run_dirs = {run_dir(run_cfg(j.cfg)) for j in jobs}
    assert len(run_dirs) == len(jobs), f"{name}: two runs would share one record"
    for job in jobs:
        validate(run_cfg(job.cfg), construct_trl=False)
        m = job.cfg.model
        assert m.per_device_train_batch_size * m.gradient_accumulation_steps * m.num_gpus == 512


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_launch_per_model_with_its_gpus_and_accelerate_config(plans, name):
    for launch in plans[name]:
        assert {j.cfg.model.name for j in launch.jobs} == {launch.model}
        assert launch.gpus == GPUS_BY_MODEL[launch.model]
        assert launch.accelerate == ACCELERATE_BY_MODEL[launch.model]
        assert (ROOT / "conf" / "accelerate" / f"{launch.accelerate}.yaml").exists()
        assert launch.command[launch.command.index("--multirun") + 1 :][:2] == [
            f"+sweeps={name}",
            f"model={launch.model}",
        ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_header_states_runs_and_gpu_hours_that_match_the_estimate(plans, name):
    s = plan.load(name)
    runs = re.search(r"^# Runs: (\d+)", s.header, re.M)
    hours = re.search(r"^# Expected GPU-hours: (\d+)", s.header, re.M)
    assert runs and hours, f"sweeps/{name}.yaml: header lacks 'Runs: N' or 'Expected GPU-hours: N'"
    assert int(runs.group(1)) == sum(len(x.jobs) for x in plans[name])
    total = table.total_gpu_hours(plans[name])
    assert total > 0 and abs(int(hours.group(1)) - total) <= 0.02 * total + 1, (name, hours.group(1), total)
    assert s.description and "\n" not in s.description


def test_readme_table_states_the_planned_gpu_hours_and_grader_dollars(plans):
    """sweeps/README.md's table is `rvpo-sweep --list`'s figures (rounded as printed)."""
    text = (ROOT / "sweeps" / "README.md").read_text()
    for name, launches in plans.items():
        row = re.search(rf"^\| `{name}` \|.*$", text, re.M)
        assert row, f"sweeps/README.md: no table row for {name}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        _, usd = table.grader_totals([j for x in launches for j in x.jobs])
        assert (int(cells[3]), int(cells[4])) == (round(table.total_gpu_hours(launches)), round(usd)), name


def test_risk_ablation_shares_the_annealed_and_gdpo_runs_with_healthbench_scaling(plans):
    def dirs(name, aggregators=None):
        return {
            run_dir(run_cfg(j.cfg))
            for x in plans[name]
            for j in x.jobs
            if aggregators is None or j.cfg.hydra.runtime.choices.aggregator in aggregators
        }

    scaling = dirs("healthbench_scaling")
    assert dirs("risk_ablation", {"rvpo_annealed", "gdpo", "gdpo_mean"}) <= scaling
    assert not dirs("risk_ablation", {"rvpo_k5", "hard_min", "variance_penalty"}) & scaling


def test_a_sweep_run_is_the_family_run_with_the_same_choices():
    """`+sweeps=<name>` only adds hydra settings: a run launched by a sweep and the same run started
    by hand share one record."""
    by_sweep = compose(["+sweeps=tool_calling", "model=qwen2.5-1.5b", "aggregator=gdpo", "seed=1"])
    by_hand = compose(["experiment=tool_calling", "model=qwen2.5-1.5b", "aggregator=gdpo", "seed=1"])
    assert config_hash(by_sweep) == config_hash(by_hand)


# ----------------------------------------------------------------------------- expansion (Hydra's grammar)
def test_expansion_uses_hydras_override_grammar():
    sweep = plan.Sweep(
        "tool_calling",
        "",
        "",
        {"seed": "range(0,3)", "aggregator": "glob(rvpo*)", "logger.project": "choice('a,b',c)"},
        [],
    )
    jobs = plan.expand(sweep)
    assert len(jobs) == 3 * 3 * 2  # range: 0 1 2; glob: rvpo rvpo_annealed rvpo_k5; choice: two
    assert jobs[0] == ["seed=0", "aggregator=rvpo", "logger.project=a\\,b", "+sweeps=tool_calling"]
    assert {j[1] for j in jobs} == {"aggregator=rvpo", "aggregator=rvpo_annealed", "aggregator=rvpo_k5"}
    assert compose(jobs[0]).logger.project == "a,b"  # the quoted comma survives as Hydra passes it on


def test_command_line_overrides_replace_swept_values_or_add_to_every_run():
    base = plan.load("tool_calling")
    assert len(plan.expand(base)) == 30
    one_seed = plan.expand(plan.load("tool_calling", ["seed=0", "trainer.max_steps=10"]))
    assert len(one_seed) == 10
    assert all("seed=0" in j and "trainer.max_steps=10" in j for j in one_seed)
    assert len(plan.expand(plan.load("tool_calling", ["seed=3,4", "model=qwen2.5-3b"]))) == 2 * 5


def test_unknown_sweep_and_empty_params_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="known: gpqa"):
        plan.load("no_such_sweep")
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "bare.yaml").write_text("# @package _global_\n# nothing swept\nseed: 1\n")
    monkeypatch.setenv("RVPO_ROOT", str(tmp_path))
    assert set(plan.available()) == set(EXPECTED) | {"bare"}  # a project's own sweeps beside the shipped ones
    with pytest.raises(ValueError, match=r"bare.yaml: hydra.sweeper.params is empty"):
        plan.load("bare")


# ----------------------------------------------------------------------------- cost model
def test_estimate_of_a_tool_calling_run_by_hand():
    """1.5B, 512 completions x (1000 + 300) tokens per step, no KL (no reference pass), old
    log-probs (generation batch 2048 > 512): 8 passes x 1.54e9 x 665600 / (4 x 989e12 x 0.25) =
    8.29 s training, 512 x 300 / (4 x 12000) = 3.2 s generation, x 1.25 = 14.36 s/step;
    420 steps = 1.676 h + one BFCL evaluation 0.25 h."""
    cfg = compose(["experiment=tool_calling", "model=qwen2.5-1.5b", "aggregator=gdpo"])
    est = estimate(cfg)
    assert est.parts["train"] == pytest.approx(8.2914, rel=1e-4)
    assert est.parts["generate"] == pytest.approx(3.2)
    assert est.step_seconds == pytest.approx(14.364, rel=1e-4)
    assert est.hours == pytest.approx(1.9259, rel=1e-4) and est.gpus == 4
    assert est.gpu_hours == pytest.approx(4 * est.hours)


def test_estimate_follows_model_size_judge_and_is_zero_on_cpu():
    small = estimate(compose(["experiment=tool_calling", "model=qwen2.5-1.5b"]))
    large = estimate(compose(["experiment=tool_calling", "model=qwen2.5-3b"]))
    assert 0 < small.step_seconds < large.step_seconds and small.gpus == large.gpus == 4
    assert estimate(compose(["experiment=toy"])).gpu_hours == 0.0
    judged = estimate(compose(["experiment=rubric_medicine", "model=qwen2.5-7b"]))
    assert judged.gpus == 10 and judged.parts["judge"] == pytest.approx(512 * 10 / (2 * judged.judge.used))
    # HealthBench for the best and the final checkpoint (0.4 h each); at each of the 10 saves the
    # 64 validation prompts, generated on 8 GPUs at 4000 tokens/s each and judged (10 items each)
    saves = 10 * (64 * 600 / (8 * 4000) + 64 * 10 / (2 * judged.judge.used))
    assert judged.hours == pytest.approx((500 * judged.step_seconds + saves) / 3600 + 2 * 0.4)
    with pytest.raises(ValueError, match="no cost assumptions for task 'toy_constraints'"):
        estimate(compose(["experiment=toy", "model=qwen2.5-1.5b"]))


# ----------------------------------------------------------------------------- launch commands
def _hydra_args(command: list[str]) -> list[str]:
    """A launch command's overrides (after --multirun), as one job: each swept key cut to its first value."""
    out = []
    for a in command[command.index("--multirun") + 1 :]:
        key, value = a.split("=", 1)
        swept = "," in value and "${" not in value and not value.startswith(('"', "'"))
        out.append(f"{key}={value.split(',')[0]}" if swept else a)
    return out


@pytest.mark.parametrize("name", ["tool_calling", "risk_ablation"])
def test_launch_commands_compose_with_each_launcher(plans, name):
    s = plan.load(name)
    x = plans[name][0]
    local = plan.launch_command(s, x.model, x.gpus, x.accelerate, "local", 3.0, 24)
    assert local[1:3] == ["-m", "accelerate.commands.launch"]
    assert local[local.index("--num_processes") + 1] == str(x.gpus)
    config = Path(local[local.index("--config_file") + 1])  # absolute: the job may start anywhere
    assert config == conf_dir() / "accelerate" / f"{x.accelerate}.yaml" and config.is_file()
    cfg = compose(_hydra_args(local), return_hydra_config=True)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "basic" and cfg.model.name == x.model

    slurm = plan.launch_command(s, x.model, x.gpus, x.accelerate, "slurm", 30.0, 24)
    assert slurm[1:3] == ["-m", "rvpo_repro.train"]  # Slurm starts one process per GPU itself
    cfg = compose(_hydra_args(slurm), return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == x.gpus
    assert launcher.timeout_min == 24 * 60  # 30 h x 1.25, capped at the 24 h maximum
    env = cfg.hydra.job.env_set
    assert env.ACCELERATE_MIXED_PRECISION == "no"  # model.dtype sets the precision (TrainingArguments.bf16)
    if x.accelerate == "ddp":
        assert "ACCELERATE_USE_DEEPSPEED" not in env
    else:
        assert env.ACCELERATE_USE_DEEPSPEED == "true"
        assert env.ACCELERATE_DEEPSPEED_ZERO_STAGE == x.accelerate[-1]
    with pytest.raises(ValueError, match="joblib"):
        plan.launch_command(s, x.model, x.gpus, x.accelerate, "joblib", 3.0, 24)
    with pytest.raises(ValueError, match="names no `accelerate` config"):
        plan.launch_command(s, x.model, x.gpus, None, "local", 3.0, 24)


def test_accelerate_env_of_the_configs(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # the caller's environment does not leak in
    assert plan.accelerate_env("ddp") == {"ACCELERATE_MIXED_PRECISION": "no"}
    zero3 = plan.accelerate_env("zero3")
    assert (
        zero3["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3" and zero3["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    )
    assert zero3["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"
    assert zero3["ACCELERATE_USE_DEEPSPEED"] == "true" and zero3["ACCELERATE_MIXED_PRECISION"] == "no"
    with pytest.raises(ValueError, match="no accelerate config"):
        plan.accelerate_env("zero9")


# ----------------------------------------------------------------------------- the command line
def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rvpo_repro.sweep", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_dry_run_of_healthbench_scaling_prints_runs_grader_and_cost():
    """The command behind `make reproduce-healthbench_scaling DRY_RUN=1 SWEEP_ARGS=seed=0`."""
    proc = _cli("healthbench_scaling", "--dry-run", "--launcher", "slurm", "--", "seed=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "total: 12 runs (0 done, skipped on launch)" in out
    header = next(line for line in out.splitlines() if line.startswith("#  "))
    assert header.split() == list(table.COLUMNS)
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+(grpo|gdpo|rvpo)", line)]
    assert len(rows) == 12 and all(len(r) == len(table.COLUMNS) for r in rows)
    # the method label, as tables and figures show it (one renderer: analysis.labels.method_label)
    assert {r[2] for r in rows} == {"grpo", "gdpo", "gdpo_(mean)", "rvpo_(k_0.5→2)"}
    assert {r[1] for r in rows} == {"grpo", "gdpo", "gdpo_mean", "rvpo_annealed"}  # both GDPO variants
    assert {r[12] for r in rows} == {"openai:gpt-4.1-2025-04-14(simple-evals)"}  # the eval_judge default
    for size, gpus in (("3b", 4), ("7b", 8), ("14b", 8)):
        assert f"== qwen2.5-{size}: 4 runs of experiment rubric_medicine" in out
        assert f"+sweeps=healthbench_scaling model=qwen2.5-{size} seed=0" in out
        assert f"+launcher=slurm_ddp hydra.launcher.gpus_per_node={gpus}" in out
    assert "'++hydra.job.env_set.ACCELERATE_USE_DEEPSPEED=\"true\"'" in out
    # per block: the paid grader (4 runs x best and final x 5000 x 11.4 calls) and the judge's roofline
    assert out.count("gpt-4.1-2025-04-14 grader: 456,000 calls, $1,830") == 3
    judge = [line for line in out.splitlines() if line.startswith("   judge Qwen/Qwen2.5-7B-Instruct:")]
    assert len(judge) == 3 and all("roofline" in line and "used" in line for line in judge)
    assert "gpt-4.1-2025-04-14 grader: 1,368,000 calls, $5,490 (estimates" in out


def test_grader_column_names_the_eval_judge_and_flags_the_training_judge():
    assert table.grader(compose(["experiment=rubric_science"])) == "-"  # GPQA: no grader
    own = table.grader(compose(["experiment=rubric_medicine", "eval_judge=training_judge"]))
    assert own.endswith("(not simple-evals, training judge)"), own
    hot = table.grader(compose(["experiment=rubric_medicine", "eval_judge.temperature=0.0"]))
    assert hot == "openai:gpt-4.1-2025-04-14(not simple-evals)"


def test_list_and_unknown_sweep_from_outside_the_repository(tmp_path):
    proc = _cli("--list", cwd=tmp_path)  # the shipped paper sweeps are found from any directory
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == sorted(EXPECTED)
    assert re.match(r"tool_calling\s+30 runs\s+\d+ GPU-h  grader \$\s+0  BFCL", lines[-1])
    bad = _cli("no_such_sweep", "--dry-run", cwd=tmp_path)
    assert bad.returncode != 0 and "known: gpqa" in bad.stderr and str(tmp_path / "sweeps") in bad.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_target_calls_the_planner():
    proc = subprocess.run(
        ["make", "-n", "reproduce-tool_calling", "DRY_RUN=1", "LAUNCHER=slurm", "SWEEP_ARGS=seed=0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "-m rvpo_repro.sweep tool_calling --launcher slurm --dry-run -- seed=0" in proc.stdout, (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dry_run_prints_a_memory_plan_per_block_none_over_80_gb(plans, name):
    """Every block of every paper sweep fits its GPUs by the memory plan, and the dry run shows it
    under the block's header, beside the GPU-hours."""
    launches = plans[name]
    assert plan.memory_problems(plan.load(name), launches) == []
    out = table.describe(plan.load(name), launches, "local").splitlines()
    for launch in launches:
        memory = table.block_memory(launch)
        assert memory.unknown is None and memory.peak_gb <= 80
        assert all(j.memory.problem is None for j in launch.jobs)
        at = next(i for i, line in enumerate(out) if line.startswith(f"== {launch.model}:"))
        assert "GPU-h" in out[at] and out[at + 1] == memory.summary()
        assert out[at + 1].startswith(f"memory / GPU: peak {memory.peak_gb:.1f} of 80 GB")
        assert any(line.startswith("  policy") for line in out[at + 2 : at + 5])


def test_a_sweep_that_does_not_fit_is_refused_before_it_starts(capsys, monkeypatch):
    launched = []
    monkeypatch.setattr(plan, "launch", lambda *a: launched.append(a) or 0)
    code = plan.main(["risk_ablation", "--", "seed=0", "model.gradient_checkpointing=false"])
    out, err = capsys.readouterr()
    assert code == 2 and not launched and out == ""
    assert err.count("\n") == 1 and err.startswith("rvpo-sweep: sweep risk_ablation, run ")
    assert "exceeds model.gpu_memory_gb=80; its largest part is activations (all layers)" in err
    code = plan.main(["risk_ablation", "--dry-run", "--", "seed=0", "model.gradient_checkpointing=false"])
    out, err = capsys.readouterr()
    assert code == 2 and "  does not fit: model qwen2.5-7b" in out and err.startswith("rvpo-sweep: ")
