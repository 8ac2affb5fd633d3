"""Prompts longer than the model's context: dropped and counted, or refused, when the task loads,
before any weights load (tasks.prompt_limit). A tiny model with a 64-token context stands in for a
9k-token prompt on a 32k model, which once grew the process to 24 GB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rvpo_repro.tasks import TaskInputError, get_task, prepare_config
from rvpo_repro.tasks.prompt_limit import context_length

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[2]
CONTEXT, COMPLETION = 64, 16
REWARD = "def brevity(completions, **kwargs):\n    return [1.0 / (1 + len(c[0]['content'])) for c in completions]\n"
LONG = "Describe, one after another, every one of these numbers in words: " + " ".join(map(str, range(400)))


@pytest.fixture(scope="module")
def small_context(cache_dir):
    """The tiny model built with a 64-token context, and its tokenizer."""
    from transformers import AutoTokenizer

    from rvpo_repro.models import ensure_tiny_model
    from rvpo_repro.schemas import TinyModelConfig

    path = ensure_tiny_model(TinyModelConfig(seed=0, max_position_embeddings=CONTEXT), cache_dir)
    return path, AutoTokenizer.from_pretrained(path)


def _data(where: Path, long_ids: set[int], n: int = 10) -> Path:
    rows = [{"id": f"p{i}", "prompt": LONG if i in long_ids else f"Name a colour {i}."} for i in range(n)]
    path = where / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _task(compose_cfg, tmp_path, data: Path, *overrides: str):
    (tmp_path / "len_rewards.py").write_text(REWARD)
    cfg = compose_cfg("task=custom", f"task.train_source={data}", "task.rewards=[len_rewards:brevity]",
                      "task.eval_share=0.5", f"trainer.max_completion_length={COMPLETION}", *overrides)  # fmt: skip
    prepare_config(cfg)
    return get_task(cfg.task)


def _tokens(tok, text: str) -> int:
    chat = tok.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return len(tok(chat, add_special_tokens=False)["input_ids"])


def test_the_context_is_the_models_position_limit(small_context, tiny_model_dir):
    from transformers import AutoTokenizer

    assert context_length(small_context[1]) == CONTEXT
    assert context_length(AutoTokenizer.from_pretrained(tiny_model_dir)) == 1024  # TinyModelConfig's default


def test_long_prompts_are_dropped_counted_and_the_rest_kept(
    small_context, compose_cfg, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    tok = small_context[1]
    assert _tokens(tok, LONG) > CONTEXT and _tokens(tok, "Name a colour 9.") < CONTEXT - COMPLETION
    data = _task(compose_cfg, tmp_path, _data(tmp_path, long_ids={1, 4, 7})).build(tok, seed=0)
    facts = data.extra["prompt_limit"]
    kept = set(data.train_dataset["id"]) | set(data.eval_dataset["id"])
    assert kept == {f"p{i}" for i in range(10)} - {"p1", "p4", "p7"}  # only the long ones left out
    assert facts["train"]["dropped"] + facts["eval"]["dropped"] == 3
    assert facts["train"]["rows"] + facts["eval"]["rows"] == 10
    assert max(facts["train"]["longest"], facts["eval"]["longest"]) == _tokens(tok, LONG)
    assert (facts["max_prompt_tokens"], facts["context"], facts["rule"]) == (
        CONTEXT - COMPLETION,
        CONTEXT,
        "drop",
    )


def test_refuse_names_the_row_and_an_all_long_split_is_refused(
    small_context, compose_cfg, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    tok, n = small_context[1], _tokens(small_context[1], LONG)
    (tmp_path / "ev").mkdir()
    task = _task(compose_cfg, tmp_path, _data(tmp_path, long_ids={3}), "task.long_prompts=refuse",
                 "task.eval_source=" + str(_data(tmp_path / "ev", long_ids=set())))  # fmt: skip
    with pytest.raises(TaskInputError) as e:
        task.build(tok, seed=0)
    assert str(e.value).startswith(
        f"task.train_source row 3 (id 'p3'): prompt of {n} tokens, over the limit of 48"
    )
    task = _task(compose_cfg, tmp_path, _data(tmp_path, long_ids=set(range(10))))
    with pytest.raises(
        TaskInputError, match=r"every prompt is over the limit of 48 tokens .*the longest has"
    ):
        task.build(tok, seed=0)
    task = _task(compose_cfg, tmp_path, _data(tmp_path, long_ids={3}), "task.max_prompt_tokens=10000")
    assert len(task.build(tok, seed=0).train_dataset) == 5  # an explicit limit: nothing over it


@pytest.mark.slow
def test_rvpo_train_drops_a_prompt_over_the_context_and_records_it(tmp_path, cache_dir):
    data = _data(tmp_path, long_ids={2})
    (tmp_path / "len_rewards.py").write_text(REWARD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    common = [str(Path(sys.executable).parent / "rvpo-train"), "task=custom", f"task.train_source={data}",
              "task.rewards=[len_rewards:brevity]", "task.eval_share=0.5", "task.eval_samples=1",
              "experiment_name=long", "model=tiny", f"model.tiny.max_position_embeddings={CONTEXT}",
              "model.per_device_train_batch_size=4", "trainer.num_generations=2", "trainer.max_steps=1",
              f"trainer.max_completion_length={COMPLETION}", "eval.backend=hf", "logger=disabled",
              f"paths.cache_dir={cache_dir}"]  # fmt: skip
    proc = subprocess.run([*common, "task.long_prompts=refuse"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 2 and "row" in proc.stderr and "over the limit of 48" in proc.stderr, (
        proc.stderr[-2000:]
    )
    assert not (tmp_path / "results" / "runs" / "long").exists() or not any(
        (tmp_path / "results").rglob("model")
    )
    proc = subprocess.run(common, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = (tmp_path / "results" / "runs" / "long").glob("*/result.json")
    facts = json.loads(result.read_text())["extra"]["prompt_limit"]
    assert facts["train"]["dropped"] + facts["eval"]["dropped"] == 1 and facts["max_prompt_tokens"] == 48
