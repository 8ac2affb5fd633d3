"""Checkpoints that are complete or not used: a seal written last, checked before a resume.

transformers writes `checkpoint-N/` file by file, so a run killed while saving (or a full disk)
leaves a directory that looks like a checkpoint and is not one. After every save, once every rank
has written its part, rank 0 writes `rvpo-complete.json` into it: the size and sha256 of every file
there, hashed right after the save while the files are still in the page cache, and the number of
ranks that wrote it (`rvpo_repro.run.resume.ResumableTrainer`, which also rotates old checkpoints
out only then). A resume takes the newest checkpoint whose seal is present and whose files still
have those sizes and digests; each newer one that fails is moved aside to `<run>/broken/` (never
deleted: nothing written is lost), and the reason is logged in one line.

The final model is published the same way, in one step: saved to `model.partial/` with the
training summary beside it, then renamed to `model/` (`publish_model`). `checkpoint_digest` names
a saved model by its content, for records that must not trust a path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

SEAL = "rvpo-complete.json"
TRAINED = "rvpo-train.json"  # in model/: the training summary and log history of the run
BROKEN_DIR = "broken"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SEAL]


def _sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in _files(folder)}


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def contents(folder: str | Path) -> dict[str, dict]:
    """`{relative name: {"bytes": size, "sha256": hex}}` of every file under `folder` but the seal.

    Files are hashed side by side (hashlib releases the GIL): a sharded checkpoint of tens of GB
    is read at the disk's pace, not one core's."""
    folder = Path(folder)
    files = _files(folder)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(file_sha256, files))
    return {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": digest}
        for p, digest in zip(files, digests, strict=True)
    }


def checkpoint_digest(folder: str | Path, files: dict[str, dict] | None = None) -> str:
    """`sha256:<hex>` of a saved model or checkpoint's content: every file's name and sha256 (the
    seal excluded), so the same weights at another path have the same digest. `files`: `contents`
    already computed."""
    files = contents(folder) if files is None else files
    listing = "".join(f"{name}\0{entry['sha256']}\n" for name, entry in sorted(files.items()))
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def seal(folder: str | Path, world_size: int = 1, files: dict[str, dict] | None = None) -> None:
    """Mark `folder` complete: written last, atomically, after every file in it, with each file's
    size and sha256 and the number of ranks that wrote it. `files`: `contents` already known."""
    from rvpo_repro.io import atomic_write

    folder = Path(folder)
    data = {"world_size": world_size, "files": contents(folder) if files is None else files}
    atomic_write(folder / SEAL, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_seal(folder: str | Path) -> dict | None:
    """The seal of `folder` as written by `seal`; None when absent or not one."""
    try:
        data = json.loads((Path(folder) / SEAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)
        for e in files.values()
    ):
        return None
    return data


def why_incomplete(folder: str | Path, files: dict[str, dict] | None = None) -> str | None:
    """None when `folder` is sealed and every sealed file has its size and sha256; else the reason.
    Sizes are compared first (no reading); `files`: `contents(folder)` when already computed."""
    folder = Path(folder)
    if not (folder / SEAL).exists():
        return "no completion seal (the save was interrupted)"
    data = read_seal(folder)
    if data is None:
        return f"unreadable {SEAL} (or one without content digests, from an older release)"
    sealed = data["files"]
    now = _sizes(folder)
    for name, entry in sealed.items():
        if name not in now:
            return f"{name} is missing"
        if now[name] != entry["bytes"]:
            return f"{name} has {now[name]} bytes, {entry['bytes']} when saved"
    if added := sorted(now.keys() - sealed.keys()):
        return f"{added[0]} was not there when sealed"
    files = contents(folder) if files is None else files
    for name, entry in sealed.items():
        if (digest := files[name]["sha256"]) != entry["sha256"]:
            return f"{name} changed after its seal (sha256 {digest[:12]}, {entry['sha256'][:12]} when saved)"
    return None


def sealed_world_size(folder: str | Path) -> int | None:
    """How many ranks wrote the checkpoint `folder` (None: unknown)."""
    data = read_seal(folder)
    return data.get("world_size") if data is not None else None


def _step(path: Path) -> int:
    return int(_STEP.match(path.name).group(1))


def set_aside(folder: Path, run_dir: Path, reason: str) -> Path:
    """Move a broken `folder` under `<run_dir>/broken/` (a rename: no space needed) and log why."""
    dest_root = run_dir / BROKEN_DIR
    dest_root.mkdir(parents=True, exist_ok=True)
    dest, n = dest_root / folder.name, 1
    while dest.exists():
        dest, n = dest_root / f"{folder.name}.{n}", n + 1
    os.replace(folder, dest)
    log.warning("skipping %s: %s; moved to %s", folder, reason, dest)
    return dest


def newest_complete(checkpoints: str | Path, run_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` under `checkpoints`; newer broken ones are set aside."""
    checkpoints, run_dir = Path(checkpoints), Path(run_dir)
    if not checkpoints.is_dir():
        return None
    found = sorted((p for p in checkpoints.iterdir() if p.is_dir() and _STEP.match(p.name)), key=_step)
    for path in reversed(found):
        reason = why_incomplete(path)
        if reason is None:
            return str(path)
        set_aside(path, run_dir, reason)
    return None


def newest_sealed(checkpoints: str | Path) -> Path | None:
    """The newest `checkpoint-N` under `checkpoints` with a seal, unverified (reads no weights): what
    a message names or a failed run keeps; a resume verifies it (`newest_complete`)."""
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return None
    found = [p for p in checkpoints.iterdir() if p.is_dir() and _STEP.match(p.name) and (p / SEAL).exists()]
    return max(found, key=_step, default=None)


def published(run_dir: str | Path) -> bool:
    """Whether `run_dir/model/` was published (sealed), unverified: `trained_model` verifies it."""
    return (Path(run_dir) / "model" / SEAL).exists()


def trained_model(run_dir: str | Path) -> dict | None:
    """The training summary of `run_dir/model/` when the final model was published, else None."""
    path = Path(run_dir) / "model" / TRAINED
    if not path.exists() or why_incomplete(path.parent) is not None:
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def publish_model(partial: Path, final: Path, summary: dict) -> None:
    """Seal `partial` (the saved model and tokenizer) with `summary`, then rename it to `final`."""
    from rvpo_repro.io import atomic_write, dumps

    atomic_write(partial / TRAINED, dumps(summary, indent=1) + "\n")
    seal(partial)
    if final.exists():  # an unsealed model/ left by an interrupted run of an older release
        set_aside(final, final.parent, "the final model has no completion seal")
    os.replace(partial, final)
