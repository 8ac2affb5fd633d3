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
            if not path.read_bytes().strip():  # datasets says only "StopIteration" of an empty file
                raise TaskInputError(f"{key}={source!r}: the file is empty; expected {_EXPECTED[fmt]}")
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


_EXPECTED = {"json": "JSON rows (one object a line, or a list of objects)", "parquet": "a Parquet table",
             "csv": "a header line and rows"}  # fmt: skip


def _kind(value: Any) -> str | None:
    """The JSON kind of a value (ints and floats are one kind, numbers); None for a null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "text", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def check_columns_agree(rows: list[dict], where: str) -> None:
    """Every row has the same columns and each column one JSON kind (nulls aside): TaskInputError
    naming the source, the row and the column otherwise. Arrow, which holds the data for TRL,
    would refuse it with a long error naming none of them."""
    first: dict[str, tuple[int, str]] = {}
    columns = set(rows[0]) if rows else set()
    for i, row in enumerate(rows):
        name = f"row {i} (id {row.get('id')!r})"
        if missing := sorted(columns - row.keys()):
            raise TaskInputError(f"{where}: {name} has no column {missing[0]!r}, which row 0 has")
        if extra := sorted(row.keys() - columns):
            raise TaskInputError(f"{where}: {name} has a column {extra[0]!r} that row 0 lacks")
        for col, value in row.items():
            kind = _kind(value)
            if kind is None or col == "prompt":
                continue
            seen = first.setdefault(col, (i, kind))
            if seen[1] != kind:
                raise TaskInputError(
                    f"{where}: column {col!r} is {kind} in {name} but {seen[1]} in row {seen[0]}; "
                    "one kind per column (write every value of it the same way)"
                )


def to_dataset(rows: list[dict], where: str) -> Any:
    """`datasets.Dataset` of `rows`, after `check_columns_agree`; any other refusal in one line."""
    from datasets import Dataset

    check_columns_agree(rows, where)
    try:
        return Dataset.from_list(rows)
    except Exception as exc:  # pyarrow's ArrowTypeError / ArrowInvalid: a value Arrow cannot hold
        text = str(exc).strip().splitlines()
        raise TaskInputError(
            f"{where}: cannot be stored as a table: {type(exc).__name__}: {text[0] if text else ''}"
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
    check_columns_agree(out, where)  # here, with the rows numbered as in the source
    return out
