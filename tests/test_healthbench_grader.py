"""The HealthBench grader as simple-evals sends it: template read without executing the file,
messages equal to what upstream's grade_sample builds, upstream's verdict parser, grader record."""

from __future__ import annotations

import json

import pytest

from rvpo_repro.evals import healthbench as hb
from rvpo_repro.evals.healthbench_grader import (
    GRADER_SYSTEM,
    NOT_COMPARABLE,
    UPSTREAM_COMMIT,
    UPSTREAM_SHA256,
    grader_info,
    grader_messages,
    load_grader_template,
    parse_upstream_verdict,
    read_grader_template,
)

# A small file in the upstream file's layout (module code around a GRADER_TEMPLATE literal); its
# words are made up here. Executing it would exit: reading the template must not run it.
TEMPLATE = """Judge the exchange below.

<<conversation>>

Item: <<rubric_item>>

Reply with ```json {"explanation": "...", "criteria_met": true} ```."""
UPSTREAM_LIKE = f'''import json
import re

raise SystemExit("executed")

GRADER_TEMPLATE = """
{TEMPLATE}""".strip()


class RubricItem:
    pass
'''


@pytest.fixture
def upstream_file(tmp_path):
    path = tmp_path / "healthbench_eval.py"
    path.write_text(UPSTREAM_LIKE, encoding="utf-8")
    return path


def _simple_evals_messages(prompt, response_text, item, template, system_message):
    """Re-derived from simple-evals' grade_sample and ChatCompletionSampler (commit ee3b031):
    convo + response turn, "role: content" joined by blank lines, two str.replace calls, the
    rubric item as str(RubricItem) = f"[{points}] {criterion}", the sampler's system message first."""
    convo_with_response = prompt + [dict(content=response_text, role="assistant")]
    convo_str = "\n\n".join([f"{m['role']}: {m['content']}" for m in convo_with_response])
    item_str = f"[{item['points']}] {item['criterion']}"
    grader_prompt = template.replace("<<conversation>>", convo_str).replace("<<rubric_item>>", item_str)
    return [dict(role="system", content=system_message), dict(role="user", content=grader_prompt)]


def test_template_is_read_from_the_syntax_tree_without_running_the_file(upstream_file):
    with pytest.raises(SystemExit):  # the file really would exit if run
        exec(compile(upstream_file.read_text(), str(upstream_file), "exec"), {})
    assert read_grader_template(upstream_file) == TEMPLATE  # the literal, .strip() applied
    t = load_grader_template(str(upstream_file))
    assert t.text == TEMPLATE and t.source == str(upstream_file) and not t.upstream


def test_template_file_errors(tmp_path):
    bad = tmp_path / "a.py"
    bad.write_text("GRADER_TEMPLATE = 'no placeholders'\n")
    with pytest.raises(ValueError, match="no <<conversation>> placeholder"):
        read_grader_template(bad)
    bad.write_text("X = 1\n")
    with pytest.raises(ValueError, match="no module-level GRADER_TEMPLATE"):
        read_grader_template(bad)
    bad.write_text("GRADER_TEMPLATE = f'{1}'\n")
    with pytest.raises(ValueError, match="not a string literal"):
        read_grader_template(bad)
    with pytest.raises(FileNotFoundError, match="not 'upstream', 'builtin' or a file"):
        load_grader_template(str(tmp_path / "missing.py"))


