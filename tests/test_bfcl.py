"""rvpo_repro.evals.bfcl: loading, parsing, BFCL's AST checker semantics, scoring.

Always run on fixture files written in the real schema (tests/helpers/fixtures_bfcl.py). With the
bfcl-eval wheel's data installed (`pip install --no-deps bfcl-eval==2026.3.23`), also on a seeded
sample of the real questions. The `slow` agreement test compares verdicts with the package's own
checker, run in a separate venv named by BFCL_REF_PYTHON (scripts/bfcl_reference_check.py).
"""

from __future__ import annotations

import importlib.metadata
import json
import keyword
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fixtures_bfcl import (
    FIXTURE,
    answer_calls,
    bfcl_unpassable,
    mutations,
    tool_call_text,
    variants,
    write_bfcl_fixture,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from rvpo_repro.evals import bfcl
from rvpo_repro.evals.base import column_mean
from rvpo_repro.evals.bfcl_checker import ast_check
from rvpo_repro.evals.bfcl_parsing import parse_python_calls, parse_tool_calls_strict, parse_tool_calls_toolrl

REPO = Path(__file__).resolve().parents[1]
PINNED = "2026.3.23"


@pytest.fixture(scope="module")
def fixture_entries(tmp_path_factory):
    return bfcl.load_bfcl(write_bfcl_fixture(tmp_path_factory.mktemp("bfcl")))


def _by_id(entries):
    return {e["id"]: e for e in entries}


def _a_function(entry):
    """A function name to call: the entry's first (some live_irrelevance entries have none)."""
    return entry["function"][0]["name"] if entry["function"] else "some_tool"


def _no_call_output(entry):
    return "<think>No tool fits.</think>\n<response>I cannot help with that.</response>"


def _correct_output(entry):
    if entry["category"] == "live_relevance":
        return tool_call_text([{_a_function(entry): {}}])
    return tool_call_text(answer_calls(entry)) if entry["ground_truth"] else _no_call_output(entry)


def _python_text(calls):
    return (
        "["
        + ", ".join(
            f"{n}({', '.join(f'{k}={v!r}' for k, v in p.items())})" for c in calls for n, p in c.items()
        )
        + "]"
    )


# ---------------------------------------------------------------- loading
def test_fixture_loads_every_category(fixture_entries, tmp_path):
    assert bfcl.available_categories(write_bfcl_fixture(tmp_path)) == list(bfcl.CATEGORIES)
    counts = {c: sum(e["category"] == c for e in fixture_entries) for c in bfcl.CATEGORIES}
    assert counts == {c: len(items) for c, items in FIXTURE.items()}
    for e in fixture_entries:
        assert set(e) == {"id", "category", "question", "function", "ground_truth"}
        assert (e["ground_truth"] is None) == (e["category"] in bfcl.NO_ANSWER)
    assert _by_id(fixture_entries)["live_simple_0"]["question"][0][0]["role"] == "system"


def test_v3_names_newest_version_and_category_filter(tmp_path):
    v3 = write_bfcl_fixture(tmp_path / "v3", version=3)
    assert bfcl.available_categories(v3) == list(bfcl.CATEGORIES)
    assert [e["id"] for e in bfcl.load_bfcl(v3, ["parallel"])] == ["parallel_0"]
    both = write_bfcl_fixture(write_bfcl_fixture(tmp_path / "both", version=3), version=4)
    (both / "BFCL_v3_multiple.json").write_text("not json\n")  # the v4 file wins, v3 is not read
    assert len(bfcl.load_bfcl(both, ["multiple"])) == 1
    with pytest.raises(ValueError, match=r"\['nope'\] not found .* available: \['simple_python'"):
        bfcl.load_bfcl(v3, ["nope"])


def test_v3_files_carry_v4_category_names_and_their_own_language(tmp_path):
    v3 = bfcl.load_bfcl(write_bfcl_fixture(tmp_path / "v3", version=3))
    v4 = bfcl.load_bfcl(write_bfcl_fixture(tmp_path / "v4"))
    assert [e["category"] for e in v3] == [e["category"] for e in v4]
    assert [(e["question"], e["function"], e["ground_truth"]) for e in v3] == [
        (e["question"], e["function"], e["ground_truth"]) for e in v4
    ]
    assert [e["id"] for e in v3 if e["category"] == "simple_java"] == ["java_0"]  # v3's own ids
    java = next(e for e in v3 if e["category"] == "simple_java")
    assert "Java 8 SDK syntax" in bfcl.bfcl_messages(java)[0]["content"]
    assert bfcl.describe_data(tmp_path / "v3") == f"BFCL v3 ({tmp_path / 'v3'})"
    assert bfcl.describe_data(tmp_path / "v4") == f"BFCL v4 ({tmp_path / 'v4'})"


def _wheel(tmp_path: Path, version: int) -> Path:
    """A wheel-shaped zip holding a fixture as bfcl-eval packs its data."""
    import zipfile

    data = write_bfcl_fixture(tmp_path / f"data-v{version}", version=version)
    wheel = tmp_path / "bfcl_eval-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in sorted(data.rglob("*.json")):
            zf.write(path, f"bfcl_eval/data/{path.relative_to(data)}")
        zf.writestr("bfcl_eval/__init__.py", "")
    return wheel


def test_a_release_is_fetched_once_checked_and_unpacked(tmp_path, monkeypatch):
    import hashlib

    wheel = _wheel(tmp_path, 3)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    monkeypatch.setitem(bfcl.RELEASES, "v3", bfcl.Release("0.0.1", wheel.as_uri(), "0" * 64))
    with pytest.raises(
        ValueError, match=rf"download of .*bfcl_eval-0\.0\.1-py3-none-any\.whl: sha256 {sha}, expected 0+$"
    ):
        bfcl.load_bfcl("v3", cache_dir=cache)
    assert not (cache / "bfcl" / "bfcl_eval-0.0.1").exists()  # nothing unpacked from a refused wheel

    monkeypatch.setitem(bfcl.RELEASES, "v3", bfcl.Release("0.0.1", wheel.as_uri(), sha))
    entries = bfcl.load_bfcl("v3", cache_dir=cache)
    assert entries == bfcl.load_bfcl(tmp_path / "data-v3")
    assert bfcl.describe_data("v3", cache) == "BFCL v3 (bfcl-eval 0.0.1)"
    assert not (cache / "bfcl" / "bfcl_eval-0.0.1" / "bfcl_eval" / "__init__.py").exists()  # data only
    wheel.unlink()  # later loads read the unpacked copy
    assert bfcl.load_bfcl("v3", cache_dir=cache) == entries


def test_the_pinned_release_is_v3_and_the_paper_experiment_scores_on_it():
    from rvpo_repro.config import compose

    rel = bfcl.RELEASES["v3"]
    assert rel.url.endswith(f"/bfcl_eval-{rel.version}-py3-none-any.whl") and len(rel.sha256) == 64
    assert rel.url.startswith("https://files.pythonhosted.org/packages/")
    assert compose(["experiment=tool_calling"]).task.bfcl_source == "v3"
    assert compose(["experiment=tool_calling_tiny"]).task.bfcl_source is None  # CPU: no download


@pytest.mark.parametrize("answers", [False, True])
def test_malformed_json_names_file_and_line(tmp_path, answers):
    root = write_bfcl_fixture(tmp_path)
    path = root / ("possible_answer" if answers else "") / "BFCL_v4_parallel.json"
    path.write_text(path.read_text() + '{"id": "parallel_1", "ground_truth": [}\n')
    with pytest.raises(ValueError, match=r"BFCL_v4_parallel\.json:2: malformed JSON"):
        bfcl.load_bfcl(root, ["parallel"])


def test_record_without_required_field_and_question_without_answer(tmp_path):
    root = write_bfcl_fixture(tmp_path)
    q = root / "BFCL_v4_multiple.json"
    q.write_text(q.read_text() + json.dumps({"id": "multiple_1", "question": []}) + "\n")
    with pytest.raises(ValueError, match=r"BFCL_v4_multiple\.json:2: record lacks field\(s\) \['function'\]"):
        bfcl.load_bfcl(root, ["multiple"])
    extra = {"id": "multiple_7", "question": [[{"role": "user", "content": "x"}]], "function": []}
    q.write_text(q.read_text().splitlines()[0] + "\n" + json.dumps(extra) + "\n")
    with pytest.raises(ValueError, match=r"question 'multiple_7' has no possible answer"):
        bfcl.load_bfcl(root, ["multiple"])
    (root / "possible_answer" / "BFCL_v4_multiple.json").unlink()
    with pytest.raises(FileNotFoundError, match="needs possible answers"):
        bfcl.load_bfcl(root, ["multiple"])


def test_missing_package_gives_install_hint(monkeypatch):
    find_spec = bfcl.importlib.util.find_spec
    monkeypatch.setattr(
        bfcl.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bfcl_eval" else find_spec(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps bfcl-eval==2026.3.23"):
        bfcl.load_bfcl(None)


def test_sample_entries_is_seeded_per_category_and_keeps_order():
    entries = [{"id": f"{c}_{i}", "category": c} for c in ("simple_python", "multiple") for i in range(40)]
    a = bfcl.sample_entries(entries, 5, seed=0)
    assert a == bfcl.sample_entries(entries, 5, seed=0)
    assert [e["category"] for e in a] == ["simple_python"] * 5 + ["multiple"] * 5
    assert a == sorted(a, key=entries.index)  # input order kept
    assert a != bfcl.sample_entries(entries, 5, seed=1)
    alone = bfcl.sample_entries([e for e in entries if e["category"] == "multiple"], 5, seed=0)
    assert alone == a[5:]  # a category's draw does not depend on the others
    assert bfcl.sample_entries(entries, None, 0) == entries and len(bfcl.sample_entries(entries, 99, 0)) == 80


# ---------------------------------------------------------------- prompt
def test_messages_list_tools_and_format(fixture_entries):
    by_id = _by_id(fixture_entries)
    msgs = bfcl.bfcl_messages(by_id["multiple_0"])
    assert [m["role"] for m in msgs] == ["system", "user"]
    sys_text = msgs[0]["content"]
    assert all(tag in sys_text for tag in ("<think>", "<tool_call>", "</tool_call>", "<response>"))
    tools = [
        json.loads(line)
        for line in sys_text.splitlines()
        if line.startswith('{"name": "') and "description" in line
    ]
    assert [t["name"] for t in tools] == ["get_weather", "geometry.area"]
    assert tools[0]["description"].endswith("in Python 3 syntax.")
    live = bfcl.bfcl_messages(by_id["live_simple_0"])
    assert [m["role"] for m in live] == ["system", "user"] and live[0]["content"].endswith("\n\nBe brief.")
    java = bfcl.bfcl_messages(by_id["simple_java_0"])[0]["content"]
    (doc,) = [json.loads(line) for line in java.splitlines() if line.startswith('{"name": "DataLoader')]
    assert {p["type"] for p in doc["parameters"]["properties"].values()} == {"string"}
    assert "Java ArrayList type" in doc["parameters"]["properties"]["ids"]["description"]
    assert by_id["simple_java_0"]["function"][0]["parameters"]["properties"]["ids"]["type"] == "ArrayList"


# ---------------------------------------------------------------- parsers
def test_parse_tool_calls():
    text = (
        "<think>I need <tool_call> two calls.</think>\n<tool_call>\n"
        '{"name": "a.b", "parameters": {"x": [1, {"y": "z"}]}}\n\n{"name": "c", "parameters": {}}\n'
        "</tool_call>\n<response>done</response>"
    )
    assert parse_tool_calls_strict(text) == [{"a.b": {"x": [1, {"y": "z"}]}}, {"c": {}}]
    assert parse_tool_calls_strict('<tool_call>\n{"name": "f"}\n</tool_call>') == [{"f": {}}]
    assert parse_tool_calls_strict("<think>no tools</think>\n<response>hi</response>") == []
    assert parse_tool_calls_strict("<tool_call>\n\n</tool_call>") == []
    for bad in (
        '<tool_call>\n{"name": "f", "parameters": {}}\n{"name": "g", \n</tool_call>',  # bad JSON line
        '<tool_call>\n{"name": "f", "parameters": {}}\n',  # unclosed
        '<tool_call>\n["f"]\n</tool_call>',
        '<tool_call>\n{"parameters": {}}\n</tool_call>',
        '<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>',
        "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>",
        '<tool_call>\n{"name": "f", "parameters": {"x": ' + "1" * 5000 + "}}\n</tool_call>",
        None,
    ):
        assert parse_tool_calls_strict(bad) is None


def test_toolrl_handler_rules():
    """ToolRL's BFCL handler (rlla_qwen.py decode_ast): last block, bad lines skipped, "None" dropped."""
    ok = '{"name": "f", "parameters": {"a": 1}}'
    text = f"<tool_call>\n{ok}\nnot json\n</tool_call>"
    assert parse_tool_calls_toolrl(text) == [{"f": {"a": 1}}]
    assert parse_tool_calls_strict(text) is None  # one bad line voids the output
    two = '<tool_call>\n{"name": "g", "parameters": {}}\n</tool_call>\n<tool_call>\n' + ok + "\n</tool_call>"
    assert parse_tool_calls_toolrl(two) == [{"f": {"a": 1}}] and parse_tool_calls_strict(two) == [{"g": {}}]
    none = f'<tool_call>\n{{"name": " none ", "parameters": {{}}}}\n{ok}\n{{"name": "None"}}\n</tool_call>'
    assert parse_tool_calls_toolrl(none) == [{"f": {"a": 1}}]
    assert parse_tool_calls_toolrl(f"<tool_call>\n{ok}") == [{"f": {"a": 1}}]  # unclosed: up to the end
    assert parse_tool_calls_toolrl(f"<think><tool_call>\n{ok}\n</tool_call></think>") == [{"f": {"a": 1}}]
    assert parse_tool_calls_strict(f"<think><tool_call>\n{ok}\n</tool_call></think>") == []
    skipped = ['{"name": "f"}', '["f"]', '{"name": 3, "parameters": {}}', "", "[" * 100_000, "{" + "1" * 5000]
    assert parse_tool_calls_toolrl("<tool_call>\n" + "\n".join(skipped) + "\n</tool_call>") == []
    odd = parse_tool_calls_toolrl('<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>')
    assert odd == [{"f": [1]}]  # kept as decoded: not a valid call list for the checker
    fn = [
        {
            "name": "f",
            "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        }
    ]
    assert not ast_check(fn, odd, [{"f": {"a": [1]}}], "simple_python")
    assert (
        parse_tool_calls_toolrl("<response>no tools</response>") == []
        and parse_tool_calls_toolrl(None) is None
    )


def test_score_reads_outputs_with_the_chosen_parser(fixture_entries):
    simple = [e for e in fixture_entries if e["category"] == "simple_python"]
    outs = [_correct_output(e).replace("\n</tool_call>", "\nnot json\n</tool_call>") for e in simple]
    assert all(r["score"] == 1.0 for r in bfcl.score(simple, outs).examples)  # default: ToolRL's rules
    assert all(r["score"] == 0.0 for r in bfcl.score(simple, outs, parser="strict").examples)


def test_integer_parameter_refuses_a_boolean_even_where_one_is_accepted():
    """type(value) is expected, not isinstance: True == 1, so only the type check tells them apart."""
    fn = [
        {
            "name": "f",
            "parameters": {"type": "dict", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        }
    ]
    truth = [{"f": {"n": [1]}}]
    assert ast_check(fn, [{"f": {"n": 1}}], truth, "simple_python")
    assert not ast_check(fn, [{"f": {"n": True}}], truth, "simple_python")


def test_parse_python_calls():
    text = '[func(a=1, b="x, y"), mod.sub.func2(c=[1, -2.5, {"k": [True, None]}], d=-3, e=(1, 2), f=var)]'
    assert parse_python_calls(text) == [
        {"func": {"a": 1, "b": "x, y"}},
        {"mod.sub.func2": {"c": [1, -2.5, {"k": [True, None]}], "d": -3, "e": (1, 2), "f": "var"}},
    ]
    assert parse_python_calls("```\nf(a='q')\n```") == [{"f": {"a": "q"}}]
    assert parse_python_calls("[]") == [] and parse_python_calls("") == []
    assert parse_python_calls("f(1, a=2)") == [{"f": {"a": 2}}]  # positional args ignored, as BFCL
    for bad in (
        "f(a=",
        "I cannot help.",
        "f(a=1+2)",
        "f(a=g(1))",
        "f(**k)",
        "[f(a=1), 3]",
        "f(a={[1]: 2})",
        None,
    ):
        assert parse_python_calls(bad) is None


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("<>/tool_call{}[]()\"':,=\n -1aT.\\")), max_size=80)
    | st.text(max_size=40)
)
def test_parsers_never_raise(text):
    for t in (text, f"<tool_call>\n{text}\n</tool_call>"):
        for parse in (parse_tool_calls_strict, parse_tool_calls_toolrl, parse_python_calls):
            out = parse(t)
            assert out is None or isinstance(out, list)


