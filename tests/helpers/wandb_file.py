"""Read the config a W&B offline run recorded, from its run-<id>.wandb file (tests only).

The file is a LevelDB-style log (7-byte header, 32 KiB blocks of checksummed chunks) of
`wandb_internal_pb2.Record` messages; wandb 0.31 ships no Python reader for it.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path}: not a W&B run file")
    pos, chunk, out = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # block trailer too short for a header: padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(chunk)
            out.append(rec)
            chunk = b""
    return out


def finished_records(path: Path, timeout: float = 60.0) -> list:
    """The file's records once W&B has written its closing `exit` record.

    `run.finish()` can return before W&B's service has written the file's tail (seen on a
    loaded 2-core machine), so a reader waits for the record that ends every finished run."""
    deadline = time.monotonic() + timeout
    while True:
        recs = records(path)
        if any(rec.WhichOneof("record_type") == "exit" for rec in recs):
            return recs
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {timeout:.0f} s ({len(recs)} records)")
        time.sleep(0.2)


def run_config(path: Path) -> dict:
    """The run's config as W&B would show it: every config update applied in order."""
    config: dict = {}
    for rec in finished_records(path):
        kind = rec.WhichOneof("record_type")
        items = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else []
        for item in items:
            key = item.key or "/".join(item.nested_key)
            config[key] = json.loads(item.value_json)
    return config
