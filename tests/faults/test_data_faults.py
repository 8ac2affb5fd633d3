"""Data faults: bad dataset rows refused at load naming source, row and field, and scorer bugs
that once went unnoticed (each test fails with the planted one-line bug)."""

from __future__ import annotations

import json
import re

import pytest

from rvpo_repro.evals.bfcl_checker import ast_check
from rvpo_repro.tasks.rubric import load_rar
from rvpo_repro.tasks.toolrl import correctness_reward

pytestmark = pytest.mark.faults

GOOD_ITEM = {"title": "a", "description": "Essential Criteria: Names the diagnosis.", "weight": 5}


def _rar(tmp_path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    item = pa.struct([("title", pa.string()), ("description", pa.string()), ("weight", pa.int64())])
    schema = pa.schema([("question", pa.string()), ("rubric", pa.list_(item))])
    path = tmp_path / "rar.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


@pytest.mark.parametrize(
    ("bad_row", "field", "expected"),
    [
        (
            {"question": "Q?", "rubric": [GOOD_ITEM, {**GOOD_ITEM, "weight": None}]},
            "rubric[1].weight",
            "finite non-zero number",
        ),
        ({"question": None, "rubric": [GOOD_ITEM]}, "question", "non-empty string"),
        ({"question": "  ", "rubric": [GOOD_ITEM]}, "question", "non-empty string"),
        ({"question": "Q?", "rubric": []}, "rubric", "non-empty list of items"),
        (
            {"question": "Q?", "rubric": [{**GOOD_ITEM, "description": None}]},
            "rubric[0].description",
            "non-empty string",
        ),
        (
            {"question": "Q?", "rubric": [{**GOOD_ITEM, "weight": 0}]},
            "rubric[0].weight",
            "finite non-zero number",
        ),
    ],
    ids=["weight-null", "question-null", "question-blank", "rubric-empty", "description-null", "weight-zero"],
)
def test_rar_row_with_a_bad_field_is_refused_at_load(tmp_path, bad_row, field, expected):
    path = _rar(tmp_path, [{"question": "Fine?", "rubric": [GOOD_ITEM]}, bad_row])
    message = f"{path} (train) row 1: field '{field}': expected a {expected}"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_rar(str(path), "train", None)
    assert len(load_rar(str(path), "train", 1)) == 1  # the good row alone loads


def _toolrl(calls: list[dict]) -> str:
    body = "\n".join(json.dumps(c) for c in calls)
    return f"<think>t</think>\n<tool_call>\n{body}\n</tool_call>"


def test_toolrl_best_candidate_needs_a_strictly_positive_match():
    """A zero-score candidate must not be taken: it would be unavailable for the call it matches."""
    a_x = {"name": "a", "parameters": {"x": 1}}
    a_y = {"name": "a", "parameters": {"y": 2}}
    # S = J(names) 1/2 + (J(keys) 1 + 1 equal value) for a(y=2) = 2.5 of S_max 5: R = 6 * 0.5 - 3 = 0
    assert correctness_reward(_toolrl([a_y]), _toolrl([a_x, a_y])) == pytest.approx(0.0)


F_DOC = [
    {
        "name": "f",
        "description": "f",
        "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    }
]


@pytest.mark.parametrize("category", ["parallel", "live_parallel", "parallel_multiple"])
def test_bfcl_parallel_matcher_uses_each_call_once(category):
    gt = [{"f": {"x": [1]}}, {"f": {"x": [1]}}]
    assert ast_check(F_DOC, [{"f": {"x": 1}}, {"f": {"x": 1}}], gt, category)
    assert not ast_check(F_DOC, [{"f": {"x": 1}}, {"f": {"x": 5}}], gt, category)
    assert not ast_check(F_DOC, [{"f": {"x": 5}}, {"f": {"x": 1}}], gt, category)
