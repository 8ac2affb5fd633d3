"""rubric_toy: seeded rubrics of 5-17 rule items, the rubric track's reward, HealthBench scoring."""

from __future__ import annotations

import json

import pytest

from rvpo_repro.evals import healthbench
from rvpo_repro.judges.rules import RulesJudge, check
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.rubric_toy import RubricToyConfig, healthbench_example, make_rows


def test_rubrics_have_5_to_17_weighted_items_and_held_out_topics():
    cfg = RubricToyConfig()
    train, eval_ = make_rows(cfg)
    assert (len(train), len(eval_)) == (cfg.num_train_prompts, cfg.num_eval_prompts)
    assert make_rows(cfg) == (train, eval_)  # seeded
    sizes, weights = [], []
    for row in train + eval_:
        rubric = json.loads(row["rubric_json"])
        sizes.append(len(rubric))
        texts = [it["description"].removeprefix("Pitfall Criteria: ") for it in rubric]
        assert len(set(texts)) == len(texts)  # never an item and its own pitfall
        for it in rubric:
            pit = it["description"].startswith("Pitfall Criteria: ")
            assert pit == (it["weight"] < 0) and 1 <= abs(it["weight"]) <= 5
            check("any text", it["description"])  # every item is rule-checkable
            weights.append(it["weight"])
        healthbench.validate_record(healthbench_example(row), row["id"])
    assert min(sizes) == 5 and max(sizes) == 17
    assert min(weights) < 0 < max(weights)
    assert not {r["topic"] for r in train} & {r["topic"] for r in eval_}
    with pytest.raises(ValueError, match="max_items"):
        make_rows(RubricToyConfig(max_items=99))


RUBRIC = [
    {"description": "The response contains a digit.", "weight": 4, "kind": "digit"},
    {"description": "The response ends with a period.", "weight": 2, "kind": "format"},
    {
        "description": "Pitfall Criteria: The response contains the letter 'z'.",
        "weight": -3,
        "kind": "pitfall",
    },
]


def _task(**kw):
    return get_task(RubricToyConfig(max_channels=4, **kw), judge=RulesJudge())


def test_training_reward_is_the_rubric_tracks_per_item_channels():
    task = _task()
    data = task.build(tokenizer=None, seed=0)
    (reward,) = data.reward_funcs
    rows = reward(["p", "p"], ["A zoo with 3 cats.", "No digits"], rubric_json=[json.dumps(RUBRIC)] * 2)
    # pitfall met (a 'z') -> 0 under met_is_failure; absent fourth channel -> None
    assert rows == [[1.0, 1.0, 0.0, None], [0.0, 0.0, 1.0, None]]


def test_evaluation_scores_as_healthbench_and_per_item_kind():
    task = _task()
    ds = [
        {
            "id": "e0",
            "prompt": [{"role": "user", "content": "Write a line about the sea."}],
            "topic": "sea",
            "rubric_json": json.dumps(RUBRIC),
        },
        {
            "id": "e1",
            "prompt": [{"role": "user", "content": "Tell me about the sky."}],
            "topic": "sky",
            "rubric_json": json.dumps(RUBRIC),
        },
    ]
    from datasets import Dataset

    result = task.evaluate(Dataset.from_list(ds), [["3 zebras."], ["Blue sky"]], tokenizer=None)
    m = result.metrics
    # e0: digit 4 + period 2 met, pitfall met (-3): (4 + 2 - 3) / 6 = 0.5; e1: nothing met -> 0
    assert m["healthbench/score"]["value"] == pytest.approx(0.25)
    assert m["rewards/digit"]["value"] == 0.5 and m["rewards/pitfall"]["value"] == 0.5
    assert m["rewards/all_constraints"]["value"] == 0.0
    assert result.primary == "healthbench/score" and result.columns["healthbench/score"] == "score"
    rows = {r["id"]: r for r in result.examples}
    assert rows["e0"]["score"] == pytest.approx(0.5) and rows["e1"]["digit"] == 0.0
    assert "rewards/letter" not in m  # no letter items in this rubric
