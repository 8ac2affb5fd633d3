"""rvpo-eval identifies an evaluation by the content of the weights it evaluates, not their path."""

from __future__ import annotations

import shutil

import pytest

from rvpo_repro.config import ConfigError, compose
from rvpo_repro.evaluate import identify_checkpoint
from rvpo_repro.run import record
from rvpo_repro.run.checkpoints import seal


def _model(folder, weights: bytes = b"w" * 64):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _identified(tmp_path, checkpoint):
    cfg = compose(
        ["experiment=toy_smoke", f"paths.root_dir={tmp_path}", f"checkpoint={checkpoint}"],
        config_name="evaluate",
    )
    identify_checkpoint(cfg)
    cfg.model.path = str(checkpoint.resolve())  # as the job points the model at it
    return cfg


def test_the_same_weights_elsewhere_are_the_same_evaluation_and_new_weights_a_new_one(tmp_path):
    a = _model(tmp_path / "a" / "model")
    first = _identified(tmp_path, a)
    assert first.checkpoint_sha256.startswith("sha256:")
    moved = tmp_path / "b" / "model"
    shutil.copytree(a, moved)
    assert record.config_hash(_identified(tmp_path, moved)) == record.config_hash(first)
    (a / "model.safetensors").write_bytes(b"v" * 64)  # new weights, same path and size
    changed = _identified(tmp_path, a)
    assert record.config_hash(changed) != record.config_hash(first)
    assert record.run_dir(changed) != record.run_dir(first)  # not skipped as finished


def test_a_sealed_checkpoint_changed_after_its_seal_is_refused_in_one_line(tmp_path):
    ckpt = _model(tmp_path / "checkpoint-4")
    seal(ckpt)
    assert _identified(tmp_path, ckpt).checkpoint_sha256
    (ckpt / "model.safetensors").write_bytes(b"v" * 64)
    with pytest.raises(ConfigError) as info:
        _identified(tmp_path, ckpt)
    assert str(info.value).startswith(f"checkpoint={ckpt}: model.safetensors changed after its seal (sha256 ")
    assert str(info.value).endswith("; not evaluated")


def test_a_training_config_still_hashes_its_model_path(tmp_path):
    cfg = compose(["experiment=toy_smoke", f"paths.root_dir={tmp_path}"])
    other = compose(["experiment=toy_smoke", f"paths.root_dir={tmp_path}", "model.path=/elsewhere"])
    assert record.config_hash(cfg) != record.config_hash(other)
