"""File plumbing, one copy each: atomic writes, JSON Lines, and download-once into a cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """Plain JSON data: enums by name, paths as text, numpy scalars as numbers, NaN/inf as null.

    JSON has no NaN/inf (json.dumps would emit `NaN` tokens that other readers reject); numeric
    checks go through `numbers` to cover numpy scalars."""
    if isinstance(obj, Mapping):
        return {(k.name if isinstance(k, Enum) else str(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Enum | Path):
        return obj.name if isinstance(obj, Enum) else str(obj)
    if isinstance(obj, numbers.Integral) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, numbers.Real) and not isinstance(obj, bool):
        return float(obj) if math.isfinite(obj) else None
    return obj  # anything else makes json.dumps raise TypeError, naming the type


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps of `jsonable(obj)`: strict JSON, UTF-8 kept as is."""
    return json.dumps(jsonable(obj), allow_nan=False, ensure_ascii=False, **kwargs)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to `path` so readers see the old file or the new one, never half of one.

    The temporary file lives in the target's own directory: `os.replace` is atomic only within
    one file system, and a move across file systems is a copy that a crash can cut short."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file follows the umask
        with os.fdopen(
            fd,
            "wb" if isinstance(data, bytes) else "w",
            **({} if isinstance(data, bytes) else {"encoding": "utf-8"}),
        ) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (not possible on every OS)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def write_jsonl(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """Write rows as JSON Lines, atomically (non-finite floats become null)."""
    return atomic_write(path, "".join(dumps(row) + "\n" for row in rows))


def read_jsonl(file: str | Path, required: Sequence[str] = ()) -> list[dict]:
    """JSON Lines -> dicts, with errors naming the file and line (and `required` keys missing)."""
    file = Path(file)
    rows = []
    with file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{file}:{lineno}: malformed JSON: {e.msg}") from e
            if not isinstance(row, dict):
                raise ValueError(f"{file}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if missing := [k for k in required if k not in row]:
                raise ValueError(
                    f"{file}:{lineno}: record lacks field(s) {missing}; expected {list(required)}"
                )
            rows.append(row)
    return rows


def _git_blob_sha1(data: bytes) -> str:
    # git's object id of a file: SHA-1 over "blob <size>\0" + bytes (`git rev-parse <commit>:<path>`)
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


# Content digests a pin may name, "<algo>:<hex>". git-blob-sha1 pins a file by the id its commit's
# tree records, for files whose bytes could not be hashed otherwise.
DIGESTS = {"sha256": lambda data: hashlib.sha256(data).hexdigest(), "git-blob-sha1": _git_blob_sha1}


def parse_digest(pin: str) -> tuple[str, str]:
    """("algo", "hex") of a pin "<algo>:<hex>"; ValueError naming the pin when it is not one."""
    algo, _, want = pin.partition(":")
    if algo not in DIGESTS or not want or any(c not in "0123456789abcdef" for c in want.lower()):
        raise ValueError(f"digest {pin!r}: expected '<algo>:<hex>' with algo one of {sorted(DIGESTS)}")
    return algo, want.lower()


def check_digest(data: bytes, pin: str | None, what: str) -> None:
    """Refuse `data` whose digest differs from `pin` ("<algo>:<hex>"; None: no check), in one line
    naming `what`, the algorithm, both values."""
    if pin is None:
        return
    algo, want = parse_digest(pin)
    if (got := DIGESTS[algo](data)) != want:
        raise ValueError(f"{what}: {algo} {got}, expected {want}")


def download_once(url: str, dest: str | Path, digest: str | None = None, timeout: float = 60.0) -> Path:
    """`dest`, downloaded from `url` the first time (atomically, so a cut-off download leaves nothing).

    With `digest` ("sha256:<hex>" or another of DIGESTS), a download (or an existing file) whose
    digest differs is refused, naming both. Offline, the error says where to put the file by hand."""
    dest = Path(dest)
    if dest.exists():
        check_digest(dest.read_bytes(), digest, str(dest))
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConnectionError(
            f"could not download {url}: {reason}. This machine may be offline: download the file "
            f"elsewhere and place it at {dest}"
        ) from err
    check_digest(data, digest, f"download of {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(dest, data)
