"""ToolRL task: both rewards branch by branch, the RLLA loaders, the experiments, and one CPU run."""

from __future__ import annotations

import json
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import rvpo_repro.tasks.toolrl as toolrl  # registers the task (and its schema) before any compose
from rvpo_repro.evals.base import EvalResult
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.base import TaskInputError
from rvpo_repro.tasks.prompt_limit import prompt_tokens
from rvpo_repro.tasks.toolrl import (
    ToolRLConfig,
    ToolRLRewards,
    fixture_records,
    load_rlla,
    split_raw,
    write_prepared_split,
    write_rlla_fixture,
)
from rvpo_repro.tasks.toolrl.rule_rewards import correctness_reward, format_reward

THINK = "<think> plan </think>"


def calls(*items: tuple[str, dict]) -> str:
    return "\n".join(json.dumps({"name": n, "parameters": p}) for n, p in items)


def tool_out(*items: tuple[str, dict], think: str = THINK) -> str:
    return f"{think}\n<tool_call>\n{calls(*items)}\n</tool_call>"


GT_CALL = tool_out(("a", {"x": 1}))
GT_RESPONSE = f"{THINK}\n<response>hello</response>"
GT_BOTH = f"{GT_CALL}\n<response>done</response>"
GT_THINK = THINK


# ---------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("completion", "truth", "expected"),
    [
        # tool call only
        ('<think>x</think>\n<tool_call>\n{"name": "b"}\n</tool_call>', GT_CALL, 1.0),
        ("  \n" + GT_CALL + "\n\n", GT_CALL, 1.0),  # surrounding whitespace is stripped, as upstream
        ("<think>x</think>\n<tool_call>\n</tool_call>", GT_CALL, 0.0),  # needs a line between the tags
        ("<think>x</think>\n<tool_call>\n\n</tool_call>", GT_CALL, 1.0),  # ... which may be empty
        ("<think>x</think><tool_call>\n{}\n</tool_call>", GT_CALL, 0.0),  # newline after </think>
        (GT_CALL + "\nbye", GT_CALL, 0.0),  # trailing text
        (GT_BOTH, GT_CALL, 0.0),  # a response the ground truth lacks
        ('<tool_call>\n{"name": "a"}\n</tool_call>', GT_CALL, 0.0),  # missing think
        (f"{THINK}\n<tool_call>\n{{}}\n</tool_call>\n<tool_call>\n{{}}\n</tool_call>", GT_CALL, 0.0),  # twice
        # response only
        ("<think></think>\n<response>hi</response>", GT_RESPONSE, 1.0),
        ("<think>a</think>\n<response>a</response> <response>b</response>", GT_RESPONSE, 0.0),  # twice
        ("<response>hi</response>", GT_RESPONSE, 0.0),  # missing think
        (GT_CALL, GT_RESPONSE, 0.0),
        # both
        (GT_BOTH, GT_BOTH, 1.0),
        (f"{THINK}\n<response>r</response>\n<tool_call>\n{{}}\n</tool_call>", GT_BOTH, 0.0),  # order
        (GT_BOTH + "\n<response>again</response>", GT_BOTH, 0.0),  # duplicated response
        (GT_CALL, GT_BOTH, 0.0),
        # neither (think only): no tag is counted
        ("<think>x</think>", GT_THINK, 1.0),
        ("<think>a</think> <think>b</think>", GT_THINK, 1.0),  # upstream counts no <think> tags
        (GT_RESPONSE, GT_THINK, 0.0),
        ("thinking...", GT_THINK, 0.0),
        ("", GT_CALL, 0.0),
    ],
)
def test_format_reward(completion, truth, expected):
    assert format_reward(completion, truth) == expected


# ---------------------------------------------------------------- correctness

