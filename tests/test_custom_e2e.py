"""A user's own task from a directory outside the repository: the installed `rvpo-train` with the
example data and reward module, a multirun over aggregators, then `rvpo-report`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rvpo_repro.run.record import load_examples, load_record

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_own_task_trains_sweeps_and_reports_from_outside_the_repo(tmp_path, cache_dir):
    shutil.copy(REPO / "examples" / "rewards.py", tmp_path / "my_rewards.py")  # the user's module, in cwd
    common = [
        "task=custom",
        f"task.train_source={REPO / 'examples' / 'prompts.jsonl'}",
        "task.rewards=[{path:my_rewards.mentions_number,binary:true},my_rewards:only_letters]",
        "task.eval_functions=[my_rewards:answer_length]",
        "task.max_eval_examples=4",
        "task.eval_samples=2",
        "experiment_name=my_task",
        "model=tiny",
        "model.per_device_train_batch_size=8",
        "trainer.num_generations=4",
        "trainer.max_steps=2",
        "trainer.max_completion_length=12",
        "eval.backend=hf",
        "logger=disabled",
        f"paths.cache_dir={cache_dir}",
    ]
    train = _run([str(BIN / "rvpo-train"), *common, "aggregator=rvpo"], tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    (run_dir,) = (tmp_path / "results" / "runs" / "my_task").iterdir()
    rec = load_record(run_dir)
    assert run_dir.name.startswith("tiny-custom-rvpo-s0-") and rec.extra["train"]["global_step"] == 2
    assert rec.extra["train"]["channels"] == ["mentions_number", "only_letters"]
    assert set(rec.config["task"]["code_hashes"]) == {
        "my_rewards.mentions_number", "my_rewards:only_letters", "my_rewards:answer_length"
    }  # fmt: skip
    for name in [
        "rewards/mentions_number",
        "rewards/only_letters",
        "rewards/all_constraints",
        "custom/answer_length",
    ]:
        assert rec.metrics[name]["n"] == 4
    assert rec.example_columns["custom/answer_length"] == "custom/answer_length"
    assert len(load_examples(run_dir)) == 4

    sweep = _run([str(BIN / "rvpo-train"), "-m", *common, "aggregator=grpo,rvpo", "seed=0"], tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "skipping finished run tiny-custom-rvpo-s0-" in sweep.stderr + sweep.stdout  # same config: reused
    runs = sorted(p.name.split("-s0-")[0] for p in (tmp_path / "results" / "runs" / "my_task").iterdir())
    assert runs == ["tiny-custom-grpo", "tiny-custom-rvpo"]

    report = _run([str(BIN / "rvpo-report"), "--experiment", "my_task", "--baseline", "grpo"], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    table = (tmp_path / "results" / "tables" / "my_task.md").read_text()
    assert "rewards/all_constraints" in table and "grpo" in table and "rvpo" in table


def _bash_lines(readme: Path) -> list[str]:
    import re

    blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    return [
        ln.strip()
        for b in blocks
        for ln in b.replace("\\\n", " ").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]


def test_the_readme_example_is_the_one_examples_runs_and_shows_the_conflict(tmp_path, cache_dir):
    """The README's own-task commands are examples/README.md's; run as written (from the repository
    root, results elsewhere), training meets the digit constraint in some rollouts and not in others
    (so averaging can trade it away), and a digit costs the letters-share reward."""
    import shlex

    ours = [ln.removeprefix(".venv/bin/") for ln in _bash_lines(REPO / "README.md") if "my_task" in ln]
    examples = [ln for ln in _bash_lines(REPO / "examples" / "README.md") if ln.startswith("rvpo-")]
    assert [" ".join(shlex.split(x)) for x in ours] == [" ".join(shlex.split(x)) for x in examples]
    words = shlex.split(examples[0])
    extra = [f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}", "logger=disabled"]
    train = _run([str(BIN / words[0]), *words[1:], *extra], REPO)
    assert train.returncode == 0, train.stderr[-3000:]
    (run_dir,) = (tmp_path / "results" / "runs" / "my_task").iterdir()
    from rvpo_repro.run.record import load_log_history

    steps = [h for h in load_log_history(run_dir) if "rewards/mentions_number/mean" in h]
    digit = [h["rewards/mentions_number/mean"] for h in steps]
    letters = [h["rewards/only_letters/mean"] for h in steps]
    assert len(steps) == 20 and all(0 < d < 1 for d in digit), digit  # the constraint is in play throughout
    assert max(letters) < 1
    rows = load_examples(run_dir)
    assert 0 < load_record(run_dir).metrics["rewards/all_constraints"]["value"] < 1
    with_digit = [r for r in rows if any(ch.isdigit() for ch in r["completion"])]
    assert with_digit and len(with_digit) < len(rows)
    sys.path.insert(0, str(REPO))
    try:
        from examples import rewards as ex
    finally:
        sys.path.remove(str(REPO))
    for r in with_digit:  # every digit costs letters-share: without it the same answer scores higher
        text = r["completion"]
        plain = "".join(ch for ch in text if not ch.isdigit())
        chat = [[{"role": "assistant", "content": t}] for t in (text, plain)]
        assert ex.only_letters(None, chat)[0] < ex.only_letters(None, chat)[1] or not plain
