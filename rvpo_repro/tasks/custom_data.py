"""Data of the `custom` task: a hub id or a local JSON/JSONL/Parquet/CSV file or directory, read
with `datasets`, into rows {"id", "prompt" (chat messages), <other columns>}.

A single file is read whole; a directory or hub id is read at the configured split (a directory's
splits come from its file names, e.g. train.jsonl / test.jsonl). Errors name the source, the
column and the row.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rvpo_repro.tasks.base import TaskInputError

FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _looks_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).suffix.lower() in FORMATS


def local_path(source: str) -> Path | None:
    """The local file or directory `source` names; None for a hub id; TaskInputError for a missing file."""
    path = Path(source).expanduser()
    if path.exists():
        return path.resolve()
    if _looks_local(source):
        raise TaskInputError(
            f"data source {source!r}: no such file or directory (working directory {Path.cwd()})"
        )
    return None


def load(source: str, split: str, subset: str | None, cache_dir: str | None, key: str) -> Any:
    """A `datasets.Dataset` from `source` (see the module doc); `key` names the config key in errors."""
    from datasets import load_dataset

    path = local_path(source)
    try:
        if path is not None and path.is_file():
            fmt = FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise TaskInputError(
                    f"{key}={source!r}: unknown file type {path.suffix!r}; expected one of {sorted(FORMATS)}"
                )
            return load_dataset(fmt, data_files=str(path), split="train", cache_dir=cache_dir)
        target = str(path) if path is not None else source
        return load_dataset(target, subset, split=split, cache_dir=cache_dir)
    except TaskInputError:
        raise
    except (
        Exception
    ) as exc:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ArrowInvalid)
        text = str(exc).strip().splitlines()
        raise TaskInputError(
            f"{key}={source!r} (split {split!r}): could not be read: {type(exc).__name__}: {text[0] if text else ''}"
        ) from exc


def content_hash(source: str) -> str | None:
    """sha256 over a local file, or over a directory's files (relative names and contents); None for a hub id."""
    path = local_path(source)
    if path is None:
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def to_messages(value: Any, system_prompt: str | None, where: str) -> list[dict]:
    """A prompt cell -> chat messages: text becomes one user message (after `system_prompt`, if set)."""
    if isinstance(value, str):
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return [*system, {"role": "user", "content": value}]
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value
        )
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise TaskInputError(
        f"{where}: the prompt is {type(value).__name__} {repr(value)[:80]}; expected text or a non-empty "
        f"list of chat messages {{'role': str, 'content': str}}"
    )


def rows(dataset: Any, prompt_column: str, id_column: str | None, system_prompt: str | None,
         split: str, where: str) -> list[dict]:  # fmt: skip
    """Rows with a chat "prompt" and a unique "id" (from `id_column`, an "id" column, or `<split>-<i>`)."""
    columns = list(dataset.column_names)
    if prompt_column not in columns:
        raise TaskInputError(
            f"{where}: no prompt column {prompt_column!r} (task.prompt_column); columns: {columns}"
        )
    if prompt_column != "prompt" and "prompt" in columns:
        raise TaskInputError(
            f"{where}: has a column 'prompt' besides the prompt column {prompt_column!r}; TRL reads 'prompt', "
            f"so rename one of them"
        )
    if id_column is not None and id_column not in columns:
        raise TaskInputError(f"{where}: no id column {id_column!r} (task.id_column); columns: {columns}")
    id_key = id_column or ("id" if "id" in columns else None)
    out, seen = [], {}
    for i, row in enumerate(dataset):
        row = dict(row)
        row["prompt"] = to_messages(row.pop(prompt_column), system_prompt, f"{where}: row {i}")
        ex_id = str(row[id_key]) if id_key else f"{split}-{i:05d}"
        if ex_id in seen:
            raise TaskInputError(
                f"{where}: rows {seen[ex_id]} and {i} share the id {ex_id!r} (column {id_key!r})"
            )
        seen[ex_id] = i
        row["id"] = ex_id
        out.append(row)
    if not out:
        raise TaskInputError(f"{where}: no rows")
    return out
