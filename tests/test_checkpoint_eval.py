"""The held-out validation split and checkpoint selection (rvpo_repro.run.checkpoint_eval)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import Dataset
from omegaconf import OmegaConf

from rvpo_repro.rewards import RewardChannel
from rvpo_repro.run import checkpoint_eval as ce
from rvpo_repro.run.record import load_record
from rvpo_repro.tasks.base import TaskData


def _cfg(**trainer):
    return OmegaConf.create(
        {
            "trainer": {"eval_checkpoints": True, "max_completion_length": 8, **trainer},
            "eval": {
                "backend": "hf",
                "max_new_tokens": None,
                "temperature": 0.0,
                "top_p": 1.0,
                "batch_size": 4,
                "seed": 0,
            },
            "aggregator": {"weights": None},
        }
    )


def _data(n=20):
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "target": f"t{i}"} for i in range(n)]
    return TaskData(train_dataset=Dataset.from_list(rows), eval_dataset=None, reward_funcs=[])


def test_validation_prompts_are_a_seeded_draw_held_out_of_training():
    data, val, facts = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=7), _data())
    again = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=7), _data())[1]
    other = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=8), _data())[1]
    assert len(val) == 5 and len(data.train_dataset) == 15 and facts["prompts"] == 5 and facts["of"] == 20
    assert set(val["target"]).isdisjoint(data.train_dataset["target"])
    assert set(val["target"]) | set(data.train_dataset["target"]) == {f"t{i}" for i in range(20)}
    assert val["target"] == again["target"] and val["target"] != other["target"]
    assert [f"t{i}" for i in facts["indices"]] == val["target"]


def test_no_split_by_default_and_bad_sizes_refused():
    data = _data()
    assert ce.carve_validation(_cfg(), data) == (data, None, None)
    with pytest.raises(ValueError, match="validation_prompts=20: the task has only 20"):
        ce.carve_validation(_cfg(validation_prompts=20), data)
    with pytest.raises(ValueError, match="needs trainer.eval_checkpoints=true"):
        ce.carve_validation(_cfg(validation_prompts=2, eval_checkpoints=False), data)


def test_validation_reward_is_the_weighted_mean_of_normalised_present_channels(monkeypatch):
    texts = {"q0": "good", "q1": "bad", "q2": "none"}
    monkeypatch.setattr(
        ce,
        "generate",
        lambda backend, model, path, tok, prompts, s: [[texts[p[0]["content"]]] for p in prompts],
    )

    def fmt(prompts, completions, **kw):  # {0, 1}
        return [1.0 if c[0]["content"] == "good" else 0.0 for c in completions]

    def correctness(prompts, completions, target, **kw):  # [-3, 3]; absent for "none"
        return [{"good": 3.0, "bad": -1.0}.get(c[0]["content"]) for c in completions]

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "target": q} for q in texts])
    data = TaskData(
        train_dataset=rows,
        eval_dataset=None,
        reward_funcs=[fmt, correctness],
        channels=[RewardChannel("fmt", binary=True), RewardChannel("correctness", low=-3.0, high=3.0)],
    )
    cfg = _cfg()
    cfg.aggregator.weights = [1.0, 3.0]
    tok = type(
        "Tok", (), {"__call__": lambda self, t, add_special_tokens=False: {"input_ids": [0] * len(t)}}
    )()
    m = ce.validation_metrics(cfg, data, rows, model=None, tokenizer=tok)
    # q0: (1*1 + 3*1)/4 = 1; q1: (1*0 + 3*(2/6))/4 = 0.25; q2: only fmt present, 0
    assert m["validation/reward"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert m["validation/fmt"] == pytest.approx(1 / 3) and m["validation/correctness"] == pytest.approx(1.0)
    assert m["validation/n"] == 3


def test_best_checkpoint_prefers_validation_and_labels_test_selection_optimistic():
    rows = [
        {"step": 5, "metrics": {"m": 0.9}, "validation": {"validation/reward": 0.1}},
        {"step": 10, "metrics": {"m": 0.5}, "validation": {"validation/reward": 0.7}},
    ]
    assert ce.best_checkpoint(rows, "m", (10, 0.5)) == (10, 0.5, ce.VALIDATION)
    plain = [{"step": r["step"], "metrics": r["metrics"]} for r in rows]
    assert ce.best_checkpoint(plain, "m", (10, 0.5)) == (5, 0.9, ce.OPTIMISTIC)
    nan = [{**r, "validation": {"validation/reward": math.nan}} for r in rows]
    assert ce.best_checkpoint(nan, "m", (10, 0.5))[2] == ce.OPTIMISTIC


@pytest.mark.slow
def test_a_run_scores_its_validation_split_at_every_save(tmp_path, cache_dir):
    from rvpo_repro.config import compose
    from rvpo_repro.run.job import train_and_evaluate

    cfg = compose(
        [
            "experiment=toy_smoke",
            f"paths.results_dir={tmp_path / 'results'}",
            f"paths.cache_dir={cache_dir}",
            f"paths.output_dir={tmp_path / 'out'}",
            "logger.mode=disabled",
            "trainer.eval_checkpoints=true",
            "trainer.validation_prompts=4",
        ]
    )
    train_and_evaluate(cfg)
    (run_dir,) = list(Path(tmp_path / "results" / "runs" / "toy_smoke").iterdir())
    rec = load_record(run_dir)
    split = rec.extra["validation_split"]
    assert split["prompts"] == 4 and split["seed"] == 0 and len(split["indices"]) == 4
    evals = rec.extra["checkpoint_evals"]
    assert [r["step"] for r in evals] == [5, 10]
    for r in evals:
        assert r["validation"]["validation/n"] == 4 and 0.0 <= r["validation"]["validation/reward"] <= 1.0
        assert r["metrics"]  # the test-set evaluation at the save is kept


def test_item_weights_of_a_multichannel_reward_weight_the_validation_reward(monkeypatch):
    from rvpo_repro.rewards import MultiChannelReward

    class Items(MultiChannelReward):
        channels = [RewardChannel("item_0", binary=True), RewardChannel("item_1", binary=True)]

        def score(self, prompts, completions, w, **kw):
            return [[1.0, 0.0] for _ in completions]

        def item_weights(self, inputs):
            return [[float(x["w"]), 1.0] for x in inputs]

    monkeypatch.setattr(ce, "generate", lambda *a: [["a"] for _ in a[4]])
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "q"}], "w": w} for w in (3.0, 1.0)])
    data = TaskData(train_dataset=rows, eval_dataset=None, reward_funcs=[Items()], channels=Items.channels)
    tok = type("Tok", (), {"__call__": lambda self, t, add_special_tokens=False: {"input_ids": [0]}})()
    m = ce.validation_metrics(_cfg(), data, rows, model=None, tokenizer=tok)
    assert m["validation/reward"] == pytest.approx((3 / 4 + 1 / 2) / 2)