# ---------------------------------------------------------------- checker on fixtures
def test_fixture_round_trip_scores_100_percent(fixture_entries):
    def python_output(e):
        if e["category"] == "live_relevance":
            return f"[{_a_function(e)}()]"
        return _python_text(answer_calls(e)) if e["ground_truth"] else "No call."

    for fmt, render in (("toolrl", _correct_output), ("strict", _correct_output), ("python", python_output)):
        result = bfcl.score(fixture_entries, [render(e) for e in fixture_entries], parser=fmt)
        metrics, rows = result.metrics, result.examples
        assert all(r["score"] == 1.0 for r in rows), [r for r in rows if r["score"] != 1.0]
        expected = [f"bfcl/{k}" for k in [*bfcl.CATEGORIES, "non_live", "live", "overall"]]
        assert {k: m["value"] for k, m in metrics.items()} == dict.fromkeys(expected, 1.0)


def test_fixture_mutations_all_fail(fixture_entries):
    kinds = set()
    for e in fixture_entries:
        for kind, calls in mutations(e).items():
            kinds.add(kind)
            assert not ast_check(
                e["function"],
                parse_tool_calls_strict(tool_call_text(calls)),
                e["ground_truth"],
                e["category"],
            ), (e["id"], kind)
    assert kinds == {"wrong_name", "missing_required", "extra_call", "wrong_type", "bad_value"}


