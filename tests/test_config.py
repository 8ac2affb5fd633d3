"""Every config file composes against its schema; typos fail at compose time, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from rvpo_repro.config import CONF_DIR, GROUP_SCHEMAS, compose, validate

# hydra, launcher: Hydra's own nodes (tests/test_launchers.py); accelerate: accelerate's files, not a group
NOT_SCHEMA = {"hydra", "experiment", "launcher", "accelerate"}
SCHEMA_GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in NOT_SCHEMA)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


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


def test_hydra_group_composes():
    cfg = compose(return_hydra_config=True)
    assert "${now:" in OmegaConf.to_container(cfg.hydra, resolve=False)["run"]["dir"]


EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose([f"experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=False, throw_on_missing=True)
    if not experiment.endswith("_base"):  # *_base files hold settings shared by a family
        assert cfg.experiment_name == experiment, "an experiment file sets experiment_name to its own name"


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
    shutil.copytree(CONF_DIR, conf)
    bad = conf / "model" / "tiny.yaml"
    bad.write_text(bad.read_text() + "per_device_batch: 4\n")
    monkeypatch.setattr(config, "CONF_DIR", Path(conf))
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="per_device_batch"):
        config.compose(["model=tiny"])


def test_evaluate_config_shares_the_groups_and_needs_a_checkpoint():
    from omegaconf.errors import MissingMandatoryValue

    from rvpo_repro.config import EvaluateConfig

    cfg = compose(["experiment=toy", "checkpoint=/some/model"], config_name="evaluate")
    assert OmegaConf.get_type(cfg) is EvaluateConfig
    assert cfg.checkpoint == "/some/model" and cfg.experiment_name == "toy" and cfg.trainer.max_steps == 200
    with pytest.raises(MissingMandatoryValue, match="checkpoint"):
        _ = compose(config_name="evaluate").checkpoint
