"""The run record: one directory per train-then-evaluate run.

Layout: `<results_dir>/runs/<experiment>/<run_id>/` holds `examples.jsonl` (one row per eval
example) and `result.json` (config, versions, git state, seed, metrics). `result.json` is written
last and atomically, so its presence means the run finished; a directory without it is a run to
resume or restart.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from rvpo_repro.io import atomic_write as _atomic_write
from rvpo_repro.io import dumps as _dumps
from rvpo_repro.io import jsonable as _jsonable
from rvpo_repro.io import read_jsonl
from rvpo_repro.run.provenance import environment_info, redact

RESULT_FILE = "result.json"
EXAMPLES_FILE = "examples.jsonl"
LOG_HISTORY_FILE = "log_history.jsonl"  # per-step training metrics (TRL's log_history), for curves
SCHEMA_VERSION = 1

# Key paths that do not change what a run computes: where files go, how it is logged, and the
# inference engine used for evaluation (vllm and hf evaluate the same trained policy), and `run`
# (what happens when a judge misses verdicts, how long ranks wait: RunConfig).
HASH_EXCLUDED: tuple[tuple[str, ...], ...] = (
    ("logger",), ("paths",), ("hydra",), ("run",), ("eval", "backend")
)  # fmt: skip
# An evaluation of saved weights (rvpo-eval) is identified by their content digest
# (`checkpoint_sha256`), not by where they lie: new weights at the same path are a new evaluation,
# the same weights moved are not.
DIGESTED_PATHS: tuple[tuple[str, ...], ...] = (("checkpoint",), ("model", "path"))


class RecordConflictError(RuntimeError):
    """A run directory already holds a record that must not be overwritten."""


def _resolve_node(node: DictConfig) -> dict:
    # Key by key rather than to_container on the whole tree, so one unresolvable value
    # (paths.output_dir is `${hydra:...}` outside a Hydra app) stays raw text instead of failing.
    out = {}
    for key in node.keys():
        try:
            value = node[key]
        except MissingMandatoryValue:
            value = "???"  # as OmegaConf.to_container renders a missing value
        except InterpolationResolutionError:
            value = OmegaConf.to_container(node, resolve=False)[key]
        if isinstance(value, DictConfig):
            value = _resolve_node(value)
        elif isinstance(value, ListConfig):
            try:
                value = OmegaConf.to_container(value, resolve=True, enum_to_str=True)
            except InterpolationResolutionError:
                value = OmegaConf.to_container(value, resolve=False, enum_to_str=True)
        out[key] = value
    return out


def resolved_config(cfg: DictConfig | Mapping) -> dict:
    """Plain resolved copy of `cfg` for the record, without Hydra's own `hydra` node (noise).

    Interpolations that cannot be resolved here are kept as their raw text."""
    data = _resolve_node(cfg) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg))
    data.pop("hydra", None)
    return _jsonable(data)


def _mask(node: Any, dotted: str) -> Any:
    if isinstance(node, Mapping):
        return {k: _mask(v, f"{dotted}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v, f"{dotted}.{i}") for i, v in enumerate(node)]
    return f"<{dotted}>"


def _parent(data: dict, path: tuple[str, ...]) -> dict | None:
    for key in path[:-1]:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def config_hash(cfg: DictConfig | Mapping) -> str:
    """First 12 hex digits of sha256 over the resolved config as canonical JSON, without the
    HASH_EXCLUDED keys (and DIGESTED_PATHS when the config has a checkpoint digest); stable across
    key order, and a DictConfig hashes as its plain dict."""
    data = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    data = _jsonable(data)  # a fresh plain copy
    excluded = HASH_EXCLUDED + (DIGESTED_PATHS if data.get("checkpoint_sha256") else ())
    # Excluded leaves become placeholders BEFORE resolving: they never resolve (${hydra:...}
    # fails outside an app), and a kept key that interpolates one (cache_path: ${paths.cache_dir}/x)
    # hashes the same wherever the paths point. Then the excluded keys are dropped.
    for path in excluded:
        if (parent := _parent(data, path)) is not None and path[-1] in parent:
            parent[path[-1]] = _mask(parent[path[-1]], ".".join(path))
    data = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    for path in excluded:
        if (parent := _parent(data, path)) is not None:
            parent.pop(path[-1], None)
    canonical = json.dumps(_jsonable(data), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _select(cfg: DictConfig | Mapping, dotted: str) -> Any:
    node: Any = cfg
    for key in dotted.split("."):
        if not isinstance(node, Mapping | DictConfig) or key not in node:
            raise ValueError(f"config has no `{dotted}`, needed for the run id / run dir")
        node = node[key]
    return node


def _safe(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text))


def run_id(cfg: DictConfig | Mapping) -> str:
    """`{model}-{task}-{aggregator}-s{seed}-{hash8}`: readable, unique per config, path-safe."""
    parts = [_select(cfg, k) for k in ("model.name", "task.name", "aggregator.name")]
    return "-".join(_safe(p) for p in parts) + f"-s{_safe(_select(cfg, 'seed'))}-{config_hash(cfg)[:8]}"


def run_dir(cfg: DictConfig | Mapping) -> Path:
    """`<paths.results_dir>/runs/<experiment_name>/<run_id>`."""
    from rvpo_repro.config import experiment_dirname

    experiment = _safe(experiment_dirname(_select(cfg, "experiment_name")))
    return Path(_select(cfg, "paths.results_dir")) / "runs" / experiment / run_id(cfg)


def utc_now() -> str:
    """Current time, ISO 8601 UTC (e.g. 2025-01-31T12:00:00+00:00)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """What result.json holds: one finished train-then-evaluate run."""

    experiment: str
    run_id: str
    config_hash: str
    seed: int
    config: dict  # resolved and redacted
    environment: dict
    started_at: str
    finished_at: str
    metrics: dict[str, dict]  # name -> metric(...)
    extra: dict = field(default_factory=dict)  # task-specific: training summary, wall time, ...
    primary_metric: str | None = None  # the metric the task's report tests first
    example_columns: dict[str, str] = field(default_factory=dict)  # metric -> examples.jsonl column
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return _dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> RunRecord:
        names = {f.name for f in fields(cls)}
        optional = ("extra", "schema_version", "primary_metric", "example_columns")
        required = {f.name for f in fields(cls) if f.name not in optional}
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if missing := sorted(required - data.keys()):
            raise ValueError(f"{source}: missing fields {missing}")
        if unknown := sorted(data.keys() - names):
            raise ValueError(f"{source}: unknown fields {unknown}; expected {sorted(names)}")
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or not all(
            isinstance(m, dict) and "value" in m for m in metrics.values()
        ):
            raise ValueError(
                f"{source}: 'metrics' must map names to {{'value': ...}} objects, got {metrics!r}"
            )
        return cls(**data)


