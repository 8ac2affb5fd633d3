"""The console scripts as users run them: installed, from a directory outside the repository.

`python -m rvpo_repro.train` from the repository root once hid that `rvpo-train` failed everywhere
else; these tests call the installed scripts from a temporary directory, build the wheel to check
that it ships the config tree, and run every command the READMEs and the manual show (cheap
variants).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rvpo_repro.config import conf_dir

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is not installed: run `make install`"
    return str(path)


def run(
    args: list[str], cwd: Path, timeout: int = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def outside(tmp_path) -> Path:
    """An empty working directory that is not inside the repository."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    assert REPO not in d.resolve().parents
    return d


@pytest.mark.parametrize(
    "name, args, expect",
    [
        ("rvpo-train", ["--help"], ["experiment=", "aggregator=", "rvpo_annealed", "Examples:"]),
        ("rvpo-eval", ["--help"], ["checkpoint=", "experiment="]),
        ("rvpo-report", ["--help"], ["--experiment"]),
        ("rvpo-train", ["--cfg", "job", "experiment=toy"], ["experiment_name: toy", "max_steps: 200"]),
        ("rvpo-eval", ["--cfg", "job", "experiment=toy", "checkpoint=x/model"], ["checkpoint: x/model"]),
    ],
)
def test_console_script_runs_from_outside_the_repository(outside, name, args, expect):
    proc = run([script(name), *args], cwd=outside)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in expect:
        assert text in proc.stdout, (text, proc.stdout[:2000])
    assert "_schema" not in proc.stdout  # the schemas are internal, never offered as options


def test_help_lists_every_option_of_each_group(outside):
    out = run([script("rvpo-train"), "--help"], cwd=outside).stdout
    for group in ("experiment", "model", "aggregator", "task"):
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{group}="))
        listed = set(line.split("=", 1)[1].replace(",", " ").split())
        assert listed == {p.stem for p in (conf_dir() / group).glob("*.yaml")}, group


@pytest.mark.parametrize(
    "line, expected",
    [("rvpo-train aggregator=", "aggregator=rvpo_annealed"), ("rvpo-train model=", "model=tiny"),
     ("rvpo-train experiment=", "experiment=toy_smoke"), ("rvpo-train task=", "task=toy_constraints")],
)  # fmt: skip
def test_tab_completion_offers_real_options_and_hides_schemas(outside, line, expected):
    proc = run([script("rvpo-train"), "-sc", "query=bash"], cwd=outside, env={"COMP_LINE": line})
    assert proc.returncode == 0, proc.stderr[-2000:]
    options = proc.stdout.split()
    assert expected in options and not any("schema" in o for o in options), options


def _config_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".yaml", ".md")}


