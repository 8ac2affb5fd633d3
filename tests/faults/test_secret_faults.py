"""Secrets on the command line: refused before Hydra writes its output folder, never echoed."""

from __future__ import annotations

import pytest
from helpers.toy_runs import toy_smoke_overrides

from rvpo_repro import evaluate, train
from rvpo_repro.config import ConfigError
from rvpo_repro.config_errors import refuse_secrets

pytestmark = pytest.mark.faults
KEY = "sk-test-CMDLINE-5e2c7a9d01b34f86"


@pytest.mark.parametrize(
    "override",
    [
        f"+judge.api_key={KEY}",
        f"++judge.api_key={KEY}",
        f"+eval_judge.apiKey={KEY}",
        f"+trainer.hub_token={KEY}",
        f"hydra.job.env_set.OPENAI_API_KEY={KEY}",
        f"judge.api_key_env={KEY}",
        f"judge.base_url=https://judge.example/v1?key={KEY}",
    ],
    ids=["api_key", "force-add", "camelCase", "hub_token", "env_set", "key-in-env-name", "env-value"],
)
@pytest.mark.parametrize("entry", [train.main, evaluate.main], ids=["rvpo-train", "rvpo-eval"])
def test_a_secret_override_is_refused_before_anything_is_written(
    tmp_path, cache_dir, monkeypatch, capsys, override, entry
):
    monkeypatch.chdir(tmp_path)  # Hydra's outputs/ and multirun/ would land here
    monkeypatch.setenv("RVPO_TEST_JUDGE_API_KEY", KEY)  # a secret-named variable holding it
    for argv in ([override], ["-m", override, "seed=0,1"], ["--cfg", "job", override]):
        with pytest.raises(SystemExit) as e:
            entry(toy_smoke_overrides(tmp_path, cache_dir, *argv))
        assert e.value.code == 2
        out, err = capsys.readouterr()
        assert KEY not in out + err and err.count("\n") == 1 and "<not shown>" in err, err
        assert err.startswith(("rvpo-train: ", "rvpo-eval: ")) and override.split("=")[0] in err
    assert not any(tmp_path.rglob("*")), "nothing is written: no outputs/, .hydra/ nor results/"


def test_ordinary_overrides_pass_the_secret_check():
    env = {"OPENAI_API_KEY": KEY, "HOME": "/root", "SHORT_TOKEN": "abc"}
    refuse_secrets(["judge.api_key_env=MY_JUDGE_KEY", "judge.api_key_env=null", "trainer.max_steps=3",
                    "model.tiny.max_position_embeddings=64", "+trainer.max_prompt_tokens=10",
                    "task.eos_token=</s>", "paths.cache_dir=/root/.cache", "judge.max_tokens=abc"], env)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^judge\.base_url=<not shown>: the value holds"):
        refuse_secrets([f"judge.base_url=http://h/?k={KEY}"], env)
    with pytest.raises(ConfigError, match=r"^judge\.api_key_env=<not shown>: expected the NAME"):
        refuse_secrets(["judge.api_key_env=sk-a-key-not-in-the-environment"], {})


@pytest.mark.slow
def test_a_key_quoted_back_by_the_judge_reaches_no_file_of_a_run(tmp_path):
    """A whole run with its key in the environment, against a judge that quotes it in every reply:
    the key is in no file under the run's output, results and cache folders."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers.judge_server import ScriptedChatServer

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OPENAI_API_KEY": KEY}
    with ScriptedChatServer(default_action="okecho") as srv:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "rvpo-train"), "experiment=rubric_tiny", "judge=openai",
             f"judge.base_url={srv.base_url}", "judge.model=judge-test", "judge.max_retries=0",
             "trainer.max_steps=1", "trainer.save_steps=1", "task.healthbench_limit=2", "task.evals=[healthbench]", "logger=offline",
             f"paths.cache_dir={tmp_path / 'cache'}"],
            cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        sent = srv.logic.last_authorization
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sent == f"Bearer {KEY}"  # the key went out
    assert list(tmp_path.glob("results/runs/rubric_tiny/*/result.json"))
    assert list(tmp_path.glob("cache/judge/*.sqlite"))  # verdicts were cached
    assert KEY not in proc.stdout + proc.stderr
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == [], f"the key reached {leaked}"
