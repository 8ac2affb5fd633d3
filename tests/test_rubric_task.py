"""Rubric tasks: one judged channel per item, pitfall conventions, missing verdicts, evaluation."""

from __future__ import annotations

import json

import pytest

from rvpo_repro.evals.base import column_mean
from rvpo_repro.judges.scripted import ScriptedJudge
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.rubric import PitfallConvention, RubricReward, RubricTaskConfig, select_items

RUBRIC = [
    {"title": "a", "description": "Essential Criteria: Names the diagnosis.", "weight": 5},
    {"title": "b", "description": "Pitfall Criteria: Recommends stopping treatment.", "weight": -2},
    {"title": "c", "description": "Optional Criteria: Mentions follow-up.", "weight": 1},
]


def _judge(verdicts: dict[str, bool | None]):
    """Met iff the criterion text is mapped to True; None -> a malformed reply (missing)."""
    calls = []

    def reply(request):
        calls.append(request)
        criterion = request.messages[-1][1].split("Criterion:\n")[1].split("\n")[0]
        met = verdicts[criterion]
        return "not json" if met is None else json.dumps({"explanation": "x", "criteria_met": met})

    return ScriptedJudge(reply), calls


def _score(reward, completions=("reply one", "reply two"), rubrics=None):
    rubrics = rubrics or [RUBRIC, RUBRIC[:1]]
    prompts = [[{"role": "user", "content": "What is it?"}]] * len(completions)
    completions = [[{"role": "assistant", "content": c}] for c in completions]
    return reward(prompts, completions, rubric_json=[json.dumps(r) for r in rubrics])


@pytest.mark.parametrize(
    ("convention", "pitfall_value"),
    [("met_is_failure", 0.0), ("met_is_success", 1.0)],
    ids=["failure", "success"],
)
def test_channels_per_item_with_both_pitfall_readings(convention, pitfall_value):
    verdicts = {item["description"]: True for item in RUBRIC}
    judge, calls = _judge(verdicts)
    rows = _score(RubricReward(judge, max_channels=4, convention=PitfallConvention(convention)))
    assert rows[0] == [1.0, pitfall_value, 1.0, None]  # 3 items, channel 4 absent
    assert rows[1] == [1.0, None, None, None]  # a prompt with one item
    assert len(calls) == 4  # every (rollout, item) pair of the batch, in one grade call


def test_missing_verdict_is_missing_not_zero():
    verdicts = {
        RUBRIC[0]["description"]: None,
        RUBRIC[1]["description"]: False,
        RUBRIC[2]["description"]: False,
    }
    judge, _ = _judge(verdicts)
    rows = _score(RubricReward(judge, max_channels=3, convention=PitfallConvention.met_is_failure))
    assert rows[0] == [None, 1.0, 0.0]


def test_items_beyond_max_channels_are_dropped():
    judge, calls = _judge({item["description"]: True for item in RUBRIC})
    rows = _score(
        RubricReward(judge, max_channels=2, convention=PitfallConvention.met_is_failure), ["r"], [RUBRIC]
    )
    assert rows == [[1.0, 0.0]] and len(calls) == 2


def test_truncation_keeps_the_items_of_largest_weight_in_their_order():
    rubric = [{"description": f"d{j}", "weight": w} for j, w in enumerate([1, 5, -2, 3, 5, -1, 2])]
    kept = select_items(rubric, 4)
    assert [it["description"] for it in kept] == ["d1", "d2", "d3", "d4"]  # |w| 5, 5, 3, 2 (tie: order)
    assert select_items(rubric, 3) == [rubric[1], rubric[3], rubric[4]]
    assert select_items(rubric, 7) == rubric and select_items(rubric[:2], 5) == rubric[:2]


@pytest.mark.parametrize("convention", list(PitfallConvention))
def test_item_weights_are_absolute_per_rollout_and_zero_for_absent_channels(convention):
    reward = RubricReward(_judge({})[0], max_channels=4, convention=convention)
    long = [
        *RUBRIC,
        {"title": "d", "description": "Important Criteria: X.", "weight": 4},
        {"title": "e", "description": "Optional Criteria: Y.", "weight": 2},
    ]
    rows = reward.item_weights([{"rubric_json": json.dumps(RUBRIC)}, {"rubric_json": json.dumps(long)}])
    assert rows == [[5.0, 2.0, 1.0, 0.0], [5.0, 2.0, 4.0, 2.0]]  # long: the optional weight-1 item is cut


