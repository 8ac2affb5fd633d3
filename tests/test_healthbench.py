"""HealthBench: simple-evals' scoring formula, clipped seeded aggregation, missing verdicts,
loader errors, grader prompt rendering, and evaluation through a fake judge."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np
import pytest

from rvpo_repro.evals import healthbench as hb
from rvpo_repro.evals import healthbench_grader
from rvpo_repro.evals.base import column_mean
from rvpo_repro.evals.synthetic_benchmarks import (
    HEALTHBENCH_RECORD0,
    write_healthbench_fixture,
    write_rar_fixture,
)
from rvpo_repro.judges.base import JudgeRequest, JudgeResult

RUBRICS = HEALTHBENCH_RECORD0["rubrics"]  # points 7, 5, 3 (cluster), -6, -2; positive total 15
CLUSTER = "cluster:context_seeking_enough-context_helpful_safe"


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    "met, expected",
    [
        ([True, False, True, True, False], 4 / 15),  # (7 + 3 - 6) / 15
        ([True, True, True, False, False], 15 / 15),
        ([True, True, True, True, True], 7 / 15),  # (15 - 8) / 15
        ([False] * 5, 0.0),
        ([False, False, False, True, True], -8 / 15),  # unclipped per example
    ],
)
def test_score_example_hand_computed(met, expected):
    assert hb.score_example(RUBRICS, met) == pytest.approx(expected)


def test_tag_scores_hand_computed():
    scores = hb.tag_scores(RUBRICS, [True, False, True, True, False])
    assert scores == pytest.approx(
        {
            "axis:accuracy": 1 / 7,  # items 7 (met) and -6 (met): (7 - 6) / 7
            "axis:completeness": 0.0,
            "axis:context_awareness": 1.0,
            "level:example": 1 / 12,  # 7, 5, -6, -2: (7 - 6) / 12
            "level:cluster": 1.0,
            CLUSTER: 1.0,
        }
        | {"axis:communication_quality": None}
    )
    assert scores["axis:communication_quality"] is None  # only a negative item: no positive total


def test_zero_positive_total_is_none():
    rubrics = [{"criterion": "Bad thing.", "points": -3, "tags": ["level:example", "axis:accuracy"]}]
    assert hb.score_example(rubrics, [True]) is None
    assert hb.score_example(rubrics, [False]) is None


def test_float_points():
    rubrics = [
        {"criterion": "a", "points": 2.5, "tags": ["axis:accuracy", "level:example"]},
        {"criterion": "b", "points": 1.5, "tags": ["axis:accuracy", "level:example"]},
        {"criterion": "c", "points": -0.5, "tags": ["axis:accuracy", "level:example"]},
    ]
    assert hb.score_example(rubrics, [True, False, True]) == pytest.approx(2.0 / 4.0)


def test_missing_verdict_makes_only_affected_scores_missing():
    met = [True, None, True, True, False]  # the completeness item (5 points) has no verdict
    assert hb.score_example(RUBRICS, met) is None  # never scored as if the item were False (4/15)
    scores = hb.tag_scores(RUBRICS, met)
    assert scores["axis:completeness"] is None and scores["level:example"] is None
    assert scores["axis:accuracy"] == pytest.approx(1 / 7)
    assert scores["axis:context_awareness"] == 1.0 and scores[CLUSTER] == 1.0


def test_verdicts_must_be_bools_and_match_length():
    with pytest.raises(TypeError, match="verdict 1"):
        hb.score_example(RUBRICS, [True, "false", True, True, False])
    with pytest.raises(ValueError, match="5 rubric items but 4 verdicts"):
        hb.tag_scores(RUBRICS, [True] * 4)


# --------------------------------------------------------------------------- aggregation


def test_aggregate_clips_mean_and_bootstrap_means():
    high = hb.aggregate([1.5, 1.2, 1.1])
    assert high["score"] == 1.0 and high["bootstrap_std"] == 0.0  # every resampled mean > 1
    assert hb.aggregate([-0.5, -0.1])["score"] == 0.0
    assert hb.aggregate([-0.2, 0.5, 0.9])["score"] == pytest.approx(0.4)  # clip the mean, not the items


def test_aggregate_excludes_and_counts_missing():
    agg = hb.aggregate([0.5, None, 0.7, None])
    assert agg["n_samples"] == 2 and agg["n_missing"] == 2
    assert agg["score"] == pytest.approx(0.6)
    empty = hb.aggregate([None, None])
    assert empty == {"score": None, "n_samples": 0, "bootstrap_std": None, "n_missing": 2}


def test_bootstrap_is_seeded():
    values = list(np.random.default_rng(1).uniform(0, 1, 50))
    a, b = hb.aggregate(values, seed=3), hb.aggregate(values, seed=3)
    assert a["bootstrap_std"] == b["bootstrap_std"]
    assert hb.aggregate(values, seed=4)["bootstrap_std"] != a["bootstrap_std"]
    assert hb.aggregate(values, n_bootstrap=1)["bootstrap_std"] == 0.0


def test_bootstrap_std_close_to_analytic_stderr():
    values = np.random.default_rng(7).uniform(0.2, 0.8, 2000)  # clipping never binds
    analytic = values.std() / np.sqrt(values.size)
    assert hb.aggregate(list(values), seed=0)["bootstrap_std"] == pytest.approx(analytic, rel=0.1)


# --------------------------------------------------------------------------- loader


def test_fixture_round_trip(tmp_path):
    path = write_healthbench_fixture(tmp_path / "hb.jsonl", n=10, seed=1)
    records = hb.load_healthbench(path)
    assert len(records) == 10 and records[0] == HEALTHBENCH_RECORD0
    assert {hb.theme(r) for r in records} == set(hb.THEMES)  # themes cycle
    points = [i["points"] for r in records for i in r["rubrics"]]
    assert min(points) < 0 < max(points)
    tags = {t for r in records for i in r["rubrics"] for t in i["tags"]}
    assert {"level:cluster", "level:example"} <= tags and any(t.startswith("cluster:") for t in tags)
    assert {type(r["ideal_completions_data"]) for r in records} == {type(None), dict}
    assert hb.load_healthbench(path, limit=3) == records[:3]
    assert write_healthbench_fixture(tmp_path / "b.jsonl", n=10, seed=1).read_text() == path.read_text()


def _mutate(rec, field, value):
    rec = copy.deepcopy(rec)
    target, *keys = field
    node = rec
    for k in [target, *keys][:-1]:
        node = node[k]
    last = [target, *keys][-1]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return rec


@pytest.mark.parametrize(
    "path, value, field, message",
    [
        (("rubrics", 1, "points"), "five", "rubrics[1].points", "finite number"),
        (("rubrics", 0, "criterion"), "", "rubrics[0].criterion", "non-empty string"),
        (("rubrics", 2, "tags"), ["level:cluster", "axis:accuracy"], "rubrics[2].tags", "cluster:<id>"),
        (("rubrics", 3, "tags"), ["level:example"], "rubrics[3].tags", "axis:"),
        (("rubrics", 3, "tags"), ["axis:accuracy"], "rubrics[3].tags", "level:"),
        (("canary",), KeyError, "canary", "missing"),
        (("prompt", 0, "role"), "assistant", "prompt[0].role", "last turn must be 'user'"),
        (("prompt", 0, "content"), None, "prompt[0].content", "string"),
        (("example_tags",), ["theme:hedging", "theme:communication"], "example_tags", "exactly one theme"),
        (("ideal_completions_data",), "text", "ideal_completions_data", "null or an object"),
        (("prompt_id",), 7, "prompt_id", "non-empty string"),
    ],
)
def test_loader_errors_name_file_line_field(tmp_path, path, value, field, message):
    good = write_healthbench_fixture(tmp_path / "hb.jsonl", n=3).read_text().splitlines()
    good[1] = json.dumps(_mutate(json.loads(good[1]), path, value))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(good) + "\n")
    with pytest.raises(hb.HealthBenchFormatError) as err:
        hb.load_healthbench(bad)
    assert f"{bad}:2: field `{field}`" in str(err.value) and message in str(err.value)


def test_loader_errors_bad_json_and_duplicate_id(tmp_path):
    lines = write_healthbench_fixture(tmp_path / "hb.jsonl", n=3).read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "", lines[1][:-5]]) + "\n")
    with pytest.raises(hb.HealthBenchFormatError, match=r"bad.jsonl:3: not valid JSON"):
        hb.load_healthbench(bad)
    bad.write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n")
    with pytest.raises(hb.HealthBenchFormatError, match=r"bad.jsonl:3: field `prompt_id`: .* line 1"):
        hb.load_healthbench(bad)


def test_loader_sources(tmp_path, monkeypatch):
    assert hb.URLS["main"].endswith("/2025-05-07-06-14-12_oss_eval.jsonl")
    assert hb.URLS["hard"].endswith("/hard_2025-05-08-21-00-10.jsonl")
    assert hb.URLS["consensus"].endswith("/consensus_2025-05-09-20-00-46.jsonl")

    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match=r"hard_2025-05-08-21-00-10.jsonl.*offline.*local path"):
        hb.load_healthbench("hard")
    write_healthbench_fixture(tmp_path / hb.FILES["hard"], n=2)  # a cached copy needs no network
    assert len(hb.load_healthbench("hard", cache_dir=tmp_path)) == 2
    with pytest.raises(FileNotFoundError, match="no such file"):
        hb.load_healthbench(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- grader prompt


def test_rendering_matches_simple_evals_form():
    convo = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert healthbench_grader.render_conversation(convo) == "user: Hi\n\nassistant: Hello"
    assert (
        healthbench_grader.render_rubric_item(RUBRICS[3])
        == "[-6] Recommends an opioid painkiller for a mild headache."
    )
    assert healthbench_grader.render_rubric_item({"criterion": "x", "points": 2.5, "tags": []}) == "[2.5] x"
    prompt = hb.grader_prompt("user: hi", "[1] y")
    assert "user: hi" in prompt and "[1] y" in prompt and "<<" not in prompt
    for phrase in [
        "negative",
        "undesirable",
        "every part",
        "such as",
        '"criteria_met"',
        '"explanation"',
        "only a JSON",
    ]:
        assert phrase in prompt


def test_judge_requests_one_per_item_with_reply_appended():
    reqs = hb.judge_requests(HEALTHBENCH_RECORD0, "Take ibuprofen.")
    assert len(reqs) == len(RUBRICS) and all(isinstance(r, JudgeRequest) for r in reqs)
    for req, item in zip(reqs, RUBRICS, strict=True):
        (msg,) = req.to_messages()  # no system message unless the grader config names one
        assert msg["role"] == "user"
        convo = "user: I've had a mild headache for two days. What can I take?\n\nassistant: Take ibuprofen."
        assert convo in msg["content"] and f"[{item['points']}] {item['criterion']}" in msg["content"]


# --------------------------------------------------------------------------- evaluation


@dataclass
class FakeJudge:
    """Returns the scripted verdicts in request order, passed through the real parser as judge text."""

    verdicts: list

    def grade(self, requests, parse):
        assert len(requests) == len(self.verdicts)
        out = []
        for v in self.verdicts:
            raw = (
                "I cannot grade this."
                if v is None
                else f'```json\n{{"explanation": "e", "criteria_met": {json.dumps(v)}}}\n```'
            )
            try:
                out.append(JudgeResult(value=parse(raw), raw=raw, error=None, attempts=1, cached=False))
            except ValueError as err:
                out.append(JudgeResult(value=None, raw=raw, error=str(err), attempts=3, cached=False))
        return out


def _three_examples():
    r1 = copy.deepcopy(HEALTHBENCH_RECORD0) | {"prompt_id": "p1", "example_tags": ["theme:hedging"]}
    r2 = copy.deepcopy(HEALTHBENCH_RECORD0) | {"prompt_id": "p2", "example_tags": ["theme:hedging"]}
    return [HEALTHBENCH_RECORD0, r1, r2]


def test_evaluate_hand_computed():
    verdicts = (
        [True, False, True, True, False]
        + [True, True, True, False, False]
        + [False, False, False, True, True]
    )
    result = hb.evaluate(_three_examples(), ["a", "b", "c"], FakeJudge(verdicts))
    metrics, rows = result.metrics, result.examples
    # example scores 4/15, 1, -8/15
    assert metrics["healthbench/score"]["value"] == pytest.approx(11 / 45)
    assert metrics["healthbench/score"]["n"] == 3 and metrics["healthbench/score"]["stderr"] > 0
    assert metrics["healthbench/theme:context_seeking"]["value"] == pytest.approx(4 / 15)
    assert metrics["healthbench/theme:hedging"]["value"] == pytest.approx(7 / 30)  # mean(1, -8/15)
    assert metrics["healthbench/axis:accuracy"]["value"] == pytest.approx(2 / 21)  # mean(1/7, 1, -6/7)
    assert metrics["healthbench/axis:completeness"]["value"] == pytest.approx(1 / 3)
    assert "healthbench/axis:communication_quality" not in metrics  # no positive item anywhere
    assert metrics["healthbench/judge_missing"]["value"] == 0.0
    assert [r["id"] for r in rows] == ["fixture-0000", "p1", "p2"]
    assert rows[2]["score"] == pytest.approx(-8 / 15) and rows[2]["axis:accuracy"] == pytest.approx(-6 / 7)
    assert rows[0]["n_items"] == 5 and rows[0]["n_missing"] == 0 and rows[0]["theme"] == "context_seeking"


def test_evaluate_missing_verdict():
    verdicts = [True, False, True, True, False] + [True, None, True, False, False] + [False] * 5
    result = hb.evaluate(_three_examples(), ["a", "b", "c"], FakeJudge(verdicts))
    metrics, rows = result.metrics, result.examples
    assert rows[1]["score"] is None and rows[1]["n_missing"] == 1 and rows[1]["criteria_met"][1] is None
    assert rows[1]["axis:accuracy"] == pytest.approx(1.0)  # the missing item is a completeness item
    score = metrics["healthbench/score"]
    assert score["n"] == 2 and score["n_missing"] == 1 and score["value"] == pytest.approx(2 / 15)
    assert metrics["healthbench/judge_missing"] == {"value": 1.0, "stderr": None, "n": 15}


def test_evaluate_with_scripted_judge_backend():
    """Through the real Judge loop (dedup, order, parse): met iff the item's points are 7 or -6."""
    from rvpo_repro.judges.scripted import ScriptedJudge

    def reply(request):
        item = request.to_messages()[0]["content"].split("# Rubric item\n", 1)[1].split("\n", 1)[0]
        met = item.startswith(("[7] ", "[-6] "))
        return json.dumps({"explanation": "scripted", "criteria_met": met})

    result = hb.evaluate(_three_examples(), ["a", "a", "b"], ScriptedJudge(reply))
    metrics, rows = result.metrics, result.examples
    assert [r["score"] for r in rows] == pytest.approx([1 / 15] * 3)  # (7 - 6) / 15
    assert [r["criteria_met"] for r in rows] == [[True, False, False, True, False]] * 3
    assert metrics["healthbench/axis:accuracy"]["value"] == pytest.approx(1 / 7)