A = ("a", {"x": 1, "y": "s"})
B = ("b", {"z": True})
GT_AB = tool_out(A, B)  # S_max = 1 + (1 + 2) + (1 + 1) = 6


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        (tool_out(A, B), 3.0),  # exact match
        (tool_out(B, A), 3.0),  # reordered: names J 1, A 1 + 2, B 1 + 1 -> S = 6 = S_max
        (tool_out(A), 0.5),  # partial names: J = 1/2, A 3 -> S 3.5 -> 6 * 3.5 / 6 - 3
        (tool_out(("a", {"x": 1}), B), 1.5),  # partial params: 1 + (1/2 + 1) + 2 = 4.5
        (tool_out(("a", {"x": 2, "y": "t"}), ("b", {"z": False})), 0.0),  # wrong values: 1 + 1 + 1 = 3
        (tool_out(A, B, ("c", {})), 8 / 3),  # extra call: J = 2/3, + 3 + 2 -> 17/3
        (tool_out(("c", {"x": 1})), -3.0),  # wrong name only: J = 0 and nothing matches -> S = 0
        (tool_out(A, think="no think tag"), 0.5),  # correctness ignores the layout
        ("<think>x</think>\n<tool_call>\n{bad json\n</tool_call>", -3.0),  # unparseable
        ("<think>x</think>\n<tool_call>\n\n</tool_call>", -3.0),  # empty block
        ("<think>x</think>\n<tool_call>\n[1, 2]\n</tool_call>", -3.0),  # not an object
        ('<think>x</think>\n<tool_call>\n{"name": "a", "parameters": [1]}\n</tool_call>', -3.0),
        ('<think>x</think>\n<tool_call>\n{"parameters": {}}\n</tool_call>', -3.0),  # no name
        ("<think>x</think>\n<tool_call>\n" + calls(A), -3.0),  # unclosed block
        ("<think>x</think>\n<response>I cannot</response>", -3.0),  # no call at all
    ],
)
def test_correctness_reward(pred, expected):
    assert correctness_reward(pred, GT_AB) == pytest.approx(expected)


def test_correctness_without_ground_truth_call_is_zero():
    for truth in [GT_RESPONSE, GT_THINK]:
        assert correctness_reward("garbage", truth) == 0.0
        assert correctness_reward(GT_AB, truth) == 0.0


def test_correctness_multiset_names_and_unused_matching():
    gt = tool_out(("a", {"x": 1}), ("a", {"x": 2}))  # S_max = 1 + 2 + 2 = 5
    # One of two same-name calls: J = 1/(2+1-1) = 1/2; first gt call 1 + 1, second none -> 2.5 -> 0
    assert correctness_reward(tool_out(("a", {"x": 1})), gt) == pytest.approx(0.0)
    # Swapped: each gt call takes its best unused prediction -> S = 1 + 2 + 2 = 5
    assert correctness_reward(tool_out(("a", {"x": 2}), ("a", {"x": 1})), gt) == pytest.approx(3.0)
    # The same call twice: first gt call 2, second gets the leftover copy at 1 + 0 -> S = 4 -> 1.8
    assert correctness_reward(tool_out(("a", {"x": 1}), ("a", {"x": 1})), gt) == pytest.approx(1.8)


def test_correctness_zero_score_candidate_is_not_matched_and_empty_params_match():
    gt = tool_out(("a", {"x": 1}))  # S_max = 3
    assert correctness_reward(tool_out(("a", {"q": 5})), gt) == pytest.approx(-1.0)  # S = J names = 1
    gt_empty = tool_out(("c", {}))  # S_max = 2; J([], []) = 1 for the parameter keys
    assert correctness_reward(tool_out(("c", {}), ("a", {"x": 1})), gt_empty) == pytest.approx(1.5)
    # Values compare as decoded JSON with Python ==, so 1 and 1.0 are one value (as upstream).
    assert correctness_reward(tool_out(("a", {"x": 1.0})), gt) == 3.0


