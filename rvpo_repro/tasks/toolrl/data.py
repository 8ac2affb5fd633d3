"""RLLA-4k (ToolRL) data: sources, validation, upstream's split and the prepared parquet.

Sources: `fixture` (generated, offline), a local `rlla_rl.json` / `train.parquet`, a directory
holding either (ToolRL checkout layout), or an http(s) URL (downloaded once, `io.download_once`).
A file source (downloaded or local) is checked against `task.source_digest` when one is set.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from rvpo_repro.io import check_digest, download_once
from rvpo_repro.tasks.base import TaskInputError
from rvpo_repro.tasks.toolrl.fixture import RAW_NAME, fixture_records
from rvpo_repro.tasks.toolrl.rule_rewards import ground_truth_calls

# Upstream's raw file at a fixed commit of github.com/qiancheng0/ToolRL: the head of `main` on
# 2025-10-16 (the file is unchanged since the first commit, 6573565, 2025-04-14). The digest is the
# git blob id that commit's tree records for the file (`git rev-parse <commit>:<path>`); the
# repository snapshot this was read from lacked the 15 MB file's bytes, so no sha256 of them is pinned.
RLLA_COMMIT = "8cee13ec0ca72f0461da372a93a6fd8140dbb840"
RLLA_URL = f"https://raw.githubusercontent.com/qiancheng0/ToolRL/{RLLA_COMMIT}/dataset/rlla_4k_raw/{RAW_NAME}"
RLLA_DIGEST = "git-blob-sha1:1827b67d516cca98f58541c8d218a038d13321e3"
DIGEST_HINT = "(task.source_digest; set it to this file's digest, or null to skip the check)"
# Where a directory source may hold the data (ToolRL's checkout layout first); the prepared split wins.
DIR_LAYOUTS = [f"{d}train.parquet" for d in ("dataset/rlla_4k/", "rlla_4k/", "")] + [
    f"{d}{RAW_NAME}" for d in ("dataset/rlla_4k_raw/", "rlla_4k_raw/", "")
]
# Single-turn BFCL categories (v4 names), non-live then live.


def _check_raw(records: Any, where: str) -> list[dict]:
    if not isinstance(records, list):
        raise ValueError(f"{where}: expected a JSON list of {{instruction, input, output}} records")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: row {i}: expected an object, got {type(rec).__name__}")
        for key in ("instruction", "input", "output"):
            if not isinstance(rec.get(key), str):
                raise ValueError(f"{where}: row {i}: missing or non-string field {key!r}")
        _check_ground_truth(rec["output"], where, i)
    return records


def _check_ground_truth(truth: str, where: str, i: int) -> None:
    try:
        calls = ground_truth_calls(truth)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: row {i}: ground-truth tool call line is not JSON ({exc})") from exc
    for call in calls or []:
        if not isinstance(call, dict) or not isinstance(call.get("parameters"), dict) or "name" not in call:
            raise ValueError(f"{where}: row {i}: ground-truth tool call {call!r} lacks name/parameters")


def split_raw(records: list[dict], test_share: float = 0.02, seed: int = 31415) -> tuple[list, list]:
    """Upstream's split (`dataset/rlla_4k_raw/rlla.py`): `np.random.seed(seed)`, `np.random.shuffle`
    of the record list, then the last int(n * share) records are the test split.

    Reproduced with a private RandomState, which draws the same permutation as the global one
    without moving the caller's stream (checked: shuffling indices equals shuffling the records).
    Deviation: upstream's `records[:-0]` leaves no train data when int(n * share) == 0 (n < 50
    at 2%); here all records are then train.
    """
    import numpy as np

    order = list(range(len(records)))
    np.random.RandomState(seed).shuffle(order)
    shuffled = [records[i] for i in order]
    n_test = int(len(records) * test_share)
    if n_test == 0:
        return shuffled, []
    return shuffled[:-n_test], shuffled[-n_test:]


def _row(split: str, index: int, prompt: list[dict], truth: str) -> dict:
    # Ids follow upstream's extra_info index, so raw-JSON and parquet sources name rows alike.
    return {"id": f"rlla-{split}-{index:04d}", "prompt": prompt, "ground_truth": truth}


def raw_to_rows(records: list[dict], split: str) -> list[dict]:
    def prompt(r: dict) -> list[dict]:
        return [{"role": "system", "content": r["instruction"]}, {"role": "user", "content": r["input"]}]

    return [_row(split, i, prompt(r), r["output"]) for i, r in enumerate(records)]


def read_raw(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    return _check_raw(records, str(path))


def read_prepared(path: Path) -> list[dict]:
    """Rows of a prepared parquet (`prompt`, `reward_model.ground_truth`, `extra_info.index`)."""
    import pyarrow.parquet as pq

    rows = []
    for i, rec in enumerate(pq.read_table(path).to_pylist()):
        prompt, truth = rec.get("prompt"), (rec.get("reward_model") or {}).get("ground_truth")
        if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m for m in prompt):
            raise ValueError(f"{path}: row {i}: `prompt` is not a list of chat messages")
        if not isinstance(truth, str):
            raise ValueError(f"{path}: row {i}: missing `reward_model.ground_truth`")
        _check_ground_truth(truth, str(path), i)
        info = rec.get("extra_info") or {}
        index = info["index"] if info.get("index") is not None else i
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        rows.append(_row(info.get("split") or path.stem, index, messages, truth))
    return rows


def download(url: str, download_dir: str | None, digest: str | None = None) -> Path:
    """Fetch a URL once into `download_dir` (a fresh temporary directory when None), refused when
    its digest differs from `digest` (a cached copy too, so a bad file is never read)."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or RAW_NAME
    target = Path(download_dir or tempfile.mkdtemp(prefix="rlla-")) / name
    try:
        return download_once(url, target, digest=digest)
    except ConnectionError as exc:
        raise ConnectionError(
            f"RLLA-4k: {exc}; or set task.source to its local path (task.source=fixture for the "
            f"generated offline set)."
        ) from exc
    except ValueError as exc:
        raise TaskInputError(f"RLLA-4k {exc} {DIGEST_HINT}") from None