CASES = [  # (entry id, params of the single call or a list of calls, expected)
    ("simple_python_0", {"city": "new york,ny", "days": 3}, True),
    ("simple_python_0", {"city": "NEW-YORK", "days": 3, "metric": True}, True),
    ("simple_python_0", {"city": "New Jersey", "days": 3}, False),
    ("simple_python_0", {"city": "New York", "days": 3, "metric": False}, False),
    ("simple_python_0", {"city": "New York"}, False),  # days not required, but no "" among its values
    ("simple_python_0", {"city": "New York", "days": True}, False),  # bool is not int
    ("simple_python_0", {"city": "New York", "days": 3.0}, False),
    ("simple_python_0", {"city": "New York", "days": 3, "metric": 1}, False),
    ("simple_python_0", {"city": "New York", "days": 3, "country": "US"}, False),
    ("simple_python_1", {"shape": "circle", "size": 2}, True),  # int accepted for float
    ("simple_python_1", {"shape": "circle", "size": 2.0, "unit": "M."}, True),
    ("simple_python_1", {"shape": "circle", "size": "2"}, False),
    ("simple_python_2", {"matrix": [[1, 2], [3, 4]]}, False),  # labels, options, rows have no ""
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["ROW a", "row_b"],
            "options": {"method": "lu decomposition"},
            "rows": [{"name": "Apple", "qty": 2}, {"name": "pear"}],
        },
        True,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["x", "y"],
            "options": {"method": "LU", "tol": 0.001},
            "rows": [{"name": "apple", "qty": 2}, {"name": "pear", "qty": 1}],
            "point": [1, 2],
        },
        True,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 5]],
            "labels": ["x", "y"],
            "options": {"method": "LU"},
            "rows": [{"name": "apple", "qty": 2}, {"name": "pear"}],
        },
        False,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["y", "x"],
            "options": {"method": "LU"},
            "rows": [{"name": "apple", "qty": 2}, {"name": "pear"}],
        },
        False,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["x", "y"],
            "options": {"tol": 0.001},
            "rows": [{"name": "apple", "qty": 2}, {"name": "pear"}],
        },
        False,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["x", "y"],
            "options": {"method": "LU", "x": 1},
            "rows": [{"name": "apple", "qty": 2}, {"name": "pear"}],
        },
        False,
    ),
    (
        "simple_python_2",
        {
            "matrix": [[1, 2], [3, 4]],
            "labels": ["x", "y"],
            "options": {"method": "LU"},
            "rows": [{"name": "pear"}, {"name": "apple", "qty": 2}],
        },
        False,
    ),
    (
        "simple_java_0",
        {
            "path": "/data/in.csv",
            "strict": "true",
            "ids": "new ArrayList<Long>(Arrays.asList(101L, 202L))",
            "opts": 'new HashMap<String, Object>() {{ put("mode", "fast"); put("level", 2); }}',
            "timeout": "500L",
            "names": "new String[]{alpha, beta}",
            "ctx": "appContext",
        },
        True,
    ),
    (
        "simple_java_0",
        {"path": "/data/in.csv", "strict": True},
        False,
    ),  # Java values are strings of source code
    (
        "simple_java_0",
        {
            "path": "/data/in.csv",
            "strict": "true",
            "ids": "new ArrayList<>(Arrays.asList(101, 202))",
            "opts": 'new HashMap<String, Object>() {{ put("mode", "fast"); put("level", 2); }}',
            "timeout": "500L",
            "names": "new String[]{alpha, beta}",
            "ctx": "appContext",
        },
        False,
    ),
    (
        "simple_java_0",
        {
            "path": "/data/in.csv",
            "strict": "true",
            "ids": "new ArrayList<Long>(Arrays.asList(101L, 202L))",
            "opts": 'new HashMap<String, Object>() {{ put("mode", "fast"); put("level", 2); }}',
            "timeout": "500",
            "names": "new String[]{alpha, beta}",
            "ctx": "appContext",
        },
        False,
    ),
    (
        "simple_java_0",
        {
            "path": "/data/in.csv",
            "strict": "true",
            "ids": "new ArrayList<Long>(Arrays.asList(101L, 202L))",
            "opts": 'new HashMap<String, Object>() {{ put("mode", "fast"); put("level", 2); }}',
            "timeout": "500L",
            "names": 'new String[]{"alpha", "beta"}',
            "ctx": "appContext",
        },
        False,
    ),  # BFCL keeps Array items' quotes
    (
        "simple_javascript_0",
        {"url": '"https://x.io"', "options": "{method: 'GET'}", "tags": "['news', 'tech']", "limit": "10"},
        True,
    ),
    (
        "simple_javascript_0",
        {
            "url": "https://x.io",
            "options": "{method: 'GET'}",
            "tags": "['news', 'tech']",
            "limit": "10.0",
            "verbose": "false",
        },
        True,
    ),
    (
        "simple_javascript_0",
        {
            "url": "https://x.io",
            "options": "{method: 'GET'}",
            "tags": "['news', 'tech']",
            "limit": "10",
            "verbose": False,
        },
        False,
    ),
    (
        "simple_javascript_0",
        {"url": "https://x.io", "options": "{method: 'GET'}", "tags": "['news', 'tech']", "limit": "10.5"},
        False,
    ),
    ("multiple_0", {"shape": "circle", "size": 2.0}, True),
    ("multiple_0", [{"get_weather": {"city": "New York", "days": 3}}], False),
    (
        "parallel_0",
        [{"get_weather": {"city": "Rome", "days": 5}}, {"get_weather": {"city": "Paris", "days": 2}}],
        True,
    ),
    ("parallel_0", [{"get_weather": {"city": "Paris", "days": 2}}], False),
    ("parallel_0", [{"get_weather": {"city": "Paris", "days": 2}}] * 2, False),
    (
        "parallel_multiple_0",
        [{"geometry.area": {"shape": "circle", "size": 2}}, {"get_weather": {"city": "New York", "days": 3}}],
        True,
    ),
    ("simple_python_1", [{"geometry.area": {"shape": "circle", "size": 2}}] * 2, False),
    ("irrelevance_0", [], True),
    ("irrelevance_0", None, True),
    ("irrelevance_0", [{}], True),
    ("irrelevance_0", [{"geometry.area": {}}], False),
    ("live_irrelevance_0", [{"get_weather": {"city": "x"}}], False),
    ("live_relevance_0", [{"get_weather": {"city": "x"}}], True),
    ("live_relevance_0", [], False),
    ("live_relevance_0", None, False),
]