def new_record(
    cfg, metrics: dict, started_at: str, finished_at=None, extra=None, environment=None
) -> RunRecord:
    """Build the RunRecord of `cfg` (hash, id, redacted resolved config, environment)."""
    return RunRecord(
        experiment=str(_select(cfg, "experiment_name")),
        run_id=run_id(cfg),
        config_hash=config_hash(cfg),
        seed=int(_select(cfg, "seed")),
        config=redact(resolved_config(cfg)),
        environment=environment if environment is not None else environment_info(),
        started_at=started_at,
        finished_at=finished_at or utc_now(),
        metrics=dict(metrics),
        extra=dict(extra or {}),
    )


def _encode_examples(examples: list[dict]) -> str:
    lines, seen = [], set()
    for i, row in enumerate(examples):
        if not isinstance(row, Mapping):
            raise ValueError(f"example {i}: expected a dict, got {type(row).__name__}")
        if "id" not in row:
            raise ValueError(f"example {i}: missing key 'id' (keys: {sorted(map(str, row))})")
        key = json.dumps(_jsonable(row["id"]), sort_keys=True, default=repr)
        if key in seen:
            raise ValueError(f"example {i}: duplicate id {row['id']!r}")
        seen.add(key)
        try:
            lines.append(_dumps(row) + "\n")
        except (TypeError, ValueError) as e:
            raise ValueError(f"example {i} (id {row['id']!r}) is not JSON-serialisable: {e}") from e
    return "".join(lines)


def write_record(run_dir: str | Path, record: RunRecord, examples: list[dict], overwrite=False) -> Path:
    """Write examples.jsonl, then result.json (each atomic); returns the result.json path.

    Raises RecordConflictError if result.json exists with another config hash, or with the same
    hash unless `overwrite`. Examples need a unique "id"; NaN/inf become null.
    """
    run_dir = Path(run_dir)
    result = run_dir / RESULT_FILE
    if result.exists():
        old = load_record(result).config_hash
        if old != record.config_hash:
            raise RecordConflictError(f"{result} holds config hash {old}, not {record.config_hash}")
        if not overwrite:
            raise RecordConflictError(f"{result} already holds this finished run; pass overwrite=True")
    body = _encode_examples(examples)  # validate everything before touching the directory
    text = record.to_json() + "\n"
    run_dir.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)  # while rewriting, the run reads as unfinished
    _atomic_write(run_dir / EXAMPLES_FILE, body)
    _atomic_write(result, text)
    return result


def _file(path: str | Path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def load_record(path: str | Path) -> RunRecord:
    """Load a RunRecord from a run dir or a result.json file."""
    file = _file(path, RESULT_FILE)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}:{e.lineno}: malformed JSON: {e.msg}") from e
    return RunRecord.from_dict(data, source=str(file))


def load_examples(path: str | Path) -> list[dict]:
    """Load the per-example rows from a run dir or an examples.jsonl file."""
    return read_jsonl(_file(path, EXAMPLES_FILE))


def load_log_history(path: str | Path) -> list[dict]:
    """Per-step training metrics of a run (empty when the run kept none)."""
    file = _file(path, LOG_HISTORY_FILE)
    return read_jsonl(file) if file.exists() else []


def find_finished(run_dir: str | Path, cfg_hash: str) -> RunRecord | None:
    """The finished record in `run_dir` with hash `cfg_hash`; None if there is no result.json.

    The whole 12-digit hash is compared: run ids carry only its first 8 digits, so two configs can
    share a directory. Raises RecordConflictError if result.json holds another hash (such a
    collision, or a hand-edited file), ValueError if result.json is malformed.
    """
    result = Path(run_dir) / RESULT_FILE
    if not result.exists():
        return None
    record = load_record(result)
    if record.config_hash != cfg_hash:
        raise RecordConflictError(f"{result} holds config hash {record.config_hash}, expected {cfg_hash}")
    return record
