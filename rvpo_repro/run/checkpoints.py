"""Checkpoints that are complete or not used: a seal written last, checked before a resume.

transformers writes `checkpoint-N/` file by file, so a run killed while saving (or a full disk)
leaves a directory that looks like a checkpoint and is not one. After every save, once every rank
has written its part, rank 0 writes `rvpo-complete.json` into it: the size of every file there
(`rvpo_repro.run.resume.ResumableTrainer`, which also rotates old checkpoints out only then).
A resume takes the newest checkpoint whose seal is present and whose files still have those sizes;
each newer one that fails is moved aside to `<run>/broken/` (never deleted: nothing written is
lost), and the reason is logged in one line.

The final model is published the same way, in one step: saved to `model.partial/` with the
training summary beside it, then renamed to `model/` (`publish_model`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

SEAL = "rvpo-complete.json"
TRAINED = "rvpo-train.json"  # in model/: the training summary and log history of the run
BROKEN_DIR = "broken"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def _sizes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SEAL
    }


def seal(folder: str | Path) -> None:
    """Mark `folder` complete: written last, atomically, after every file in it."""
    from rvpo_repro.io import atomic_write

    folder = Path(folder)
    atomic_write(folder / SEAL, json.dumps({"files": _sizes(folder)}, indent=1, sort_keys=True) + "\n")


def why_incomplete(folder: str | Path) -> str | None:
    """None when `folder` is sealed and every sealed file has its size; else the reason."""
    folder = Path(folder)
    try:
        sealed = json.loads((folder / SEAL).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return "no completion seal (the save was interrupted)"
    except (ValueError, KeyError, TypeError):
        return f"unreadable {SEAL}"
    now = _sizes(folder)
    for name, size in sealed.items():
        if name not in now:
            return f"{name} is missing"
        if now[name] != size:
            return f"{name} has {now[name]} bytes, {size} when saved"
    return None


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