@pytest.mark.parametrize(("entry_id", "calls", "expected"), CASES)
def test_ast_check_rules(fixture_entries, entry_id, calls, expected):
    e = _by_id(fixture_entries)[entry_id]
    if isinstance(calls, dict):
        calls = [{next(iter(e["ground_truth"][0])): calls}]
    assert ast_check(e["function"], calls, e["ground_truth"], e["category"]) is expected


def test_tuple_from_python_format_counts_as_list(fixture_entries):
    e = _by_id(fixture_entries)["simple_python_2"]
    text = "linalg.solve(matrix=[[1, 2], [3, 4]], labels=['x', 'y'], options={'method': 'LU'}, rows=[{'name': 'apple', 'qty': 2}, {'name': 'pear'}], point=(1, 2))"
    assert ast_check(e["function"], parse_python_calls(text), e["ground_truth"], "simple_python")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_ast_check_never_raises(fixture_entries, data):
    e = data.draw(st.sampled_from(fixture_entries))
    fn = data.draw(st.sampled_from(e["function"]))
    keys = st.sampled_from([*fn["parameters"]["properties"], "zz"])
    if e["category"] in ("simple_java", "simple_javascript"):
        value = (
            st.text(
                alphabet=st.sampled_from(list("new ArayLis<>(){}[],'\"0123456789.-Lfnputrefals:")),
                max_size=30,
            )
            | _json
        )
    else:
        value = _json
    calls = data.draw(
        st.lists(st.fixed_dictionaries({fn["name"]: st.dictionaries(keys, value, max_size=4)}), max_size=3)
    )
    assert ast_check(e["function"], calls, e["ground_truth"], e["category"]) in (True, False)


