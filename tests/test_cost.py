"""The cost model's derived parts (rvpo_repro.sweep.cost): the judge's roofline, the tokens the rubric
reward and the HealthBench grader send, and the paid grader's calls and dollars, checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvpo_repro.config import compose
from rvpo_repro.evals.healthbench_grader import GRADER_SYSTEM
from rvpo_repro.sizing import shapes
from rvpo_repro.sweep import cost
from rvpo_repro.tasks.rubric import JUDGE_SYSTEM

ROOT = Path(__file__).resolve().parents[1]
USER_FRAME = "Question:\n\n\nResponse:\n\n\nCriterion:\n\n\nIs the criterion met?"  # item_request's own text


def test_judge_request_tokens_are_the_reward_requests_text_at_four_characters_a_token():
    frame = (len(JUDGE_SYSTEM) + len(USER_FRAME)) / 4 + 2 * 5 + 3  # two messages, the reply's cue
    assert cost.judge_prompt_tokens(0, 0, 0) == pytest.approx(frame)
    assert cost.judge_prompt_tokens(150, 600, 80) == pytest.approx(frame + 150 + 600 + 20)


def test_criterion_length_is_counted_on_the_rar_fixture():
    from rvpo_repro.evals.synthetic_benchmarks import rar_records

    items = [it["description"] for r in rar_records(16) for it in r["rubric"]]  # <= 10 items: all kept
    assert cost.fixture_criterion_chars() == pytest.approx(sum(map(len, items)) / len(items))
    assert all(d.split(" ")[0] in ("Essential", "Important", "Optional", "Pitfall") for d in items)


# A judge with round numbers: 10 layers of width 1000 (10 heads of 100, 2 of them KV: 8000 bytes of
# KV cache per token), a tied embedding of 2e8, about 1e9 parameters in all (shapes.ModelShape).
TOY_MODEL = {
    "hidden_size": 1000,
    "num_hidden_layers": 10,
    "num_attention_heads": 10,
    "num_key_value_heads": 2,
    "intermediate_size": 25866,
    "vocab_size": 200_000,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
}
TOY_GPU = {"bf16_flops": 1e15, "bytes_per_s": 1e12, "memory_bytes": 10e9}
TOY_JUDGE = {"prefix_cache_hit_rate": 0.5, "reply_tokens": 100, "max_num_seqs": 64,
             "gpu_memory_utilization": 0.5, "efficiency": 0.5}  # fmt: skip


def test_judge_roofline_by_hand(monkeypatch):
    monkeypatch.setitem(shapes.shipped_shapes(), "toy", TOY_MODEL)  # the judge's shape: the shipped facts
    params = shapes.shipped_shape("toy").params
    assert abs(params - 1e9) < 1e5
    r = cost.judge_roofline("toy", 1000, concurrency=1000, gpu=TOY_GPU, judge=TOY_JUDGE)
    # prefill: 500 new tokens x (2 x (params - 2e8) body + 4 x 10 x 1000 x 1000 attention) / 1e15
    assert r.prefill_s == pytest.approx(500 * (2 * (params - 2e8) + 4e7) / 1e15)
    # KV room 5e9 - 2 x params weights = 3e9 B, 8000 x 1100 B a sequence: 340 fit, vLLM takes 64
    assert r.batch == 64
    # a step reads 2 x params B of weights and 64 x 8000 x 1050 B of cache at 1e12 B/s (compute: 1.28e11 / 1e15)
    step = (2 * params + 64 * 8000 * 1050) / 1e12
    assert r.decode_s == pytest.approx(100 * step / 64)
    assert r.bound == pytest.approx(1 / (r.prefill_s + r.decode_s)) and r.used == pytest.approx(r.bound / 2)
    # fewer requests in flight than vLLM's cap: the batch is what is in flight
    assert cost.judge_roofline("toy", 1000, concurrency=8, gpu=TOY_GPU, judge=TOY_JUDGE).batch == 8
    # a KV cache that holds fewer sequences than are in flight caps the batch
    small = cost.judge_roofline("toy", 1000, 1000, gpu={**TOY_GPU, "memory_bytes": 4.2e9}, judge=TOY_JUDGE)
    assert small.batch == int((4.2e9 * 0.5 - 2 * params) // (8000 * 1100)) == 11
    with pytest.raises(ValueError, match="no shape for judge model 'nope'"):
        cost.judge_roofline("nope", 1000, 1)


def test_judge_of_a_rubric_run_is_the_served_model_at_its_concurrency():
    cfg = compose(["experiment=rubric_medicine", "model=qwen2.5-3b"])  # 4 training GPUs x 64 in flight
    r = cost.run_judge_roofline(cfg)
    assert r.model == "Qwen/Qwen2.5-7B-Instruct" and r.batch == 128  # 256 in flight over 2 judge GPUs
    assert r.hit_rate == 0.68 and r.reply_tokens == 60
    assert r.prompt_tokens == pytest.approx(
        cost.judge_prompt_tokens(150, 600, cost.fixture_criterion_chars())
    )
    assert 50 < r.bound < 500 and r.used == pytest.approx(0.5 * r.bound)
    # the 7B's untied embedding and LM head (2 x 152064 x 3584) are not in the prefill's 2 FLOPs a parameter
    shape = shapes.shipped_shape(r.model)
    body, attention = shape.params - 2 * 152064 * 3584, 4 * 28 * 3584 * r.prompt_tokens
    assert r.prefill_s == pytest.approx(
        r.prompt_tokens * 0.32 * (2 * body + attention) / cost.GPU["bf16_flops"]
    )
    assert cost.run_judge_roofline(compose(["experiment=tool_calling", "model=qwen2.5-3b"])) is None


def test_hit_rate_is_the_one_measured_on_vllms_counters():
    table = json.loads((ROOT / "results" / "tables" / "judge_prefix_cache.json").read_text())
    adjacent = [r["hit_rate"] for r in table["rows"] if r["prefix_caching"] and r["order"] == "adjacent"]
    assert adjacent and all(round(h, 2) == cost.JUDGE["prefix_cache_hit_rate"] for h in adjacent)


def test_grader_request_tokens_are_simple_evals_messages():
    frame = (
        len(GRADER_SYSTEM) + cost.HEALTHBENCH["template_chars"] - len("<<conversation>><<rubric_item>>")
    ) / 4
    frame += (len("assistant: ") + len("[5] ")) / 4 + 2 * 5 + 3  # the rendered turn and item, two messages
    assert cost.grader_prompt_tokens(0, 0, 0) == pytest.approx(frame)
    assert cost.grader_prompt_tokens(300, 600, 200) == pytest.approx(frame + 300 + 600 + 50)


def test_grader_cost_by_hand_on_a_small_case():
    """10 conversations, checkpoints not evaluated (the final one graded): 10 x 11.4 calls."""
    cfg = compose(["experiment=rubric_medicine", "task.healthbench_limit=10", "trainer.eval_checkpoints=false",
                   "trainer.validation_prompts=0"])  # fmt: skip
    g = cost.grader_cost(cfg)
    assert g.model == "gpt-4.1-2025-04-14" and g.evaluations == 1 and g.calls == pytest.approx(114)
    item_chars = 40.7 * 4 / 3 * 4 + len("[5] ")
    per_call = cost.grader_prompt_tokens(300, 600, item_chars)
    assert g.input_tokens == pytest.approx(114 * per_call) and g.output_tokens == pytest.approx(114 * 60)
    assert g.usd == pytest.approx((114 * per_call * 2.0 + 114 * 60 * 8.0) / 1e6)
    # the paper runs grade the best and the final checkpoint, of all 5000 conversations
    full = cost.grader_cost(compose(["experiment=rubric_medicine"]))
    assert full.evaluations == 2 and full.calls == pytest.approx(2 * 5000 * 11.4)
    assert full.usd == pytest.approx(g.usd / 114 * full.calls)


def test_no_paid_grader_where_none_is_paid():
    assert cost.grader_cost(compose(["experiment=rubric_science"])) is None  # GPQA: no grader
    assert cost.grader_cost(compose(["experiment=rubric_medicine", "eval_judge=training_judge"])) is None
    own = compose(["experiment=rubric_medicine", "eval_judge.base_url=http://127.0.0.1:9000/v1"])
    assert cost.grader_cost(own) is None  # served by the user: no list price
    other = cost.grader_cost(compose(["experiment=rubric_medicine", "eval_judge.model=gpt-9"]))
    assert other.calls > 0 and other.usd is None  # no price known: calls stated, dollars not guessed


def test_prices_and_hardware_state_their_source_and_date():
    for model, price in cost.PRICES.items():
        assert price["input_per_m"] > 0 and price["output_per_m"] > 0, model
        assert price["date"][:4].isdigit() and "http" in price["source"], model
    assert "measured" in cost.GPU["source"] and "20" in cost.GPU["source"]