def test_reward_channels_read_ground_truth_column():
    rewards = ToolRLRewards()
    assert [(c.name, c.binary, c.low, c.high) for c in rewards.channels] == [
        ("format", True, 0.0, 1.0),
        ("correctness", False, -3.0, 3.0),
    ]
    completions = [[{"role": "assistant", "content": GT_AB}], [{"role": "assistant", "content": "oops"}]]
    rows = rewards(["p", "p"], completions, ground_truth=[GT_AB, GT_AB], completion_ids=[[1], [2]])
    assert rows == [[1.0, 3.0], [0.0, -3.0]]
    with pytest.raises(ValueError, match="ground_truth"):
        rewards(["p"], ["x"])


# ---------------------------------------------------------------- loaders


def _unpinned(**kw) -> ToolRLConfig:
    """A config for a generated file, which is not upstream's pinned one: no digest check."""
    return ToolRLConfig(source_digest=None, **kw)


@pytest.fixture
def raw_file(tmp_path):
    return write_rlla_fixture(tmp_path / "raw", n=200, seed=0)


def test_fixture_is_in_the_upstream_schema_and_scores_its_own_truth():
    records = fixture_records(100, seed=3)
    assert records == fixture_records(100, seed=3) and records != fixture_records(100, seed=4)
    short = fixture_records(100, seed=3, short_prompt=True)
    assert [r["output"] for r in short] == [r["output"] for r in records]  # same targets, shorter system
    assert all(len(a["instruction"]) < len(b["instruction"]) / 2 for a, b in zip(short, records, strict=True))
    kinds = set()
    for r in records:
        assert set(r) == {"instruction", "input", "output"}
        assert "**Available Tools**" in r["instruction"] and r["input"].startswith(
            "**Dialogue Records History**"
        )
        assert format_reward(r["output"], r["output"]) == 1.0
        kinds.add(correctness_reward(r["output"], r["output"]))
    assert kinds == {0.0, 3.0}  # reply-only and tool-call targets both occur


def test_raw_split_sizes_determinism_and_upstream_mechanism(raw_file):
    import numpy as np

    train, test = load_rlla(_unpinned(source=str(raw_file)))
    assert (len(train), len(test)) == (196, 4)  # int(200 * 0.02) = 4 held out
    assert (train, test) == load_rlla(_unpinned(source=str(raw_file)))
    assert load_rlla(_unpinned(source=str(raw_file), split_seed=1))[0] != train
    assert train[0]["id"] == "rlla-train-0000" and test[-1]["id"] == "rlla-test-0003"
    assert [m["role"] for m in train[0]["prompt"]] == ["system", "user"]

    # Upstream's own steps on the same file: seed the global numpy RNG, shuffle the list, cut the tail.
    records = json.loads(raw_file.read_text())
    state = np.random.get_state()
    try:
        np.random.seed(31415)
        np.random.shuffle(records)
    finally:
        np.random.set_state(state)
    assert [r["ground_truth"] for r in train] == [r["output"] for r in records[:-4]]
    assert [r["prompt"][1]["content"] for r in test] == [r["input"] for r in records[-4:]]

    assert [len(part) for part in split_raw(fixture_records(4000), 0.02, 31415)] == [3920, 80]
    assert [len(part) for part in split_raw(fixture_records(40), 0.02, 31415)] == [40, 0]  # no empty train