# ---------------------------------------------------------------- metrics
def test_score_metrics_formulas(fixture_entries):
    wrong = {"simple_java_0", "live_simple_0", "parallel_0"}
    outs = [_no_call_output(e) if e["id"] in wrong else _correct_output(e) for e in fixture_entries]
    outs[[e["id"] for e in fixture_entries].index("parallel_0")] = "<tool_call>\n{bad json\n</tool_call>"
    result = bfcl.score(fixture_entries, outs, prefix="", parser="strict")  # "parsed": False
    metrics, rows = result.metrics, result.examples
    assert [r["id"] for r in rows] == [e["id"] for e in fixture_entries]
    row = _by_id(rows)
    assert {k: row["parallel_0"][k] for k in ("id", "category", "score", "parsed", "n_calls")} == {
        "id": "parallel_0",
        "category": "parallel",
        "score": 0.0,
        "parsed": False,
        "n_calls": 0,
    }
    assert row["simple_java_0"]["parsed"] and row["simple_java_0"]["n_calls"] == 0
    assert row["parallel_multiple_0"]["n_calls"] == 2
    assert metrics["simple_python"] == {"value": 1.0, "stderr": 0.0, "n": 3}
    assert metrics["simple_java"] == {"value": 0.0, "stderr": None, "n": 1}
    simple = (1 + 0 + 1) / 3
    non_live = (simple + 1 + 0 + 1 + 1) / 5  # simple, multiple, parallel, parallel_multiple, irrelevance
    live = 5 / 6  # pooled over the six live examples
    assert metrics["non_live"]["value"] == pytest.approx(non_live) and metrics["non_live"]["n"] == 9
    assert metrics["live"] == {
        "value": pytest.approx(live),
        "stderr": pytest.approx(math.sqrt(live * (1 - live) / 5)),
        "n": 6,
    }
    assert (
        metrics["overall"]["value"] == pytest.approx((non_live + live) / 2) and metrics["overall"]["n"] == 15
    )
    assert metrics["overall"]["stderr"] is None  # a single-example category has no stderr
    only_live = [e for e in fixture_entries if e["category"].startswith("live")]
    m = bfcl.score(only_live, [_correct_output(e) for e in only_live]).metrics
    assert "bfcl/non_live" not in m and m["bfcl/overall"] == m["bfcl/live"]
    with pytest.raises(ValueError, match="BFCL parser 'xml'"):
        bfcl.score(fixture_entries, outs, parser="xml")
    with pytest.raises(ValueError, match="outputs for"):
        bfcl.score(fixture_entries, outs[:-1])


