"""Checkpoints are complete or never resumed from; the final model is published whole."""

from __future__ import annotations

import hashlib
import json

from rvpo_repro.run.checkpoints import (
    SEAL,
    checkpoint_digest,
    contents,
    newest_complete,
    publish_model,
    seal,
    sealed_world_size,
    set_aside,
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
    seal_data = json.loads((path / SEAL).read_text())
    state = json.dumps({"global_step": 5}).encode()
    assert seal_data["world_size"] == 1
    assert seal_data["files"] == {
        "model.safetensors": {"bytes": 105, "sha256": hashlib.sha256(b"w" * 105).hexdigest()},
        "sub/rng_state.pth": {"bytes": 7, "sha256": hashlib.sha256(b"r" * 7).hexdigest()},
        "trainer_state.json": {"bytes": len(state), "sha256": hashlib.sha256(state).hexdigest()},
    }
    with (path / "model.safetensors").open("r+b") as f:
        f.truncate(50)
    assert why_incomplete(path) == "model.safetensors has 50 bytes, 105 when saved"
    (path / "model.safetensors").unlink()
    assert why_incomplete(path) == "model.safetensors is missing"
    (path / SEAL).write_text("{not json")
    assert why_incomplete(path).startswith(f"unreadable {SEAL}")
    (path / SEAL).unlink()
    assert why_incomplete(path) == "no completion seal (the save was interrupted)"


def test_a_file_changed_in_place_or_grown_after_its_seal_fails_the_check(tmp_path):
    path = _checkpoint(tmp_path, 5)
    weights = path / "model.safetensors"
    weights.write_bytes(b"v" + b"w" * 104)  # same size, other content
    reason = why_incomplete(path)
    assert reason.startswith("model.safetensors changed after its seal (sha256 ")
    weights.write_bytes(b"w" * 105)
    assert why_incomplete(path) is None  # the sealed content again
    with weights.open("ab") as f:
        f.write(b"w")  # grown: the size alone tells, before any hashing
    assert why_incomplete(path) == "model.safetensors has 106 bytes, 105 when saved"
    weights.write_bytes(b"w" * 105)
    (path / "adapter.bin").write_bytes(b"a")  # a file the seal never saw
    assert why_incomplete(path) == "adapter.bin was not there when sealed"


def test_a_seal_of_sizes_only_is_not_trusted(tmp_path):
    path = _checkpoint(tmp_path, 5, sealed=False)
    (path / SEAL).write_text(json.dumps({"files": {"model.safetensors": 105}}))  # an older release's seal
    assert "without content digests" in why_incomplete(path)


def test_the_checkpoint_digest_follows_the_content_not_the_path(tmp_path):
    a = _checkpoint(tmp_path / "a", 5)
    b = _checkpoint(tmp_path / "b", 5, sealed=False)  # the same files elsewhere, without a seal
    assert checkpoint_digest(a) == checkpoint_digest(b) == checkpoint_digest(b, contents(b))
    assert checkpoint_digest(a).startswith("sha256:") and len(checkpoint_digest(a)) == 7 + 64
    (b / "model.safetensors").write_bytes(b"v" + b"w" * 104)
    assert checkpoint_digest(a) != checkpoint_digest(b)
    (b / "model.safetensors").write_bytes(b"w" * 105)
    (b / "model.safetensors").rename(b / "weights.safetensors")  # names are part of the content
    assert checkpoint_digest(a) != checkpoint_digest(b)


def test_the_seal_records_the_ranks_that_wrote_the_checkpoint(tmp_path):
    path = _checkpoint(tmp_path, 5, sealed=False)
    seal(path, world_size=2)
    assert sealed_world_size(path) == 2 and why_incomplete(path) is None
    assert sealed_world_size(_checkpoint(tmp_path, 6, sealed=False)) is None


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


def test_a_broken_checkpoint_set_aside_three_times_keeps_every_copy(tmp_path):
    for n in range(3):
        path = _checkpoint(tmp_path, 3, sealed=False)
        (path / "which").write_text(str(n))
        assert newest_complete(tmp_path / "checkpoints", tmp_path) is None
    kept = {p.name: (p / "which").read_text() for p in (tmp_path / "broken").iterdir()}
    assert kept == {"checkpoint-3": "0", "checkpoint-3.1": "1", "checkpoint-3.2": "2"}


def test_set_aside_never_moves_onto_an_earlier_copy(tmp_path):
    for n in range(4):
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "n").write_text(str(n))
        set_aside(folder, tmp_path, "test")
    assert sorted((p / "n").read_text() for p in (tmp_path / "broken").iterdir()) == ["0", "1", "2", "3"]


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
