"""The rubric families' evaluation settings come from simple-evals, each with its source."""

from __future__ import annotations

import pytest

from rvpo_repro.config import compose, validate


@pytest.mark.parametrize("family", ["rubric_medicine", "rubric_science"])
def test_answers_are_sampled_as_simple_evals_samples_them(family):
    cfg = compose([f"experiment={family}"])
    validate(cfg, construct_trl=False)
    # sampler/chat_completion_sampler.py: ChatCompletionSampler(temperature=0.5, max_tokens=1024)
    assert (cfg.eval.temperature, cfg.eval.max_new_tokens) == (0.5, 1024)
    assert cfg.trainer.beta == 0.001  # the suite's own starting value (no source), unchanged
    t = cfg.trainer  # best checkpoint chosen on a validation split held out of training
    assert t.eval_checkpoints and t.validation_prompts == 64 and t.validation_seed == 0


def test_gpqa_repeats_as_simple_evals_cli():
    # simple_evals.py: GPQAEval(n_repeats=1 if debug_mode else 10)
    assert compose(["experiment=rubric_science"]).task.gpqa_n_repeats == 10


def _comment_above(path, key: str) -> str:
    """The comment block directly above `key:` in a config file (the key's source statement)."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    block = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        block.insert(0, line.strip().lstrip("# "))
    return " ".join(block)


@pytest.mark.parametrize(
    ("key", "value"), [("weight_decay", 0.0), ("vllm_importance_sampling_correction", True)]
)
def test_the_suites_own_optimizer_and_sampling_choices_are_set_and_stated(key, value, tmp_path):
    from pathlib import Path

    from rvpo_repro.config import grpo_config

    base = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "rubric_base.yaml"
    statement = _comment_above(base, key)
    assert "the suite's own choice, from no source" in statement, statement
    for family in ("rubric_medicine", "rubric_science"):
        cfg = compose([f"experiment={family}"])
        assert cfg.trainer[key] == value  # explicit in the composed config, not left to a library default
    args = grpo_config(compose(["experiment=rubric_tiny", f"++trainer.{key}={value}"]), str(tmp_path))
    assert getattr(args, key) == value  # a GRPOConfig field of that name takes it