def test_every_metric_is_the_mean_of_its_declared_column(fixture_entries):
    wrong = {"simple_java_0", "live_simple_0", "parallel_0", "multiple_0"}
    outs = [_no_call_output(e) if e["id"] in wrong else _correct_output(e) for e in fixture_entries]
    pairs = list(zip(fixture_entries, outs, strict=True))
    for chosen in (pairs, [(e, o) for e, o in pairs if e["category"] != "simple_javascript"]):
        result = bfcl.score([e for e, _ in chosen], [o for _, o in chosen])
        assert set(result.columns) == set(result.metrics) and result.primary == "bfcl/overall"
        for name, column in result.columns.items():
            assert column_mean(result.examples, column) == pytest.approx(result.metrics[name]["value"]), name
        # the unweighted summaries differ from a pooled accuracy, so the weights matter
        pooled = column_mean(result.examples, "score")
        assert result.metrics["bfcl/overall"]["value"] != pytest.approx(pooled)


# ---------------------------------------------------------------- the real data (bfcl-eval wheel)
def _real_entries():
    try:
        return bfcl.load_bfcl(None)
    except FileNotFoundError as e:
        pytest.skip(f"bfcl-eval package data not installed ({e})")


@pytest.fixture(scope="module")
def real_entries():
    return _real_entries()


