"""Run records: hashing, ids, redaction, atomic writes, conflicts and the environment block."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from omegaconf import OmegaConf

from rvpo_repro.evals.base import metric
from rvpo_repro.run.provenance import environment_info, redact
from rvpo_repro.run.record import (
    RecordConflictError,
    RunRecord,
    config_hash,
    find_finished,
    load_examples,
    load_record,
    new_record,
    resolved_config,
    run_dir,
    run_id,
    utc_now,
    write_record,
)
from rvpo_repro.schemas import TrainConfig, WandbMode


def make_cfg(tmp_path, **over):
    """A composed-like config: structured schema (enums, ${hydra:...} in paths) plus deltas."""
    cfg = OmegaConf.structured(TrainConfig)
    base = {
        "model": {"name": "tiny", "source": "tiny"},
        "task": {"name": "digits/v1", "num_prompts": 64},
        "aggregator": {"name": "rvpo", "risk": 2.0},
        "trainer": {"learning_rate": 5e-4},
        "judge": {"cache_path": "${paths.cache_dir}/judge.sqlite"},
        "logger": {"mode": "offline"},
        "paths": {"root_dir": str(tmp_path)},
        "eval": {"backend": "hf", "temperature": 1.0},
        "seed": 0,
    }
    OmegaConf.set_struct(cfg, False)
    return OmegaConf.merge(cfg, base, over)


@pytest.fixture
def cfg(tmp_path):
    return make_cfg(tmp_path)


def test_hash_is_stable_and_ignores_non_result_keys(tmp_path, cfg):
    h = config_hash(cfg)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    plain = OmegaConf.to_container(cfg, resolve=False)
    reordered = dict(reversed(list(plain.items())))
    assert config_hash(reordered) == h  # dict and DictConfig agree; key order is irrelevant
    same = [
        {"logger": {"mode": "disabled"}},
        {"paths": {"root_dir": str(tmp_path / "elsewhere")}},
        {"eval": {"backend": "vllm"}},
    ]
    for over in same:
        assert config_hash(make_cfg(tmp_path, **over)) == h, over
    for over in [{"trainer": {"learning_rate": 1e-4}}, {"seed": 1}, {"eval": {"temperature": 0.5}}]:
        assert config_hash(make_cfg(tmp_path, **over)) != h, over


def test_hash_of_plain_dict_drops_excluded_keys():
    a = {"seed": 0, "logger": {"mode": "online"}, "hydra": {"x": 1}, "eval": {"backend": "hf", "n": 5}}
    b = {"seed": 0, "eval": {"n": 5}}
    assert config_hash(a) == config_hash(b)
    assert config_hash({"seed": 0, "x": float("nan")}) == config_hash({"seed": 0, "x": None})


def test_run_id_and_run_dir(tmp_path, cfg):
    rid = run_id(cfg)
    assert rid == f"tiny-digits_v1-rvpo-s0-{config_hash(cfg)[:8]}"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", rid)
    assert run_dir(cfg) == tmp_path / "results" / "runs" / "default" / rid
    with pytest.raises(ValueError, match="task.name"):
        run_id({"model": {"name": "m"}, "task": {}, "aggregator": {"name": "a"}, "seed": 0})


def test_redact_nested_lists_env_names_and_env_values():
    env = {"OPENAI_API_KEY": "sk-abcdef123456", "HF_TOKEN": "short", "HOME": "/home/someone-long"}
    obj = {
        "judge": {"api_key_env": "OPENAI_API_KEY", "apiKey": "literal-key", "base_url": "http://x"},
        "headers": [{"Authorization": "Bearer zzz"}, {"X-Api-Key": "k"}],
        "db": {"password": "hunter22", "credentials": {"user": "u"}},
        "log": ["called with sk-abcdef123456 ok", "HF_TOKEN=short"],
        "trainer": {"max_new_tokens": 24, "tokenizer": "byte-bpe", "eos_token": "</s>", "token_budget": 512},
        "home": "/home/someone-long",
    }
    before = json.dumps(obj, sort_keys=True)
    out = redact(obj, env=env)
    assert json.dumps(obj, sort_keys=True) == before  # original untouched
    assert out["judge"] == {"api_key_env": "OPENAI_API_KEY", "apiKey": "<redacted>", "base_url": "http://x"}
    assert out["headers"] == [{"Authorization": "<redacted>"}, {"X-Api-Key": "<redacted>"}]
    assert out["db"] == {"password": "<redacted>", "credentials": "<redacted>"}
    assert out["log"] == ["called with <redacted> ok", "HF_TOKEN=short"]  # < 8 chars: not scrubbed
    assert out["trainer"] == obj["trainer"]  # word-boundary match, numbers and special tokens kept
    assert out["home"] == "/home/someone-long"  # HOME is not a secret name


def test_write_then_load_round_trip_with_nan(tmp_path, cfg):
    rec = new_record(
        cfg,
        {"acc": metric(0.5, stderr=0.1, n=4), "bad": metric(float("nan"))},
        started_at=utc_now(),
        extra={"steps": 3, "loss": float("inf")},
        environment={"python": "3"},
    )
    assert rec.config["paths"]["output_dir"] == "${hydra:runtime.output_dir}"  # kept raw outside Hydra
    assert rec.config["judge"]["cache_path"].endswith("/.cache/judge.sqlite")
    assert rec.config["logger"]["mode"] == "offline" and "hydra" not in rec.config
    examples = [{"id": 0, "score": 1.0}, {"id": 1, "score": float("nan")}]
    d = run_dir(cfg)
    assert write_record(d, rec, examples) == d / "result.json"
    assert sorted(p.name for p in d.iterdir()) == ["examples.jsonl", "result.json"]  # no temp files
    assert "NaN" not in (d / "result.json").read_text()
    loaded = load_record(d)
    assert loaded.metrics["acc"] == {"value": 0.5, "stderr": 0.1, "n": 4}
    assert loaded.metrics["bad"]["value"] is None and loaded.extra["loss"] is None
    assert loaded.config == rec.config and loaded.run_id == run_id(cfg)
    assert load_examples(d) == [{"id": 0, "score": 1.0}, {"id": 1, "score": None}]
    assert find_finished(d, rec.config_hash) == loaded


def _record(h="abc123def456", **kw):
    base = dict(experiment="e", run_id="r", config_hash=h, seed=0, config={}, environment={})
    base |= dict(started_at="t0", finished_at="t1", metrics={"m": metric(1)})
    return RunRecord(**(base | kw))


def test_conflicts_and_overwrite(tmp_path):
    write_record(tmp_path, _record(), [{"id": "a"}])
    with pytest.raises(RecordConflictError, match="overwrite=True"):
        write_record(tmp_path, _record(), [{"id": "a"}])
    write_record(tmp_path, _record(metrics={"m": metric(2)}), [{"id": "b"}], overwrite=True)
    assert load_record(tmp_path).metrics["m"]["value"] == 2.0 and load_examples(tmp_path) == [{"id": "b"}]
    with pytest.raises(RecordConflictError, match=r"abc123def456.*fff000fff000") as e:
        write_record(tmp_path, _record("fff000fff000"), [], overwrite=True)
    assert str(tmp_path / "result.json") in str(e.value)
    with pytest.raises(RecordConflictError, match="fff000fff000"):
        find_finished(tmp_path, "fff000fff000")
    assert find_finished(tmp_path / "absent", "abc123def456") is None


def test_result_is_written_last(tmp_path, monkeypatch):
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("result.json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_record(tmp_path, _record(), [{"id": 1}])
    assert [p.name for p in tmp_path.iterdir()] == ["examples.jsonl"]  # temp file cleaned up
    assert find_finished(tmp_path, "abc123def456") is None  # incomplete: caller resumes


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": 1}, {"score": 2}], "example 1: missing key 'id'"),
        ([{"id": "x"}, {"id": "y"}, {"id": "x"}], "example 2: duplicate id 'x'"),
        ([{"id": 1, "obj": object()}], "example 0 .*not JSON-serialisable"),
        (["not a dict"], "example 0: expected a dict"),
    ],
)
def test_bad_examples_are_rejected_before_writing(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        write_record(tmp_path / "run", _record(), rows)
    assert not (tmp_path / "run").exists()


def test_malformed_files_name_file_and_line(tmp_path):
    (tmp_path / "examples.jsonl").write_text('{"id": 1}\n{"id": \n')
    with pytest.raises(ValueError, match=r"examples.jsonl:2: malformed JSON"):
        load_examples(tmp_path)
    (tmp_path / "result.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"result.json:1: malformed JSON"):
        load_record(tmp_path / "result.json")
    (tmp_path / "result.json").write_text(json.dumps({"experiment": "e"}))
    with pytest.raises(ValueError, match=r"result.json: missing fields \['config'"):
        find_finished(tmp_path, "x")


def _git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


def test_environment_info_versions_and_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # don't find an outer repo
    info = environment_info(repo_dir=tmp_path)
    assert info["packages"]["torch"] and info["packages"]["trl"] == "1.16.0"
    assert "vllm" in info["packages"] and isinstance(info["cuda_available"], bool)
    assert info["git"] == {"commit": None, "dirty": None, "branch": None}  # not a repo: no crash
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "init")
    (tmp_path / "train.log").write_text("an untracked output is not a change to the code")
    git = environment_info(repo_dir=tmp_path)["git"]
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and git == {**git, "dirty": False, "branch": "main"}
    (tmp_path / "a.txt").write_text("2")
    assert environment_info(repo_dir=tmp_path)["git"]["dirty"] is True


def test_metric_enums_and_secrets_in_the_record(cfg, monkeypatch):
    assert metric(1, stderr=None, n=3.0) == {"value": 1.0, "stderr": None, "n": 3}
    online = OmegaConf.merge(cfg, {"logger": {"mode": WandbMode.online}})
    assert resolved_config(online)["logger"]["mode"] == "online"  # enums stored by name
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789")
    leaky = OmegaConf.merge(cfg, {"judge": {"base_url": "https://h/?key=sk-live-0123456789"}})
    rec = new_record(leaky, {}, started_at="t0", environment={})
    assert rec.config["judge"] == {**rec.config["judge"], "base_url": "https://h/?key=<redacted>"}
    assert rec.config["judge"]["api_key_env"] == "OPENAI_API_KEY"


def test_find_finished_compares_the_whole_hash(tmp_path, cfg):
    """Run ids carry 8 hash digits; two configs sharing them must not pass for one another."""
    rec = new_record(cfg, {"m": metric(1.0)}, started_at="2025-01-01T00:00:00+00:00")
    write_record(tmp_path, rec, [{"id": 0}])
    assert find_finished(tmp_path, rec.config_hash).config_hash == rec.config_hash
    other = rec.config_hash[:8] + ("0000" if rec.config_hash[8:] != "0000" else "1111")
    with pytest.raises(RecordConflictError, match=other):
        find_finished(tmp_path, other)
