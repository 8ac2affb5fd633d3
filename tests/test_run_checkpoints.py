"""Checkpoints are complete or never resumed from; the final model is published whole."""

from __future__ import annotations

import json

from rvpo_repro.run.checkpoints import (
    SEAL,
    newest_complete,
    publish_model,
    seal,
    trained_model,
    why_incomplete,
)


def _checkpoint(root, step: int, sealed: bool = True):
    path = root / "checkpoints" / f"checkpoint-{step}"
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w" * (100 + step))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "sub" / "rng_state.pth").write_bytes(b"r" * 7)
    if sealed:
        seal(path)
    return path


def test_a_sealed_checkpoint_is_complete_until_a_file_changes_size_or_goes(tmp_path):
    path = _checkpoint(tmp_path, 5)
    assert why_incomplete(path) is None
    sealed = json.loads((path / SEAL).read_text())["files"]
    state = len(json.dumps({"global_step": 5}))
    assert sealed == {"model.safetensors": 105, "sub/rng_state.pth": 7, "trainer_state.json": state}
    with (path / "model.safetensors").open("r+b") as f:
        f.truncate(50)
    assert why_incomplete(path) == "model.safetensors has 50 bytes, 105 when saved"
    (path / "model.safetensors").unlink()
    assert why_incomplete(path) == "model.safetensors is missing"
    (path / SEAL).write_text("{not json")
    assert why_incomplete(path) == f"unreadable {SEAL}"
    (path / SEAL).unlink()
    assert why_incomplete(path) == "no completion seal (the save was interrupted)"


def test_the_newest_complete_checkpoint_is_chosen_and_newer_broken_ones_are_moved_aside(tmp_path, caplog):
    _checkpoint(tmp_path, 5)
    ten = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 15, sealed=False)  # killed while saving
    (ten / "trainer_state.json").write_text("{}")  # changed after its seal
    _checkpoint(tmp_path, 2)  # older: never looked at, never moved
    with caplog.at_level("WARNING"):
        found = newest_complete(tmp_path / "checkpoints", tmp_path)
    assert found == str(tmp_path / "checkpoints" / "checkpoint-5")
    assert sorted(p.name for p in (tmp_path / "broken").iterdir()) == ["checkpoint-10", "checkpoint-15"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-5"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "checkpoint-15: no completion seal" in lines[0]
    state = len(json.dumps({"global_step": 10}))
    assert f"checkpoint-10: trainer_state.json has 2 bytes, {state} when saved" in lines[1]
    assert (tmp_path / "broken" / "checkpoint-10" / "model.safetensors").read_bytes() == b"w" * 110  # kept


def test_a_broken_checkpoint_set_aside_twice_keeps_both_copies(tmp_path):
    for _ in range(2):
        _checkpoint(tmp_path, 3, sealed=False)
        assert newest_complete(tmp_path / "checkpoints", tmp_path) is None
    assert sorted(p.name for p in (tmp_path / "broken").iterdir()) == ["checkpoint-3", "checkpoint-3.1"]


def test_no_checkpoints_folder_means_a_fresh_start(tmp_path):
    assert newest_complete(tmp_path / "checkpoints", tmp_path) is None
    assert not (tmp_path / "broken").exists()


def test_the_final_model_is_published_with_its_summary_in_one_rename(tmp_path):
    partial, final = tmp_path / "model.partial", tmp_path / "model"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"x" * 10)
    assert trained_model(tmp_path) is None
    publish_model(partial, final, {"global_step": 6})
    assert not partial.exists() and trained_model(tmp_path) == {"global_step": 6}
    (final / "model.safetensors").write_bytes(b"x")  # damaged after publication
    assert trained_model(tmp_path) is None


def test_an_unsealed_final_model_is_moved_aside_not_deleted(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.bin").write_bytes(b"old")
    partial = tmp_path / "model.partial"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"new")
    publish_model(partial, tmp_path / "model", {"global_step": 1})
    assert (tmp_path / "broken" / "model" / "old.bin").read_bytes() == b"old"
    assert trained_model(tmp_path) == {"global_step": 1}