def test_real_sample_round_trip_and_mutations(real_entries):
    assert bfcl.available_categories() == list(bfcl.CATEGORIES)
    assert "bfcl_eval" not in sys.modules  # the data was read without importing the package
    sample = bfcl.sample_entries(real_entries, 10, seed=0)
    assert {c: sum(e["category"] == c for e in sample) for c in bfcl.CATEGORIES} == dict.fromkeys(
        bfcl.CATEGORIES, 10
    )
    scorable = [e for e in sample if e["ground_truth"] is None or not bfcl_unpassable(e)]
    result = bfcl.score(scorable, [_correct_output(e) for e in scorable])
    metrics, rows = result.metrics, result.examples
    assert all(m["value"] == 1.0 for m in metrics.values()), [r["id"] for r in rows if r["score"] < 1]
    for e in scorable:
        for kind, calls in mutations(e).items():
            assert not ast_check(
                e["function"],
                parse_tool_calls_strict(tool_call_text(calls)),
                e["ground_truth"],
                e["category"],
            ), (e["id"], kind)
        if e["ground_truth"] is None:
            call = [{_a_function(e): {}}]
            relevance = e["category"] == "live_relevance"
            assert ast_check(e["function"], call, None, e["category"]) is relevance
            assert (
                ast_check(
                    e["function"], parse_tool_calls_strict("<response>no</response>"), None, e["category"]
                )
                is not relevance
            )
            assert ast_check(e["function"], None, None, e["category"]) is not relevance


