from __future__ import annotations

import pytest

from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.toy_constraints import ToyConstraintsConfig, ToyRewards, make_prompts


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_prompts_are_seeded_and_eval_topics_held_out():
    cfg = ToyConstraintsConfig()
    train, eval_ = make_prompts(cfg)
    assert (train, eval_) == make_prompts(cfg)
    assert make_prompts(ToyConstraintsConfig(data_seed=1))[0] != train
    assert len(train) == cfg.num_train_prompts and len(eval_) == cfg.num_eval_prompts
    assert not {r["topic"] for r in train} & {r["topic"] for r in eval_}
    assert len({r["id"] for r in train + eval_}) == len(train) + len(eval_)
    row = eval_[0]
    assert row["prompt"][0]["role"] == "user" and row["topic"] in row["prompt"][0]["content"]


def test_channels_score_as_documented():
    r = ToyRewards(fluency_scale=3.0)
    assert [c.name for c in r.channels] == ["fluency", "upper", "digit"]
    assert [c.binary for c in r.channels] == [False, True, True] and r.channels[0].high == 3.0
    assert r.score_text("the Sun") == [3.0, 1.0, 0.0]
    fluency, upper, digit = r.score_text("sun 42!")
    assert fluency == pytest.approx(3.0 * 4 / 7) and upper == 0.0 and digit == 1.0
    assert r.score_text("") == [0.0, 0.0, 0.0]
    assert r.score_text("É ٣")[1:] == [0.0, 1.0]  # only ASCII capitals count; any Unicode digit counts
    assert ToyRewards(fluency_scale=10.0).score_text("ab")[0] == 10.0


def test_trl_conversational_completions():
    rows = ToyRewards()(["p"], [[{"role": "assistant", "content": "A 1"}]], completion_ids=[[1, 2, 3]])
    assert rows == [[3.0 * 2 / 3, 1.0, 1.0]]


def test_evaluate_metrics_bottleneck_and_examples(tokenizer):
    task = get_task(ToyConstraintsConfig(num_eval_prompts=2))
    data = task.build(tokenizer, seed=0)
    gens = [["The 1 sun", "the sun"], ["Moon 7", "Moon 8"]]
    result = task.evaluate(data.eval_dataset, gens, tokenizer)
    ex = {e["id"]: e for e in result.examples}
    first, second = data.eval_dataset["id"]
    assert ex[first]["all_constraints"] == 0.5 and ex[second]["all_constraints"] == 1.0
    assert ex[first]["upper"] == 0.5 and ex[first]["digit"] == 0.5
    m = result.metrics
    assert m["rewards/all_constraints"]["value"] == 0.75 and m["rewards/all_constraints"]["n"] == 2
    assert m["rewards/all_constraints"]["stderr"] == pytest.approx(0.25)
    assert m["rewards/upper"]["value"] == 0.75 and m["rewards/digit"]["value"] == 0.75
    assert m["rewards/bottleneck"]["value"] == 0.75 and m["rewards/bottleneck"]["channel"] in {
        "upper",
        "digit",
    }
    # every metric with a per-example column is that column's mean over the examples
    assert result.primary == "rewards/all_constraints"
    for name, column in result.columns.items():
        assert m[name]["value"] == pytest.approx(sum(e[column] for e in result.examples) / 2)
    assert "rewards/bottleneck" not in result.columns  # a min over channel means: no per-example column
    # every entry declares its range (reports keep CIs inside it): fluency its scale, rates [0, 1]
    assert (m["rewards/fluency"]["low"], m["rewards/fluency"]["high"]) == (0.0, task.cfg.fluency_scale)
    assert all(
        (m[k]["low"], m[k]["high"]) == (0.0, 1.0) for k in ("rewards/digit", "rewards/all_constraints")
    )


def test_absent_channel_is_left_out_not_failed():
    from rvpo_repro.evals.held_out_rewards import evaluate_channels
    from rvpo_repro.rewards import RewardChannel

    channels = [RewardChannel("a", binary=True), RewardChannel("b", binary=True)]
    result = evaluate_channels(["x"], [["s1", "s2"]], channels, lambda i, s: [[1.0, None], [0.0, None]])
    assert result.examples[0]["all_constraints"] == 0.5  # b absent: only a decides
    assert "rewards/b" not in result.metrics and result.metrics["rewards/a"]["value"] == 0.5


def test_unknown_task_lists_registered():
    with pytest.raises(ValueError, match="toy_constraints"):
        get_task({"name": "nope"})
