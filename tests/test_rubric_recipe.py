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