def test_parquet_and_directory_sources_match_the_raw_split(raw_file, tmp_path):
    import pyarrow.parquet as pq

    checkout = tmp_path / "ToolRL"
    records = json.loads(raw_file.read_text())
    train_pq, test_pq = write_prepared_split(records, checkout / "dataset" / "rlla_4k")
    table = pq.read_table(train_pq)
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert (table.num_rows, pq.read_table(test_pq).num_rows) == (196, 4)

    raw_train, _ = load_rlla(_unpinned(source=str(raw_file)))
    assert load_rlla(_unpinned(source=str(train_pq)))[0] == raw_train
    assert load_rlla(_unpinned(source=str(checkout)))[0] == raw_train  # checkout layout, parquet first
    assert load_rlla(_unpinned(source=str(raw_file.parent))) == load_rlla(_unpinned(source=str(raw_file)))
    with pytest.raises(FileNotFoundError, match="rlla_rl.json"):
        load_rlla(_unpinned(source=str(tmp_path / "missing.json")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none"):
        load_rlla(_unpinned(source=str(tmp_path / "empty")))


def _write(tmp_path: Path, records) -> Path:
    path = tmp_path / "rlla_rl.json"
    path.write_text(json.dumps(records))
    return path


def test_malformed_rows_name_file_and_row(tmp_path):
    good = fixture_records(6)
    bad = [dict(r) for r in good]
    del bad[3]["output"]
    with pytest.raises(ValueError, match=r"rlla_rl\.json: row 3: .*'output'"):
        load_rlla(_unpinned(source=str(_write(tmp_path, bad))))
    bad = [dict(r) for r in good]
    bad[5]["output"] = f'{THINK}\n<tool_call>\n{{"name": "a", \n</tool_call>'
    with pytest.raises(ValueError, match=r"rlla_rl\.json: row 5: ground-truth tool call line is not JSON"):
        load_rlla(_unpinned(source=str(_write(tmp_path, bad))))
    bad[5]["output"] = f'{THINK}\n<tool_call>\n["a"]\n</tool_call>'
    with pytest.raises(ValueError, match="row 5: .*lacks name/parameters"):
        load_rlla(_unpinned(source=str(_write(tmp_path, bad))))
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_rlla(_unpinned(source=str(tmp_path / "broken.json")))


def test_malformed_parquet_row_names_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    prompt = [{"role": "user", "content": "q"}]
    rows = [{"prompt": prompt, "reward_model": {"style": "rule", "ground_truth": GT_CALL}}] * 2
    rows.append({"prompt": prompt, "reward_model": {"style": "rule", "ground_truth": None}})
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(ValueError, match=r"train\.parquet: row 2: missing `reward_model.ground_truth`"):
        load_rlla(_unpinned(source=str(path)))


class _Response:
    def __init__(self, data: bytes):
        self.data = data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self) -> bytes:
        return self.data


def test_url_source_downloads_once_and_fails_clearly_offline(tmp_path, monkeypatch, raw_file):
    url = "https://example.org/ToolRL/dataset/rlla_4k_raw/rlla_rl.json"
    opened = []

    def fake_urlopen(u, timeout=None):
        opened.append(u)
        return _Response(raw_file.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    cfg = _unpinned(source=url, download_dir=str(tmp_path / "cache"))
    assert load_rlla(cfg) == load_rlla(_unpinned(source=str(raw_file)))
    assert load_rlla(cfg)[0] and opened == [url]  # the second load reads the cache
    assert (tmp_path / "cache" / "rlla_rl.json").exists()

    def offline(u, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match=r"could not download .*example\.org.*task\.source"):
        load_rlla(_unpinned(source=url, download_dir=str(tmp_path / "other")))


def _git_blob_id(path: Path) -> str:
    import subprocess

    return subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_local_source_is_checked_against_its_digest(raw_file):
    """The loader's local path mode, on a fixture in the real schema: a wrong digest is refused in
    one line naming the file, the algorithm and both values; the file's own git blob id (as git
    computes it) or sha256 passes; null skips the check."""
    import hashlib

    blob = _git_blob_id(raw_file)
    train, test = load_rlla(_unpinned(source=str(raw_file)))
    assert load_rlla(ToolRLConfig(source=str(raw_file), source_digest=f"git-blob-sha1:{blob}")) == (
        train,
        test,
    )
    sha = hashlib.sha256(raw_file.read_bytes()).hexdigest()
    assert load_rlla(ToolRLConfig(source=str(raw_file.parent), source_digest=f"sha256:{sha}"))[0] == train
    with pytest.raises(TaskInputError) as err:
        load_rlla(ToolRLConfig(source=str(raw_file)))  # the default: upstream's pinned file
    assert str(err.value) == (
        f"RLLA-4k {raw_file}: git-blob-sha1 {blob}, expected {toolrl.RLLA_DIGEST.split(':')[1]} "
        "(task.source_digest; set it to this file's digest, or null to skip the check)"
    )
    raw_file.write_bytes(raw_file.read_bytes().replace(b"Dialogue", b"Dialog", 1))  # one record edited
    with pytest.raises(TaskInputError, match=rf"rlla_rl\.json: sha256 \w+, expected {sha}"):
        load_rlla(ToolRLConfig(source=str(raw_file), source_digest=f"sha256:{sha}"))


def test_url_source_is_checked_before_it_is_cached(tmp_path, monkeypatch, raw_file):
    monkeypatch.setattr(urllib.request, "urlopen", lambda u, timeout=None: _Response(raw_file.read_bytes()))
    url, cache = "https://example.org/rlla_rl.json", tmp_path / "cache"
    with pytest.raises(
        TaskInputError, match=r"download of https://example\.org/rlla_rl\.json: git-blob-sha1"
    ):
        load_rlla(ToolRLConfig(source=url, download_dir=str(cache)))
    assert not (cache / "rlla_rl.json").exists()  # a refused download leaves nothing to read later
    pin = f"git-blob-sha1:{_git_blob_id(raw_file)}"
    assert len(load_rlla(ToolRLConfig(source=url, download_dir=str(cache), source_digest=pin))[0]) == 196
    (cache / "rlla_rl.json").write_text("[]")  # a cached copy that changed is refused too
    with pytest.raises(TaskInputError, match=r"cache/rlla_rl\.json: git-blob-sha1"):
        load_rlla(ToolRLConfig(source=url, download_dir=str(cache), source_digest=pin))


def test_the_default_source_is_upstreams_file_at_a_pinned_commit(compose_cfg):
    from rvpo_repro.tasks import prepare_config

    assert toolrl.RLLA_URL == (
        f"https://raw.githubusercontent.com/qiancheng0/ToolRL/{toolrl.RLLA_COMMIT}/dataset/rlla_4k_raw/rlla_rl.json"
    )
    assert len(toolrl.RLLA_COMMIT) == 40 and "/main/" not in toolrl.RLLA_URL
    for cfg in (ToolRLConfig(), compose_cfg("experiment=tool_calling").task):
        assert (cfg.source, cfg.source_digest) == (toolrl.RLLA_URL, toolrl.RLLA_DIGEST)
    with pytest.raises(
        TaskInputError, match=r"task.source_digest: digest 'sha1:00': expected '<algo>:<hex>'"
    ):
        prepare_config(compose_cfg("experiment=tool_calling", "task.source_digest=sha1:00"))
    prepare_config(compose_cfg("experiment=tool_calling", "task.source_digest=null"))


def test_url_download_defaults_to_the_run_cache(tmp_path, monkeypatch, raw_file):
    monkeypatch.setattr(urllib.request, "urlopen", lambda u, timeout=None: _Response(raw_file.read_bytes()))
    task = get_task(_unpinned(source="https://example.org/rlla_rl.json", download_dir=None))
    task.cache_dir = str(tmp_path / "cache")  # the run's paths.cache_dir
    assert len(task.train_rows()) == 196
    assert (tmp_path / "cache" / "datasets" / "rlla_4k_raw" / "rlla_rl.json").exists()


def test_cli_writes_fixture_and_prepared_split(tmp_path, capsys):
    toolrl.main(["--write-fixture", str(tmp_path / "fx"), "--n", "60"])
    raw = tmp_path / "fx" / "rlla_rl.json"
    assert len(json.loads(raw.read_text())) == 60
    toolrl.main(["--prepare", str(raw), str(tmp_path / "fx" / "rlla_4k")])
    assert (tmp_path / "fx" / "rlla_4k" / "test.parquet").exists()
    assert "train.parquet" in capsys.readouterr().out


# ---------------------------------------------------------------- task: build and evaluate


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def stub_bfcl(monkeypatch):
    """A stand-in for rvpo_repro.evals.bfcl with its contract, so the task's plumbing is tested alone."""
    import rvpo_repro.evals

    entries = [
        {
            "id": f"{cat}_{i}",
            "category": cat,
            "question": [[{"role": "user", "content": f"q{i}"}]],
            "function": [{"name": "f"}],
            "ground_truth": [{"f": {"x": [i]}}],
        }
        for cat in ["simple_python", "irrelevance"]
        for i in range(3)
    ]
    stub = types.SimpleNamespace(
        load_bfcl=lambda source=None, categories=None, cache_dir=".cache": [
            e for e in entries if e["category"] in categories
        ],
        describe_data=lambda source=None, cache_dir=".cache": f"BFCL stub ({source})",
        sample_entries=lambda es, n, seed: [e for e in es if int(e["id"][-1]) < n],
        bfcl_messages=lambda e: [{"role": "system", "content": "tools"}, *e["question"][0]],
        score=lambda es, outs, parser="toolrl": EvalResult(
            {
                "bfcl/overall": {
                    "value": sum(o == "ok" for o in outs) / len(outs),
                    "stderr": None,
                    "n": len(outs),
                }
            },
            [
                {"id": e["id"], "category": e["category"], "score": float(o == "ok")}
                for e, o in zip(es, outs, strict=True)
            ],
            {"bfcl/overall": "score"},
            primary="bfcl/overall",
        ),
    )
    monkeypatch.setitem(sys.modules, "rvpo_repro.evals.bfcl", stub)
    monkeypatch.setattr(rvpo_repro.evals, "bfcl", stub, raising=False)
    return stub


def test_build_and_evaluate_through_the_bfcl_contract(tokenizer, stub_bfcl):
    cfg = ToolRLConfig(
        source="fixture",
        fixture_examples=60,
        max_train_examples=20,
        bfcl_categories=["simple_python", "irrelevance"],
        bfcl_per_category=2,
    )
    task = get_task(cfg)
    data = task.build(tokenizer, seed=0)
    assert set(data.train_dataset.column_names) == {"id", "prompt", "ground_truth"}
    assert len(data.train_dataset) == 20 and [c.name for c in data.channels] == ["format", "correctness"]
    ev = data.eval_dataset
    assert ev["id"] == ["simple_python_0", "simple_python_1", "irrelevance_0", "irrelevance_1"]
    assert ev[0]["prompt"][0] == {"role": "system", "content": "tools"} and json.loads(ev[0]["entry"])["id"]

    result = task.evaluate(ev, [["ok", "no"], ["no", "ok"], ["ok"], ["x"]], tokenizer)
    assert result.metrics["bfcl/overall"] == {"value": 0.5, "stderr": None, "n": 4}  # first samples only
    assert result.columns == {"bfcl/overall": "score"} and result.primary == "bfcl/overall"
    assert [e["score"] for e in result.examples] == [1.0, 0.0, 1.0, 0.0]
    assert result.examples[1]["completion"] == "no" and result.examples[0]["category"] == "simple_python"
    with pytest.raises(ValueError, match="3 generations for 4"):
        task.evaluate(ev, [["ok"]] * 3, tokenizer)


def _bfcl_with_data():
    bfcl = pytest.importorskip("rvpo_repro.evals.bfcl")
    try:
        bfcl.package_data_dir()
    except FileNotFoundError:
        pytest.skip("bfcl-eval data is not installed")
    return bfcl


def test_evaluate_with_the_bfcl_module(tokenizer):
    """The real BFCL module end to end on one entry per category: right calls and abstentions score 1."""
    _bfcl_with_data()
    task = get_task(
        ToolRLConfig(source="fixture", fixture_examples=60, bfcl_per_category=1, bfcl_source=None)
    )
    ev = task.build(tokenizer, seed=0).eval_dataset
    assert (
        ev["category"] == toolrl.BFCL_CATEGORIES and ev["id"] == task.build(tokenizer, 1).eval_dataset["id"]
    )
    outputs = []
    for entry in map(json.loads, ev["entry"]):
        if entry["category"] == "live_relevance":  # some call is right
            outputs.append(tool_out((entry["function"][0]["name"], {})))
        elif entry["ground_truth"] is None:  # irrelevance: no call is right
            outputs.append(f"{THINK}\n<response>no tool fits</response>")
        else:  # the first acceptable value of each argument, optional ("") ones left out
            truth = [(name, args) for call in entry["ground_truth"] for name, args in call.items()]
            outputs.append(tool_out(*[(n, {k: v[0] for k, v in a.items() if v[0] != ""}) for n, a in truth]))
    result = task.evaluate(ev, [[o, "ignored"] for o in outputs], tokenizer)
    right = {e["category"] for e in result.examples if e["score"] == 1.0}
    assert {
        "simple_python",
        "multiple",
        "parallel",
        "irrelevance",
        "live_irrelevance",
        "live_relevance",
    } <= right
    assert {"bfcl/overall", "bfcl/non_live", "bfcl/live"} <= set(result.metrics)
    assert result.primary == "bfcl/overall" and set(result.columns) == set(result.metrics)
    assert result.examples[0]["completion"] == outputs[0]
    wrong = task.evaluate(ev, [["<think>x</think>\n<tool_call>\n{bad\n</tool_call>"]] * len(ev), tokenizer)
    assert (
        wrong.metrics["bfcl/simple_python"]["value"] == 0.0
        and wrong.metrics["bfcl/irrelevance"]["value"] == 1.0
    )
    # a stray non-JSON line: ToolRL's handler rules (the default) skip it, task.bfcl_parser=strict fails
    noisy = [[o.replace("\n</tool_call>", "\nnot json\n</tool_call>")] for o in outputs]
    assert task.evaluate(ev, noisy, tokenizer).metrics["bfcl/simple_python"]["value"] == 1.0
    strict = get_task(
        ToolRLConfig(
            source="fixture", fixture_examples=60, bfcl_per_category=1, bfcl_parser="strict", bfcl_source=None
        )
    )
    assert strict.evaluate(ev, noisy, tokenizer).metrics["bfcl/simple_python"]["value"] == 0.0


def test_bfcl_source_directory_in_the_file_schema(tokenizer, tmp_path):
    pytest.importorskip("rvpo_repro.evals.bfcl")
    from helpers.fixtures_bfcl import write_bfcl_fixture

    cfg = ToolRLConfig(source="fixture", fixture_examples=60, bfcl_source=str(write_bfcl_fixture(tmp_path)))
    task = get_task(cfg)
    data = task.build(tokenizer, seed=0)
    assert data.extra["bfcl_data"] == f"BFCL v4 ({tmp_path})"  # the record says what was scored
    ev = data.eval_dataset
    assert set(ev["category"]) == set(toolrl.BFCL_CATEGORIES)
    result = task.evaluate(ev, [["<think>x</think>\n<response>none</response>"]] * len(ev), tokenizer)
    assert (
        result.metrics["bfcl/irrelevance"]["value"] == 1.0
        and result.metrics["bfcl/simple_python"]["value"] == 0.0
    )


def test_default_categories_are_the_bfcl_modules_single_turn_ones():
    bfcl = pytest.importorskip("rvpo_repro.evals.bfcl")
    assert toolrl.BFCL_CATEGORIES == list(bfcl.CATEGORIES)


def test_max_prompt_tokens_drops_long_prompts(tokenizer):
    rows = get_task(ToolRLConfig(source="fixture", fixture_examples=60)).train_rows(tokenizer)
    lengths = sorted(prompt_tokens(tokenizer, r["prompt"]) for r in rows)
    limit = lengths[len(lengths) // 2]
    kept = get_task(ToolRLConfig(source="fixture", fixture_examples=60, max_prompt_tokens=limit))
    n_kept = len(kept.train_rows(tokenizer))
    assert 0 < n_kept < len(rows)
    dropped = sum(n > limit for n in lengths)
    assert kept.prompts == {"read": len(rows), "max_prompt_tokens": limit, "dropped": dropped}
    assert n_kept == len(rows) - dropped
    with pytest.raises(ValueError, match="no training rows"):
        get_task(ToolRLConfig(source="fixture", fixture_examples=60, max_prompt_tokens=5)).train_rows(
            tokenizer
        )


# ---------------------------------------------------------------- experiments


def test_tool_calling_tiny_is_offline_and_small():
    from rvpo_repro.config import compose, validate

    cfg = compose(["experiment=tool_calling_tiny", "paths.output_dir=/tmp/unused"])
    validate(cfg)
    assert cfg.experiment_name == "tool_calling_tiny" and cfg.model.name == "tiny"
    assert cfg.task.name == "toolrl" and cfg.task.source == "fixture" and cfg.task.bfcl_per_category == 2
    assert (
        cfg.trainer.max_steps <= 20
        and cfg.model.per_device_train_batch_size % cfg.trainer.num_generations == 0
    )


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tool_calling_tiny_trains_evaluates_and_records(tmp_path, train_cmd):
    import os
    import subprocess

    from rvpo_repro.run.record import load_examples, load_record

    bfcl = pytest.importorskip("rvpo_repro.evals.bfcl", reason="rvpo_repro.evals.bfcl is not there yet")
    overrides = [
        "logger=disabled",
        "trainer.max_steps=4",  # the wiring, not learning: a few steps keep make test short
        "trainer.save_steps=4",
    ]
    try:
        bfcl.package_data_dir()
    except FileNotFoundError:  # no bfcl-eval wheel: the BFCL test fixture in the real file schema
        from helpers.fixtures_bfcl import write_bfcl_fixture

        overrides.append(f"task.bfcl_source={write_bfcl_fixture(tmp_path / 'bfcl')}")
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = train_cmd(*overrides, experiment="tool_calling_tiny")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = list((tmp_path / "results" / "runs" / "tool_calling_tiny").iterdir())
    rec = load_record(run_dir)
    assert rec.experiment == "tool_calling_tiny" and rec.config["task"]["name"] == "toolrl"
    assert rec.extra["train"]["global_step"] == 4 and rec.extra["train"]["channels"] == [
        "format",
        "correctness",
    ]
    examples = load_examples(run_dir)
    assert examples and {"id", "category", "score", "completion"} <= set(examples[0])
    assert len({e["id"] for e in examples}) == len(examples)
    assert all(0.0 <= m["value"] <= 1.0 for m in rec.metrics.values()) and "bfcl/overall" in rec.metrics
    assert rec.metrics["bfcl/overall"]["n"] == len(examples)
    assert rec.primary_metric == "bfcl/overall" and rec.example_columns["bfcl/overall"] == "overall"


@pytest.mark.parametrize("option", ["toolrl", "toolrl_tiny"])
def test_task_options_compose_against_the_schema(option, compose_cfg):
    from omegaconf import OmegaConf

    from rvpo_repro.config import validate

    cfg = compose_cfg(f"task={option}")
    validate(cfg)
    assert OmegaConf.get_type(cfg.task) is ToolRLConfig
    assert cfg.task.bfcl_categories == toolrl.BFCL_CATEGORIES and cfg.task.split_seed == 31415
    assert cfg.task.download_dir.endswith("datasets/rlla_4k_raw")


def test_bfcl_parser_is_toolrls_by_default_and_strict_on_request():
    from rvpo_repro.config import compose
    from rvpo_repro.tasks import prepare_config
    from rvpo_repro.tasks.base import TaskInputError

    assert compose(["experiment=tool_calling"]).task.bfcl_parser == "toolrl"
    prepare_config(compose(["experiment=tool_calling", "task.bfcl_parser=strict"]))
    with pytest.raises(TaskInputError, match="task.bfcl_parser='python'"):
        prepare_config(compose(["experiment=tool_calling", "task.bfcl_parser=python"]))