def test_evaluate_fixture_file(tmp_path):
    examples = hb.load_healthbench(write_healthbench_fixture(tmp_path / "hb.jsonl", n=14, seed=2))
    n_items = sum(len(e["rubrics"]) for e in examples)
    verdicts = [i % 3 != 0 for i in range(n_items)]
    result = hb.evaluate(examples, ["reply"] * len(examples), FakeJudge(verdicts), prefix="")
    metrics, rows = result.metrics, result.examples
    assert len(rows) == 14 and {f"theme:{t}" for t in hb.THEMES} <= metrics.keys()
    assert all(0.0 <= m["value"] <= 1.0 for k, m in metrics.items() if k != "judge_missing")
    with pytest.raises(ValueError, match="14 examples but 1 replies"):
        hb.evaluate(examples, ["x"], FakeJudge([]))


def test_every_metric_is_the_mean_of_its_declared_column(tmp_path):
    examples = hb.load_healthbench(write_healthbench_fixture(tmp_path / "hb.jsonl", n=30, seed=3))
    n_items = sum(len(e["rubrics"]) for e in examples)
    verdicts = [None if i == 7 else i % 3 != 1 for i in range(n_items)]  # one missing verdict
    result = hb.evaluate(examples, ["reply"] * len(examples), FakeJudge(verdicts))
    assert result.primary == "healthbench/score" and result.columns["healthbench/score"] == "score"
    counts = {"healthbench/judge_missing", "healthbench/examples_unscored"}
    assert set(result.columns) == set(result.metrics) - counts
    assert any(n.startswith("healthbench/theme:") for n in result.columns)
    assert (
        0.0
        < column_mean(result.examples, "score")
        == pytest.approx(result.metrics["healthbench/score"]["value"])
    )
    for name, column in result.columns.items():
        mean = column_mean(result.examples, column)  # HealthBench clips the mean to [0, 1]
        assert np.clip(mean, 0.0, 1.0) == pytest.approx(result.metrics[name]["value"]), name
        assert sum(r.get(column) is not None for r in result.examples) == result.metrics[name]["n"], name


# --------------------------------------------------------------------------- RaR fixture schema
# (its task lives elsewhere; the fixture writer is in rvpo_repro.evals.synthetic_benchmarks with these two)


def test_rar_fixture_schema(tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(write_rar_fixture(tmp_path / "rar.parquet", n=5, seed=0))
    assert table.column_names == [
        "question", "reference_answer", "question_source", "rubric", "rubric_list", "rubric_count",
    ]  # fmt: skip
    assert [f.name for f in table.schema.field("rubric").type.value_type] == [
        "title",
        "description",
        "weight",
    ]
    for rec in table.to_pylist():
        assert (
            rec["rubric_count"] == len(rec["rubric"]) == len(rec["rubric_list"])
            and 7 <= rec["rubric_count"] <= 20
        )
        for item in rec["rubric"]:
            category = item["description"].split(" Criteria:")[0]
            assert (
                item["weight"]
                in {"Essential": {5}, "Important": {3, 4}, "Optional": {1, 2}, "Pitfall": {-1, -2}}[category]
            )
        pitfalls = [i["description"] for i in rec["rubric"] if i["weight"] < 0]
        assert any("Does not" in p for p in pitfalls) and any("Recommends" in p for p in pitfalls)
