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
    assert io.download_once(src.as_uri(), dest, digest=f"sha256:{digest}").read_text() == "payload"
    src.unlink()  # a second call reads the cached copy and never the URL
    assert io.download_once(src.as_uri(), dest, digest=f"sha256:{digest}") == dest
    with pytest.raises(ValueError, match=f"sha256 {digest}, expected 00"):
        io.download_once(src.as_uri(), dest, digest="sha256:" + "00" * 32)
    with pytest.raises(ConnectionError, match=f"place it at {tmp_path / 'other'}"):
        io.download_once(src.as_uri(), tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_digests_match_git_and_refuse_in_one_line():
    # git's own ids of these contents (`printf 'hello\n' | git hash-object --stdin`; the empty blob)
    assert io.DIGESTS["git-blob-sha1"](b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert io.DIGESTS["git-blob-sha1"](b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    io.check_digest(b"hello\n", "git-blob-sha1:CE013625030BA8DBA906F756967F9E9CA394464A", "x")  # any case
    io.check_digest(b"anything", None, "x")  # no pin, no check
    with pytest.raises(ValueError, match=r"^x: git-blob-sha1 ce0136\w+, expected 00+$"):
        io.check_digest(b"hello\n", "git-blob-sha1:" + "00" * 20, "x")
    for bad in ("md5:00", "sha256:", "sha256:xyz", "00" * 32):
        with pytest.raises(
            ValueError, match=r"expected '<algo>:<hex>' with algo one of \['git-blob-sha1', 'sha256'\]"
        ):
            io.parse_digest(bad)
