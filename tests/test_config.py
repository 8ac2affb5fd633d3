"""Every config file composes against its schema; typos fail at compose time, naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from rvpo_repro.aggregators.base import AGGREGATORS as METHODS
from rvpo_repro.config import compose, conf_dir, validate
from rvpo_repro.schemas import GROUP_SCHEMAS

# hydra, launcher: Hydra's own nodes (tests/test_launchers.py); accelerate: accelerate's files, not a group
NOT_SCHEMA = {"hydra", "experiment", "launcher", "accelerate"}
SCHEMA_GROUPS = sorted(p.name for p in conf_dir().iterdir() if p.is_dir() and p.name not in NOT_SCHEMA)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


CASES = [(g, o) for g in SCHEMA_GROUPS for o in _options(g)]


def test_every_group_has_options():
    for group in ["model", "task", "aggregator", "trainer", "judge", "logger", "paths", "hydra"]:
        assert _options(group), f"conf/{group}/ has no option"
    assert set(_options("model")) >= {"tiny", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b"}


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_group_option_composes(group, option):
    cfg = compose([f"{group}={option}"])
    node = cfg[group]
    OmegaConf.to_container(node, resolve=False, throw_on_missing=True)
    if group in GROUP_SCHEMAS:  # validated by its dataclass, not a loose dict
        assert OmegaConf.get_type(node) is GROUP_SCHEMAS[group]
    if group == "aggregator":  # by its method's own schema
        assert OmegaConf.get_type(node) is METHODS[node.name].schema


def test_hydra_group_composes():
    cfg = compose(return_hydra_config=True)
    assert "${now:" in OmegaConf.to_container(cfg.hydra, resolve=False)["run"]["dir"]


EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def test_experiments_are_families():
    assert len(EXPERIMENTS) <= 12
    assert set(EXPERIMENTS) >= {"toy", "toy_smoke", "rubric_medicine", "rubric_science", "tool_calling"}
    assert not any(re.search(r"_(1\.5b|3b|7b|14b)", e) for e in EXPERIMENTS), "a size belongs to model="


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose([f"experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=False, throw_on_missing=True)
    if not experiment.endswith("_base"):  # *_base files hold settings shared by families
        assert cfg.experiment_name == experiment, "a family file sets experiment_name to its own name"


# What each paper family allows, written independently of the files: task, evaluations, group size,
# models, aggregators (option files; the rubric RVPO row is the annealed schedule).
FAMILIES = {
    "rubric_medicine": ("rar_medicine", ["healthbench"], 16, ("3b", "7b", "14b")),
    "rubric_science": ("rar_science", ["gpqa"], 16, ("3b", "7b", "14b")),
    "tool_calling": ("toolrl", None, 4, ("1.5b", "3b")),
}
AGGREGATORS = (
    "grpo",
    "gdpo",
    "gdpo_mean",
    "rvpo",
    "rvpo_annealed",
    "rvpo_k5",
    "hard_min",
    "variance_penalty",
)
COMBOS = [(f, s, a) for f, spec in FAMILIES.items() for s in spec[3] for a in AGGREGATORS]


@pytest.mark.parametrize(("family", "size", "aggregator"), COMBOS, ids=["-".join(c) for c in COMBOS])
def test_family_composes_with_every_model_and_aggregator(family, size, aggregator):
    task, evals, group, _ = FAMILIES[family]
    cfg = compose([f"experiment={family}", f"model=qwen2.5-{size}", f"aggregator={aggregator}"])
    validate(cfg, construct_trl=False)  # GRPOConfig itself: once per family, below
    OmegaConf.to_container(cfg, resolve=False, throw_on_missing=True)
    assert cfg.experiment_name == family
    assert cfg.model.name == f"qwen2.5-{size}" and cfg.model.path == f"Qwen/Qwen2.5-{size.upper()}-Instruct"
    option = OmegaConf.to_container(compose([f"aggregator={aggregator}"]).aggregator, resolve=True)
    if family == "tool_calling":  # verl's std eps for every method, its token whitening for z-scores
        option |= {"eps": 1e-6} | ({} if aggregator == "grpo" else {"whiten": "token"})
        assert ("whiten" in option) == (aggregator != "grpo")  # grpo has no batch whitening to set
    assert OmegaConf.to_container(cfg.aggregator, resolve=True) == option
    assert cfg.task.name == task and cfg.trainer.num_generations == group
    if evals is not None:
        assert list(cfg.task.evals) == evals
    m = cfg.model  # the paper's 512 completions per optimizer step, from the model group
    assert m.per_device_train_batch_size * m.gradient_accumulation_steps * m.num_gpus == 512
    assert (conf_dir() / "accelerate" / f"{m.accelerate}.yaml").exists()


def test_tool_calling_is_verl_gdpos_recipe():
    """verl-GDPO train_gdpo.sh, mapped to TRL (the mapping is derived in conf/experiment/tool_calling.yaml)."""
    cfg = compose(["experiment=tool_calling", "paths.output_dir=/tmp/unused"])
    validate(cfg)
    t = cfg.trainer
    assert (t.learning_rate, t.num_generations, t.max_completion_length) == (1e-6, 4, 1024)
    assert t.beta == 0.0  # upstream use_kl_loss=False: no KL in the loss GDPO's update sees
    assert t.entropy_coef == 0.001  # verl's default entropy coefficient
    assert cfg.aggregator.eps == 1e-6  # verl's epsilon
    assert t.generation_batch_size == 512 * 4 and t.max_steps == 105 * 4  # 15 epochs of 3920 // 512
    assert cfg.task.max_prompt_tokens == 2048 and cfg.task.bfcl_per_category is None
    assert (cfg.model.name, cfg.aggregator.name, cfg.aggregator.risk) == ("qwen2.5-3b", "rvpo", 1.0)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_rubric_families_use_the_papers_schedule_by_default():
    for family in ("rubric_medicine", "rubric_science"):
        cfg = compose([f"experiment={family}"])
        validate(cfg)  # GRPOConfig accepts the family's trainer keys
        a = cfg.aggregator
        assert (a.name, a.schedule, a.risk_start, a.risk_end) == ("rvpo", "linear", 0.5, 2.0)


def test_hub_ids_of_real_sizes():
    for size in ["1.5b", "3b", "7b", "14b"]:
        cfg = compose([f"model=qwen2.5-{size}"])
        assert cfg.model.path == f"Qwen/Qwen2.5-{size.upper()}-Instruct"
        assert cfg.model.num_gpus >= 1 and cfg.model.dtype == "bfloat16"


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="learning_rat"):
        compose(["trainer.learning_rat=0.1"])
    # Hydra lets `+key=` add keys to structured nodes; `validate` (run by the entry points) refuses.
    for override in ["+trainer.learning_rat=0.1", "+task.num_prompts=3", "+model.foo=1"]:
        cfg = compose([override])
        with pytest.raises(ValueError, match=override.split(".")[1].split("=")[0]):
            validate(cfg, construct_trl=False)
    validate(compose(), construct_trl=False)


def test_wrong_type_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="max_steps"):  # trainer: GRPOConfig's field types
        validate(compose(["trainer.max_steps=many"]), construct_trl=False)
    with pytest.raises((ConfigCompositionException, ValidationError), match="source"):
        compose(["model.source=gguf"])


def test_unknown_group_option_is_an_error_naming_it():
    with pytest.raises(HydraException, match="qwen2.5-70b"):
        compose(["model=qwen2.5-70b"])


def test_typo_inside_a_yaml_file_is_an_error(tmp_path, monkeypatch):
    """A misspelt key in a group file (not only on the command line) fails at compose time."""
    import shutil

    import rvpo_repro.config as config

    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf)
    bad = conf / "model" / "tiny.yaml"
    bad.write_text(bad.read_text() + "per_device_batch: 4\n")
    monkeypatch.setattr(config, "conf_dir", lambda: Path(conf))
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="per_device_batch"):
        config.compose(["model=tiny"])


def test_evaluate_config_shares_the_groups_and_needs_a_checkpoint():
    from omegaconf.errors import MissingMandatoryValue

    from rvpo_repro.schemas import EvaluateConfig

    cfg = compose(["experiment=toy", "checkpoint=/some/model"], config_name="evaluate")
    assert OmegaConf.get_type(cfg) is EvaluateConfig
    assert cfg.checkpoint == "/some/model" and cfg.experiment_name == "toy" and cfg.trainer.max_steps == 200
    with pytest.raises(MissingMandatoryValue, match="checkpoint"):
        _ = compose(config_name="evaluate").checkpoint
