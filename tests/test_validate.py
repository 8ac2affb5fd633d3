"""Config validation: every refused value names its key and what is allowed, before any work."""

from __future__ import annotations

import pytest

from rvpo_repro.config import ConfigError, compose, grpo_kwargs, validate
from rvpo_repro.ranges import Range, range_of

REFUSED = [
    (["+foo=1"], r"`foo`"),
    (["+eval.foo=1"], r"`eval\.foo`"),
    (["+task.num_prompts=3"], r"`task\.num_prompts`"),
    (["+trainer.learning_rat=0.1"], r"trainer\.learning_rat: .*did you mean learning_rate"),
    (["trainer.max_steps=many"], r"trainer\.max_steps='many': expected"),
    (["trainer.max_steps=0"], r"trainer\.max_steps=0: must be >= 1"),
    (["trainer.save_steps=0"], r"trainer\.save_steps=0: must be > 0"),
    (["seed=-5"], r"seed=-5: must be in \[0, 4294967295\]"),
    (["model.tiny.seed=-1"], r"model\.tiny\.seed=-1"),
    (["trainer.num_generations=1"], r"trainer\.num_generations=1: must be >= 2"),
    (["model.per_device_train_batch_size=0"], r"model\.per_device_train_batch_size=0: must be >= 1"),
    (["trainer.top_p=1.5"], r"trainer\.top_p=1\.5: must be in \(0, 1\]"),
    (["eval.top_p=0"], r"eval\.top_p=0\.0: must be in \(0, 1\]"),
    (["trainer.temperature=0"], r"trainer\.temperature=0: must be > 0"),
    (["eval.temperature=-1"], r"eval\.temperature=-1\.0: must be >= 0"),
    (["judge.temperature=3"], r"judge\.temperature=3\.0: must be in \[0, 2\]"),
    (["eval.batch_size=0"], r"eval\.batch_size=0: must be >= 1"),
    (["task.eval_samples=0"], r"task\.eval_samples=0: must be >= 1"),
    (["+trainer.seed=3"], r"trainer\.seed: set by the run from seed"),
    # an option of another method, added past the compose-time check: named with what grpo accepts
    (
        ["aggregator=grpo", "+aggregator.risk=2"],
        r"aggregator: option\(s\) \['risk'\] do not apply to aggregator 'grpo'; it accepts \['eps', ",
    ),
    (["aggregator.name=grpo"], r"aggregator: option\(s\) \['risk', 'risk_end', 'risk_start', 'saturated'"),
    (["aggregator.name=rvp"], r"aggregator\.name='rvp': expected one of \["),
    # ranges declared on the method's own fields
    (["aggregator.risk=-1"], r"^aggregator\.risk=-1\.0: must be >= 0$"),
    (["aggregator.eps=0"], r"^aggregator\.eps=0\.0: must be > 0$"),
    (
        ["aggregator=variance_penalty", "aggregator.beta=inf"],
        r"^aggregator\.beta=inf: must be in \[0, inf\)$",
    ),
    (["aggregator=constrained_grpo", "aggregator.objective=-1"], r"^aggregator\.objective=-1: must be >= 0$"),
    # the judge's ranges, written once on JudgeConfig, hold for both judge groups
    (["eval_judge.timeout_s=0"], r"^eval_judge\.timeout_s=0\.0: must be > 0$"),
    (["judge.reask_limit=-1"], r"^judge\.reask_limit=-1: must be >= 0$"),
    (["eval_judge.temperature=2.5"], r"^eval_judge\.temperature=2\.5: must be in \[0, 2\]$"),
    (["run.max_missing_share=1.5"], r"^run\.max_missing_share=1\.5: must be in \[0, 1\]$"),
    (["judge.backend=foo"], r"judge\.backend='foo': not a judge back end \(expected one of hf, none, openai"),
    (["eval_judge.backend=opnai"], r"eval_judge\.backend='opnai': .*did you mean openai\?"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_refused_naming_the_key_and_range(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(["experiment=toy_smoke", *overrides]), construct_trl=False)


def test_any_grpo_config_field_is_accepted_as_it_is():
    cfg = compose(["experiment=toy_smoke", "+trainer.mask_truncated_completions=true", "trainer.max_steps=7"])
    validate(cfg, construct_trl=False)
    kw = grpo_kwargs(cfg)
    assert kw["mask_truncated_completions"] is True and kw["max_steps"] == 7 and "eval_checkpoints" not in kw
    assert kw["per_device_train_batch_size"] == cfg.model.per_device_train_batch_size and kw["seed"] == 0


def test_grpo_config_itself_refuses_what_no_range_covers():
    """Rollouts per step must split into whole groups: only GRPOConfig knows that rule."""
    validate(compose(["experiment=toy_smoke"]))
    with pytest.raises(ConfigError, match="trainer: TRL's GRPOConfig refuses"):
        validate(compose(["experiment=toy_smoke", "trainer.num_generations=5"]))


def test_ranges():
    assert str(Range(0, 1, low_open=True)) == "in (0, 1]" and str(Range(2)) == ">= 2"
    assert range_of("task.data_seed", 3) is not None and range_of("trainer.loss_type", "dapo") is None
    assert not Range(0, 1, low_open=True).allows(0) and Range(0, 1, low_open=True).allows(1)