def resolve_source(source: str, download_dir: str | None = None, digest: str | None = None) -> Path:
    """The file a source names: a URL is downloaded, a directory searched for `DIR_LAYOUTS`; the
    file is checked against `digest` ("<algo>:<hex>", None: unchecked)."""
    if source.startswith(("http://", "https://")):
        return download(source, download_dir, digest)
    path = Path(source).expanduser()
    if path.is_dir():
        found = [path / rel for rel in DIR_LAYOUTS if (path / rel).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: holds none of {DIR_LAYOUTS}")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"RLLA source {source!r} does not exist ({RAW_NAME}, a parquet or a dir)")
    try:
        check_digest(path.read_bytes(), digest, f"{path}")
    except ValueError as exc:
        raise TaskInputError(f"RLLA-4k {exc} {DIGEST_HINT}") from None
    return path


def load_rlla(cfg: Any, download_dir: str | None = None) -> tuple[list[dict], list[dict]]:
    """(train rows, test rows) as {"id", "prompt", "ground_truth"} from a `ToolRLConfig`; a parquet
    source has no test rows. A file source must have `cfg.source_digest` (None: any file).
    A URL is cached in `cfg.download_dir`, else in `download_dir`, else a temporary directory."""
    if cfg.source == "fixture":
        records = fixture_records(cfg.fixture_examples, short_prompt=cfg.fixture_short_prompt)
    else:
        path = resolve_source(cfg.source, cfg.download_dir or download_dir, cfg.source_digest)
        if path.suffix == ".parquet":
            return read_prepared(path), []
        records = read_raw(path)
    train, test = split_raw(records, cfg.test_share, cfg.split_seed)
    return raw_to_rows(train, "train"), raw_to_rows(test, "test")


def write_prepared_split(
    records: list[dict], out_dir: str | Path, test_share: float = 0.02, seed: int = 31415
) -> tuple[Path, Path]:
    """Upstream's `rlla.py`: split, then train/test parquet with prompt, reward_model and extra_info."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, part in zip(("train", "test"), split_raw(records, test_share, seed), strict=True):
        rows = [
            {"data_source": "rlla", "prompt": row["prompt"], "ability": "math"}
            | {"reward_model": {"style": "rule", "ground_truth": r["output"]}}
            | {"extra_info": {"split": split, "index": i, **r}}
            for i, (r, row) in enumerate(zip(part, raw_to_rows(part, split), strict=True))
        ]
        pq.write_table(pa.Table.from_pylist(rows), out / f"{split}.parquet")
        paths.append(out / f"{split}.parquet")
    return paths[0], paths[1]