@pytest.mark.slow
def test_the_wheel_ships_every_config_file_and_its_scripts_find_them(tmp_path, outside):
    """A non-editable install (the built wheel) carries conf/ as rvpo_repro/conf and uses it."""
    import shutil

    source = tmp_path / "source"  # a copy: building in place would leave build/ in the repository
    skip = (".venv", ".git", ".cache", "results", "build", "outputs", "multirun", "wandb", "__pycache__")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*skip))
    wheels = tmp_path / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
    ]
    proc = run([*build, str(source)], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("rvpo_repro-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    for folder in ("conf", "sweeps"):  # each top-level folder the wheel carries as rvpo_repro/<folder>
        prefix = f"rvpo_repro/{folder}/"
        shipped = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
        assert shipped == _config_files(REPO / folder), folder
    assert "rvpo_repro/sweeps/tool_calling.yaml" in names
    assert "rvpo_repro/py.typed" in names  # PEP 561: the package's annotations are for type checkers

    site = tmp_path / "site"
    proc = run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
               cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = "import rvpo_repro.config as c, rvpo_repro.train as t; print(c.conf_dir()); t.main()"
    proc = run([sys.executable, "-c", code, "--cfg", "job", "experiment=toy_smoke"], cwd=outside,
               env={"PYTHONPATH": str(site)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(site / "rvpo_repro" / "conf")
    assert "experiment_name: toy_smoke" in proc.stdout
    code = "import rvpo_repro.sweep.plan as p; print(p.sweep_file('tool_calling')); p.main(['--list'])"
    proc = run([sys.executable, "-c", code], cwd=outside, env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(site / "rvpo_repro" / "sweeps" / "tool_calling.yaml")
    assert re.search(r"^tool_calling\s+30 runs", proc.stdout, re.M), proc.stdout


# ----------------------------------------------------------------------------- README commands
# The READMEs and every page of the manual (docs/): whatever command a user reads is checked.
READMES = [
    REPO / "README.md", REPO / "sweeps" / "README.md", REPO / "examples" / "README.md",
    REPO / "results" / "README.md", *sorted((REPO / "docs").rglob("*.md")),
]  # fmt: skip
# Commands the READMEs and the manual show that these tests do not run, each with the reason.
NOT_RUN = {
    "pip": "installs packages",
    "wandb": "uploads to W&B (needs the network)",
    "vllm": "serves a model on a GPU",
    "accelerate": "launches GPU jobs",
    "trl": "serves a model on GPUs (trl vllm-serve)",
    "sbatch": "submits to Slurm",
    "srun": "runs on Slurm",
    "git": "clones the repository",
    "cd": "changes directory",
    "eval": "installs tab completion into the user's shell (the completion itself is tested above)",
    "bash": "the GPU check on a lent GPU machine (its CPU rehearsal: make gpu-check-rehearsal)",
    "rvpo_repro.integrations.verl": "verl's trainer, in the verl venv (tests/verl/test_launch.py starts it)",
}
# Modules and scripts users run with python: here they must answer --help.
HELP_ONLY = ("rvpo_repro.analysis.credit", "rvpo_repro.analysis.channel_outcomes", "scripts/")


def readme_commands() -> list[tuple[str, str]]:
    """(readme name, command) for every shell line in the READMEs' ```bash blocks."""
    found = []
    for readme in READMES:
        if not readme.exists():
            continue
        blocks = re.findall(
            r"```(?:bash|sh|shell|console)\n(.*?)```", readme.read_text(encoding="utf-8"), re.S
        )
        for block in blocks:
            for raw in block.replace("\\\n", " ").splitlines():
                line = raw.strip().removeprefix("$ ")
                if line and not line.startswith("#"):
                    found.append((str(readme.relative_to(REPO)), line))
    return found


def _words(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value prefixes
        words.pop(0)
    return words


def _first_values(words: list[str]) -> list[str]:
    """A multirun's overrides reduced to one job: `a=x,y` -> `a=x` (the sweep syntax itself is
    Hydra's, checked by its own parser in the multirun tests)."""
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if sep and "," in value and not value.startswith(("[", "'", '"', "{")):
            value = value.split(",")[0]
        out.append(f"{key}{sep}{value}")
    return out


def check_command(command: str, cwd: Path) -> None:
    words = _words(command)
    name = Path(words[0]).name
    launch = (name == "torchrun" or (name == "accelerate" and words[1:2] == ["launch"])) and "-m" in words
    if (name in NOT_RUN or words[0] in NOT_RUN) and not launch:
        return
    if launch:
        # A multi-process launch (tests/runs/ starts it for real): here its job must compose.
        words = [sys.executable, *words[words.index("-m") :]]
        name = Path(words[0]).name
    if name.startswith("python") and words[1:2] == ["-m"]:  # python -m MODULE: as its console script
        module = {"rvpo_repro.train": "rvpo-train", "rvpo_repro.evaluate": "rvpo-eval"}.get(
            words[2], words[2]
        )
        if module.split(".")[0] in NOT_RUN or module in NOT_RUN:
            return
        words, name = [module, *words[3:]], module
    if name.startswith(HELP_ONLY) or (
        name.startswith("python") and words[1:2] and words[1].startswith(HELP_ONLY)
    ):
        target = ["-m", name] if name.startswith("rvpo_repro.") else [words[1]]
        proc = run([sys.executable, *target, "--help"], cwd=cwd)
        assert proc.returncode == 0, f"`{command}`: {proc.stderr[-1000:]}"
        return
    if name == "make":
        target = next((w for w in words[1:] if "=" not in w and not w.startswith("-")), "help")
        proc = run(["make", "-n", "-C", str(REPO), target], cwd=cwd)
        assert proc.returncode == 0, f"`{command}`: no such make target ({proc.stderr[-500:]})"
        return
    if name in ("rvpo-train", "rvpo-eval"):
        args = [w for w in _first_values(words[1:]) if w not in ("-m", "--multirun")]
        if "--cfg" not in args:
            args = ["--cfg", "job", *args]
        proc = run([script(name), *args], cwd=cwd)
        assert proc.returncode == 0, f"`{command}` does not compose:\n{proc.stderr[-2000:]}"
        return
    if name in ("rvpo-report", "rvpo-sweep"):
        proc = run([script(name), "--help"], cwd=cwd)
        assert proc.returncode == 0, f"`{command}`: {proc.stderr[-1000:]}"
        return
    raise AssertionError(
        f"README command `{command}` is of a kind these tests do not know: run it or list it"
    )


def test_readme_shows_commands():
    names = {Path(_words(c)[0]).name for _, c in readme_commands()}
    assert {"make", "rvpo-train", "rvpo-report"} <= names
    pages = {page for page, _ in readme_commands()}
    assert {"README.md", "docs/index.md", "docs/guides/runs.md", "docs/guides/extending.md"} <= pages


@pytest.mark.parametrize("readme, command", readme_commands())
def test_every_readme_command_works(readme, command):
    # From the repository root, where the READMEs tell users to run them (`.venv/bin/...`,
    # `examples/...`); the console scripts outside the repository are tested above.
    check_command(command, REPO)
