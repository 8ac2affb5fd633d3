"""Atomic writes stay in the target's directory; download-once downloads once and checks digests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rvpo_repro import io


def test_atomic_write_renames_within_the_target_directory(tmp_path, monkeypatch):
    """A temp file elsewhere (/tmp) would make the final rename a cross-file-system copy."""
    moves = []
    real = os.replace
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (moves.append((Path(src), Path(dst))), real(src, dst))
    )
    target = tmp_path / "sub" / "result.json"
    target.parent.mkdir()
    io.atomic_write(target, "new\n")
    assert target.read_text() == "new\n" and len(moves) == 1
    src, dst = moves[0]
    assert src.parent == dst.parent == target.parent and src != dst
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]  # no temp file left


def test_jsonl_round_trip_with_nan(tmp_path):
    path = io.write_jsonl(tmp_path / "x.jsonl", [{"a": float("nan"), "b": [1, 2]}, {"a": 1.5}])
    assert io.read_jsonl(path) == [{"a": None, "b": [1, 2]}, {"a": 1.5}]
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:2: malformed JSON"):
        io.read_jsonl(path)


def test_download_once(tmp_path):
    src = tmp_path / "remote.txt"
    src.write_text("payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    dest = tmp_path / "cache" / "file.txt"
    assert io.download_once(src.as_uri(), dest, sha256=digest).read_text() == "payload"
    src.unlink()  # a second call reads the cached copy and never the URL
    assert io.download_once(src.as_uri(), dest, sha256=digest) == dest
    with pytest.raises(ValueError, match=f"sha256 {digest}, expected 00"):
        io.download_once(src.as_uri(), dest, sha256="00" * 32)
    with pytest.raises(ConnectionError, match=f"place it at {tmp_path / 'other'}"):
        io.download_once(src.as_uri(), tmp_path / "other")
    assert not (tmp_path / "other").exists()