def test_upstream_source_checks_the_pinned_digest(tmp_path, upstream_file):
    # a cached copy whose digest is not the pinned one is refused (no network needed)
    dest = tmp_path / "healthbench" / f"healthbench_eval-{UPSTREAM_COMMIT[:12]}.py"
    dest.parent.mkdir()
    dest.write_bytes(upstream_file.read_bytes())
    with pytest.raises(ValueError, match=UPSTREAM_SHA256):
        load_grader_template("upstream", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("prompt", "response", "item"),
    [
        (
            [{"role": "user", "content": "I have a headache."}],
            "Rest.",
            {"criterion": "Advises rest.", "points": 5},
        ),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Dose?\\n\\nFor a child."},
                {"role": "assistant", "content": "How old?"},
                {"role": "user", "content": "Six."},
            ],
            "Ask a doctor.\n\nAlso: <<rubric_item>> stays upstream's quirk.",
            {"criterion": "Gives a dose without weight.", "points": -2.5, "tags": ["axis:accuracy"]},
        ),
        ([{"role": "user", "content": "é ✓ {json}"}], "", {"criterion": "Says nothing.", "points": 0}),
    ],
)
def test_grader_messages_equal_what_simple_evals_sends(upstream_file, prompt, response, item):
    template = load_grader_template(str(upstream_file))
    got = grader_messages(prompt, response, item, template)
    assert got == _simple_evals_messages(prompt, response, item, TEMPLATE, "You are a helpful assistant.")
    assert got[0] == {"role": "system", "content": GRADER_SYSTEM}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"explanation": "x", "criteria_met": true}', True),
        ('```json\n{"explanation": "x", "criteria_met": false}\n```', False),
        ('  ```json {"criteria_met": true}```  ', True),
    ],
)
def test_upstream_parser_accepts(text, expected):
    assert parse_upstream_verdict(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        'Sure! {"criteria_met": true}',  # prose around the object: upstream's json.loads fails
        '{"criteria_met": "true"}',
        '{"criteria_met": 1}',
        "[true]",
        "",
        '```\n{"criteria_met": true}\n```',  # a fence without "json" is not stripped at the start
    ],
)
def test_upstream_parser_rejects(text):
    with pytest.raises(ValueError):
        parse_upstream_verdict(text)


def test_grader_info_flags_other_graders_and_the_training_judge(upstream_file):
    up = load_grader_template(str(upstream_file))
    simple = {
        "backend": "openai",
        "model": "gpt-4.1-2025-04-14",
        "temperature": 0.5,
        "max_tokens": 2048,
        "system_message": GRADER_SYSTEM,
    }
    info = grader_info(simple, up, training_judge={"backend": "openai", "model": "Qwen/Qwen2.5-7B-Instruct"})
    assert not info["comparable"] and info["notes"] == [NOT_COMPARABLE]  # the file is not the pinned one
    object.__setattr__(up, "upstream", True)
    info = grader_info(simple, up)
    assert info["comparable"] and info["notes"] == [] and not info["is_training_judge"]
    local = {**simple, "model": "Qwen/Qwen2.5-7B-Instruct"}
    info = grader_info(local, up, training_judge={"backend": "openai", "model": "Qwen/Qwen2.5-7B-Instruct"})
    assert not info["comparable"] and info["is_training_judge"] and len(info["notes"]) == 2
    assert not grader_info({**simple, "temperature": 0.0}, up)["comparable"]


def test_evaluate_adds_tag_metrics_and_counts_unparsed_replies():
    from rvpo_repro.judges.scripted import ScriptedJudge

    rubric = lambda c, p, tags: {"criterion": c, "points": p, "tags": tags}  # noqa: E731
    ex = {
        "prompt": [{"role": "user", "content": "Q"}],
        "prompt_id": "p1",
        "example_tags": ["theme:hedging", "physician_agreed_category:enough-context"],
        "rubrics": [
            rubric("A", 5, ["axis:accuracy", "level:example"]),
            rubric("B", 3, ["axis:completeness", "level:cluster", "cluster:hedging_x"]),
        ],
    }
    bad = {**ex, "prompt_id": "p2", "prompt": [{"role": "user", "content": "broken"}]}

    def reply(req):
        if "broken" in req.messages[-1][1]:
            return "I think it is met."  # never parses
        return json.dumps({"explanation": "", "criteria_met": "[5] A" in req.messages[-1][1]})

    metrics, rows = hb.evaluate(
        [ex, bad], ["r1", "r2"], ScriptedJudge(reply), template=TEMPLATE, system=GRADER_SYSTEM
    )
    assert metrics["healthbench/score"]["value"] == pytest.approx(5 / 8)
    assert (
        metrics["healthbench/level:example"]["value"] == 1.0
        and metrics["healthbench/level:cluster"]["value"] == 0.0
    )
    assert metrics["healthbench/cluster:hedging_x"]["value"] == 0.0
    assert metrics["healthbench/physician_agreed_category:enough-context"]["value"] == pytest.approx(5 / 8)
    assert metrics["healthbench/theme:hedging"]["n_missing"] == 1
    assert metrics["healthbench/judge_missing"] == {"value": 2.0, "stderr": None, "n": 4}
    assert metrics["healthbench/examples_unscored"] == {"value": 1.0, "stderr": None, "n": 2}
    assert rows[1]["score"] is None and rows[1]["n_missing"] == 2