def test_real_python_format_round_trip(real_entries):
    sample = [
        e
        for e in bfcl.sample_entries(real_entries, 10, seed=1)
        if e["ground_truth"] and not bfcl_unpassable(e)
    ]
    ok = [
        e
        for e in sample
        if all(
            p.isidentifier() and not keyword.iskeyword(p)
            for c in answer_calls(e)
            for n, ps in c.items()
            for p in [*n.split("."), *ps]
        )
    ]
    rows = bfcl.score(ok, [_python_text(answer_calls(e)) for e in ok], parser="python").examples
    assert len(ok) > 80 and all(r["score"] == 1.0 for r in rows), [r["id"] for r in rows if r["score"] < 1]


def test_real_data_defects_are_the_known_ones(real_entries):
    if importlib.metadata.version("bfcl-eval") != PINNED:
        pytest.skip(f"defect list is for bfcl-eval {PINNED}")
    defects = {e["id"] for e in real_entries if e["ground_truth"] and bfcl_unpassable(e)}
    assert defects == {
        "simple_java_36",
        "simple_java_65",
        "live_simple_106-63-0",
        "live_simple_112-68-0",
        "live_multiple_862-181-3",
        "live_multiple_964-207-0",
    }
    everything = [e for e in real_entries if e["ground_truth"] and e["id"] not in defects]
    rows = bfcl.score(everything, [_correct_output(e) for e in everything]).examples
    assert all(r["score"] == 1.0 for r in rows)


# ---------------------------------------------------------------- agreement with bfcl-eval's own checker
def agreement_cases(entries, seed=0, prefix=""):
    """(case for scripts/bfcl_reference_check.py, our verdict) for each variant of each entry."""
    rng, cases = random.Random(seed), []
    for e in entries:
        for kind, calls in variants(e, rng).items():
            entry = {"function": e["function"], "ground_truth": e["ground_truth"]}
            case = json.loads(
                json.dumps(
                    {
                        "case_id": f"{prefix}{e['id']}:{kind}",
                        "category": e["category"],
                        "calls": calls,
                        "entry": entry,
                    }
                )
            )
            if kind == "answer":  # also through the ToolRL text and its parser
                case["calls"] = parse_tool_calls_strict(tool_call_text(calls))
            cases.append((case, ast_check(e["function"], case["calls"], e["ground_truth"], e["category"])))
    return cases


@pytest.mark.slow
def test_agreement_with_bfcl_eval_checker(tmp_path, fixture_entries):
    ref_python = os.environ.get("BFCL_REF_PYTHON")
    if not ref_python:
        pytest.skip(
            "set BFCL_REF_PYTHON to the python of a venv holding bfcl-eval (see scripts/bfcl_reference_check.py)"
        )
    try:  # a seeded sample of the real questions when the wheel's data is there, else the fixtures only
        real = bfcl.sample_entries(bfcl.load_bfcl(None), 25, seed=0)
    except FileNotFoundError:
        real = []
    cases = agreement_cases(real) + agreement_cases(fixture_entries, prefix="fixture:")
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c, _ in cases))
    proc = subprocess.run(
        [ref_python, str(REPO / "scripts" / "bfcl_reference_check.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = {r["case_id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(ref) == len(cases)
    errors = {k: r["error"] for k, r in ref.items() if "error" in r}
    assert not errors, errors
    disagree = [
        (c["case_id"], ours, ref[c["case_id"]]["valid"])
        for c, ours in cases
        if ours != ref[c["case_id"]]["valid"]
    ]
    print(f"bfcl agreement: {len(cases) - len(disagree)}/{len(cases)} cases agree")
    assert not disagree, disagree[:20]
