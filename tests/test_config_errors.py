"""Config mistakes on the command line: one line on stderr, exit status 2, the closest valid names
first; `--cfg job --resolve` prints the resolved config; every console script has `--version`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rvpo_repro import __version__
from rvpo_repro.cli import run_hydra
from rvpo_repro.config_errors import closest

MISTAKES = [  # (override, the line's start, the first name suggested)
    ("aggregator=rvpp", "aggregator=rvpp: no option 'rvpp' in config group 'aggregator'", "rvpo"),
    (
        "experiment=toy_smok",
        "experiment=toy_smok: no option 'toy_smok' in config group 'experiment'",
        "toy_smoke",
    ),
    ("trainer.max_step=5", "trainer.max_step=5: no key 'max_step' in 'trainer'", "max_steps"),
    ("experimnt=toy", "experimnt=toy: no key 'experimnt' at the top level of the config", "experiment"),
    ("aggregator.rsk=1", "aggregator.rsk=1: no key 'rsk' in 'aggregator'", "risk"),
    (
        "logger.mode=offlin",
        "logger.mode=offlin: expected one of offline, online, disabled, got 'offlin'",
        "offline",
    ),
]


def _never(cfg) -> None:
    raise AssertionError("the job must not start")


def _run(capsys, *args: str, config_name: str = "train") -> tuple[int, str, str]:
    try:
        run_hydra(_never, config_name, list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("override", "start", "first"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("mode", [[], ["--cfg", "job"], ["-m"]], ids=["run", "cfg", "multirun"])
def test_a_config_mistake_is_one_line_exit_2_closest_first(capsys, tmp_path, override, start, first, mode):
    code, out, err = _run(capsys, *mode, override, f"paths.root_dir={tmp_path}", "logger=disabled")
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"rvpo-train: {start}"), err
    assert re.search(rf"did you mean {re.escape(first)}[,?]", err), err
    assert not (tmp_path / "results").exists() and not (tmp_path / "wandb").exists()


def test_a_value_of_the_wrong_type_names_the_key_and_the_type(capsys):
    code, _, err = _run(capsys, "--cfg", "job", "aggregator.risk=high")
    assert (code, err) == (2, "rvpo-train: aggregator.risk=high: expected a float, got 'high'\n")


def test_eval_takes_the_same_path(capsys):
    code, _, err = _run(capsys, "--cfg", "job", "aggregator=rvpp", "checkpoint=x", config_name="evaluate")
    assert code == 2 and err.startswith("rvpo-eval: aggregator=rvpp: no option") and err.count("\n") == 1


def test_cfg_job_resolve_prints_the_resolved_config(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "--cfg", "job", "--resolve", "experiment=toy_smoke", "seed=3")
    assert code == 0, err
    assert "${" not in out and "seed: 3" in out and "experiment_name: toy_smoke" in out
    output_dir = re.search(r"^  output_dir: (.+)$", out, re.M)[1]
    assert Path(output_dir).is_absolute() and Path(output_dir).is_relative_to(tmp_path / "outputs")
    code, _, err = _run(capsys, "--cfg", "job", "--resolve", "aggregator=rvpp")
    assert code == 2 and err.startswith("rvpo-train: aggregator=rvpp: no option") and err.count("\n") == 1


def test_closest_first():
    assert closest("rvpp", ["grpo", "gdpo", "rvpo_k5", "rvpo", "hard_min"])[:2] == ["rvpo", "rvpo_k5"]
    assert closest("zzzz", ["grpo", "rvpo"]) == []


def test_a_sweep_override_mistake_is_one_line(capsys):
    from rvpo_repro.sweep.plan import main

    assert main(["tool_calling", "--dry-run", "--", "trainer.max_step=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "rvpo-sweep: trainer.max_step=3: no key 'max_step' in 'trainer'; did you mean max_steps"
    )
    assert err.count("\n") == 1


def _commit() -> str:
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()


def test_every_console_script_prints_its_version_and_commit(capsys):
    from rvpo_repro.analysis.report import main as report_main
    from rvpo_repro.sweep.plan import main as sweep_main

    for prog, call in [
        ("rvpo-train", lambda: run_hydra(_never, "train", ["--version"])),
        ("rvpo-eval", lambda: run_hydra(_never, "evaluate", ["--version"])),
        ("rvpo-report", lambda: report_main(["--version"])),
        ("rvpo-sweep", lambda: sweep_main(["--version"])),
    ]:
        try:
            call()
        except SystemExit as exc:
            assert exc.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{prog} (rvpo-repro) {__version__}, git {_commit()}"), out