def test_build_reports_truncated_prompts(tmp_path, caplog):
    from rvpo_repro.evals.synthetic_benchmarks import write_rar_fixture

    path = write_rar_fixture(tmp_path / "rar.parquet", n=6, seed=0)
    cfg = RubricTaskConfig(source=str(path), max_channels=8, evals=[])
    task = get_task(cfg, judge=_judge({})[0], cache_dir=str(tmp_path))
    import pandas as pd

    sizes = [len(r) for r in pd.read_parquet(path)["rubric"]]
    with caplog.at_level("WARNING"):
        data = task.build(tokenizer=None, seed=0)
    want = {
        "max_channels": 8,
        "prompts_truncated": sum(s > 8 for s in sizes),
        "items_dropped": sum(max(0, s - 8) for s in sizes),
    }
    assert data.extra["rubric_truncation"] == want and want["prompts_truncated"] > 0
    assert f"{want['prompts_truncated']} of 6 prompts have more than 8 rubric items" in caplog.text
    assert max(len(json.loads(r)) for r in data.train_dataset["rubric_json"]) == 8


def test_task_needs_a_judge(tmp_path):
    task = get_task(RubricTaskConfig(source="fixture"), judge=None, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="needs an LLM judge"):
        task.build(tokenizer=None, seed=0)


def test_build_and_evaluate_on_fixtures(tmp_path):
    cfg = RubricTaskConfig(
        source="fixture",
        evals=["healthbench", "gpqa"],
        healthbench_source="fixture",
        gpqa_source="fixture",
        grader_template="builtin",
    )
    task = get_task(cfg, judge=ScriptedJudge(), cache_dir=str(tmp_path))
    data = task.build(tokenizer=None, seed=0)
    assert len(data.channels) == 17 and all(c.binary for c in data.channels)
    assert {"prompt", "rubric_json", "id"} <= set(data.train_dataset.column_names)
    benches = data.eval_dataset["benchmark"]
    assert set(benches) == {"healthbench", "gpqa"}
    gens = [["Answer: A"] for _ in benches]
    result = task.evaluate(data.eval_dataset, gens, tokenizer=None)
    assert "healthbench/score" in result.metrics and "gpqa/accuracy" in result.metrics
    grader = result.metrics["healthbench/score"]["grader"]  # no eval judge: the training judge, flagged
    assert grader["template"] == "builtin" and not grader["comparable"] and grader["is_training_judge"]
    assert "grader differs from simple-evals: not comparable to the paper's numbers" in grader["notes"]
    # a separate evaluation judge grades instead of the training judge, with its own system message
    seen = []
    task.eval_judge = ScriptedJudge(lambda r: seen.append(r) or '{"explanation": "", "criteria_met": true}')
    task.eval_judge.system_message = "You are a helpful assistant."
    task.evaluate(data.eval_dataset, gens, tokenizer=None)
    assert seen and seen[0].messages[0] == ("system", "You are a helpful assistant.")
    seen.clear()  # a judge without one sends none (no silent simple-evals default)
    task.eval_judge.system_message = None
    task.evaluate(data.eval_dataset, gens, tokenizer=None)
    assert seen and all(m[0] != "system" for r in seen for m in r.messages)
    assert len(result.examples) == len(benches)
    assert all(e["id"].startswith(e["benchmark"] + "/") for e in result.examples)
    # both benchmarks' columns, each still the mean of its own rows (the first benchmark is primary)
    assert result.primary == "healthbench/score"
    for name in ("healthbench/score", "gpqa/accuracy"):
        mean = column_mean(result.examples, result.columns[name])
        assert mean == pytest.approx(result.metrics[name]["value"]), name


@pytest.mark.slow
def test_rubric_tiny_trains_with_per_item_channels_and_writes_record(tmp_path, train_cmd):
    import os
    import subprocess

    from rvpo_repro.run.record import load_examples, load_log_history, load_record

    cmd = train_cmd("logger=disabled", experiment="rubric_tiny")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = list((tmp_path / "results" / "runs" / "rubric_tiny").iterdir())
    rec = load_record(run_dir)
    assert rec.extra["train"]["channels"] == [f"item_{j:02d}" for j in range(12)]
    assert rec.extra["train"]["global_step"] == 4
    # The random tiny judge gives no verdict: recorded as missing, never as a score of 0.
    assert (
        rec.metrics["healthbench/judge_missing"]["value"] == rec.metrics["healthbench/judge_missing"]["n"] > 0
    )
    assert "healthbench/score" not in rec.metrics
    assert 0.0 <= rec.metrics["gpqa/accuracy"]["value"] <= 1.0
    benches = {e["benchmark"] for e in load_examples(run_dir)}
    assert benches == {"healthbench", "gpqa"}
    assert any("aggregator/risk" in h for h in load_log_history(run_dir))
