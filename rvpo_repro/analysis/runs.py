"""Load the runs of one experiment (results/runs/<experiment>/<run-id>/) for the report.

A run directory is
- finished: it holds result.json (written last and atomically by the run);
- failed: it holds a file `FAILED` (its text, if any, is the reason), or a `status.json` /
  result.json whose `status` is "failed";
- unfinished: anything else (a run in progress, or one killed before its record was sealed).

Rows are grouped by (model, task, method), where the method is the aggregator's label
(rvpo_repro.analysis.labels). Runs of one group must share one config up to the seed: the
"config key" is the config hash of the recorded config with the seed taken out: the top-level
`seed`, and every key named `seed` or `*_seed` that equals the run's seed in every run of the
experiment (a `${seed}` interpolation); one fixed at a value (`task.data_seed: 0`) is a setting. Two config keys under one label are an error naming a run of each and the keys
that differ, unless `split_configs` asks for one row per config (the label then gains the
differing settings). A finished record lacking a metric that other records of its task have is an
error naming the file and the metric.

A record the report cannot read faithfully is refused (`RecordError`, one line naming the file and
the field; `rvpo-report` exits 2), never dropped or guessed at (`check_record`): a schema version
this reader does not know, a metric value or stderr that is not a number (or null, shown as "no
value"), a `config_hash` that is not the hash of the recorded config (the config, its aggregator
say, was edited after the run), or a run id that does not name that config.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rvpo_repro.analysis.labels import method_label, risk_of
from rvpo_repro.run.record import (
    EXAMPLES_FILE,
    HASH_EXCLUDED,
    RESULT_FILE,
    SCHEMA_VERSION,
    RunRecord,
    config_hash,
    load_examples,
    load_record,
    run_id,
)

_UNHASHED_TOP = {path[0] for path in HASH_EXCLUDED if len(path) == 1}  # never part of the hash
KEY_COLUMNS = {
    "experiment", "run_id", "run_dir", "model", "task", "aggregator", "seed", "config_hash", "git_commit",
    "method", "risk", "schedule", "config_key", "wandb_url", "wandb_dir",
}  # fmt: skip
FAILED_FILE = "FAILED"
STATUS_FILE = "status.json"


class ConfigConflictError(ValueError):
    """Runs under one method label were trained with different configs (beyond the seed)."""


class RecordError(ValueError):
    """A record the report cannot read faithfully; the message names its file and field."""


class MissingMetricError(RecordError):
    """A finished record lacks a metric that the report needs."""


class RecordMismatchError(RecordError):
    """A record's metric is not what its own per-example scores give."""


KNOWN_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


def _number_or_null(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def check_record(run_dir: Path, rec: RunRecord) -> None:
    """RecordError naming the file and field when `rec` cannot be read faithfully (module docstring)."""
    f = Path(run_dir) / RESULT_FILE
    if type(rec.schema_version) is not int or rec.schema_version not in KNOWN_SCHEMA_VERSIONS:
        raise RecordError(
            f"{f}: field 'schema_version' = {rec.schema_version!r}: this reader knows version(s) "
            f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}; upgrade rvpo-repro or rewrite the record"
        )
    for name, m in rec.metrics.items():
        for part in ("value", "stderr"):
            if not _number_or_null(m.get(part)):
                raise RecordError(
                    f"{f}: field 'metrics.{name}.{part}' = {m[part]!r} ({type(m[part]).__name__}): "
                    "expected a number or null"
                )
    try:
        hashes = config_hashes(rec.config)
        named = run_id(rec.config)
    except Exception as exc:  # noqa: BLE001 (an edited config may miss keys or fail to resolve)
        raise RecordError(f"{f}: field 'config' cannot be hashed ({type(exc).__name__}: {exc})") from exc
    if rec.config_hash not in hashes:
        raise RecordError(
            f"{f}: field 'config_hash' = {rec.config_hash!r} but the recorded config hashes to "
            f"{hashes[0]!r}: the config (its aggregator, say) or the hash was edited after the run; "
            "rerun it or restore the record"
        )
    named = named[:-8] + rec.config_hash[:8]  # `{model}-{task}-{aggregator}-s{seed}-{hash8}`
    if named != rec.run_id:
        raise RecordError(
            f"{f}: field 'run_id' = {rec.run_id!r} but the recorded config names the run {named!r}: "
            "the record was edited or copied from another run"
        )


_MAX_READINGS = 64


def config_hashes(config: dict) -> list[str]:
    """The config hashes a recorded (resolved) config may have been written under, the literal
    reading first. The run hashed its config before resolving, with `paths.*` masked
    (record.config_hash), so a kept value that interpolated a path (`${paths.cache_dir}/judge/x`)
    is recorded resolved ("./.cache/judge/x"): each string starting with a `paths` value is read
    both as typed and as that interpolation."""
    paths = {k: v for k, v in (config.get("paths") or {}).items() if isinstance(v, str) and v}
    leaves: list[tuple[tuple, list[str]]] = []

    def visit(node, at: tuple) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not (at == () and k in _UNHASHED_TOP):
                    visit(v, (*at, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, (*at, i))
        elif isinstance(node, str):
            masked = [f"<paths.{k}>{node[len(v):]}" for k, v in paths.items()
                      if node == v or node.startswith(v.rstrip("/") + "/")]  # fmt: skip
            if masked:
                leaves.append((at, [node, *masked]))

    visit(config, ())
    out = [config_hash(config)]
    for choice in itertools.islice(itertools.product(*(opts for _, opts in leaves)), 1, _MAX_READINGS):
        edited = copy.deepcopy(config)
        for (at, _), value in zip(leaves, choice, strict=True):
            node = edited
            for key in at[:-1]:
                node = node[key]
            node[at[-1]] = value
        out.append(config_hash(edited))
    return out


def read_record(run_dir: Path) -> RunRecord:
    """The record of a finished run, checked (`check_record`); RecordError for a malformed file."""
    try:
        rec = load_record(run_dir)
    except ValueError as exc:
        raise RecordError(str(exc)) from exc
    check_record(run_dir, rec)
    return rec


@dataclass
class Runs:
    """The finished runs of one experiment: `df` (one row per run: keys, method, config key, one
    column per metric and `<metric>_stderr`), the metric names, each run's record keyed by run_dir,
    and `status`: the run directories that are not finished (state, run id, seed, reason)."""

    experiment: str
    df: pd.DataFrame
    metrics: list[str]
    records: dict[str, RunRecord] = field(repr=False)
    status: list[dict] = field(default_factory=list)
    source: Path | None = None  # the results dir the runs came from


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a runs frame (not keys, not `<metric>_stderr`)."""
    return [
        c
        for c in df.columns
        if c not in KEY_COLUMNS and not c.endswith("_stderr") and df[c].dtype.kind in "fi"
    ]


def record_dirs(results_dir: str | Path, experiment: str | None = None) -> list[Path]:
    """Run directories with a finished record (result.json), sorted."""
    root = Path(results_dir) / "runs"
    pattern = f"{experiment}/*/{RESULT_FILE}" if experiment else f"*/*/{RESULT_FILE}"
    return sorted(p.parent for p in root.glob(pattern))


def run_state(run_dir: Path) -> tuple[str, str]:
    """("finished" | "failed" | "unfinished", reason) of one run directory (module docstring)."""
    if (run_dir / FAILED_FILE).is_file():
        return "failed", (run_dir / FAILED_FILE).read_text(encoding="utf-8", errors="replace").strip()
    for name in (STATUS_FILE, RESULT_FILE):
        if (run_dir / name).is_file():
            try:
                data = json.loads((run_dir / name).read_text(encoding="utf-8"))
            except ValueError:
                data = {}
            if isinstance(data, dict) and data.get("status") == "failed":
                return "failed", str(data.get("reason") or data.get("error") or "")
    if (run_dir / RESULT_FILE).is_file():
        return "finished", ""
    return "unfinished", "no result.json"


def _id_seed(run_id: str) -> int | None:
    """The seed in `{model}-{task}-{aggregator}-s{seed}-{hash8}` (records.run_id), if it parses."""
    parts = run_id.rsplit("-", 2)
    return int(parts[1][1:]) if len(parts) == 3 and parts[1][1:].isdigit() else None


def _seed_leaves(node, path: tuple = ()) -> dict[tuple, object]:
    """Every leaf named `seed` or `*_seed` below the top level: path -> value."""
    out = {}
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, dict):
                out |= _seed_leaves(v, (*path, k))
            elif path and (k == "seed" or k.endswith("_seed")):
                out[(*path, k)] = v
    return out


def seed_followers(recs: list[RunRecord]) -> set[tuple]:
    """Paths of the `*seed` keys that equal the run's seed in every run (`${seed}` interpolations);
    a key fixed at one value (task.data_seed: 0) is a setting and stays in the config key."""
    leaves = [_seed_leaves(r.config) for r in recs]
    paths = set().union(*leaves) if leaves else set()
    return {p for p in paths if all(lv.get(p) == r.seed for lv, r in zip(leaves, recs, strict=True))}


def _without_seed(cfg: dict, followers: set[tuple]) -> dict:
    def mask(node, path):
        if not isinstance(node, dict):
            return node
        return {k: "<seed>" if (*path, k) in followers else mask(v, (*path, k)) for k, v in node.items()}

    return mask({k: v for k, v in cfg.items() if k != "seed"}, ())


def config_key(rec: RunRecord, followers: set[tuple]) -> str:
    """Hash of the record's config without the seed (and its followers): equal for seeds of one config."""
    return config_hash(_without_seed(rec.config, followers))


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, val in node.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): json.dumps(node, sort_keys=True)}


def config_diff(a: RunRecord, b: RunRecord, followers: set[tuple]) -> list[str]:
    """`key: a -> b` for the settings (seed aside) in which two records' configs differ."""
    fa, fb = (_flat(_without_seed(r.config, followers)) for r in (a, b))
    skip = ("logger.", "paths.", "seed")
    return [
        f"{k}: {fa.get(k, '(absent)')} -> {fb.get(k, '(absent)')}"
        for k in sorted(fa.keys() | fb.keys())
        if fa.get(k) != fb.get(k) and not k.startswith(skip)
    ]


def _check_metrics(df: pd.DataFrame, records: dict[str, RunRecord]) -> None:
    for task, g in df.groupby("task"):
        names = {m for d in g.run_dir for m in records[d].metrics}
        for d in g.run_dir:
            if missing := sorted(names - records[d].metrics.keys()):
                other = next(r for r in g.run_dir if missing[0] in records[r].metrics)
                raise MissingMetricError(
                    f"{Path(d) / RESULT_FILE}: metric {missing[0]!r} missing"
                    + (f" (and {missing[1:]})" if missing[1:] else "")
                    + f"; other runs of task {task!r} record it, e.g. {records[other].run_id}"
                )


def _agrees(value: float, mean: float, bounds: tuple) -> bool:
    """`value` is the examples' mean, or that mean clipped to the metric's bounds (HealthBench
    clips its score to [0, 1], as simple-evals does)."""
    candidates = [mean, min(max(mean, 0.0), 1.0)]
    if None not in bounds:
        candidates.append(min(max(mean, bounds[0]), bounds[1]))
    return any(abs(value - c) <= 1e-6 * max(1.0, abs(c)) for c in candidates)


def check_examples(run_dir: Path, rec: RunRecord) -> None:
    """Each metric with a declared example column equals that column's mean (rows without a value
    left out, as the evaluation computes it); RecordMismatchError naming the file otherwise. Checked
    when loading, so a report stops before it writes anything."""
    if not rec.example_columns or not (Path(run_dir) / EXAMPLES_FILE).is_file():
        return
    rows = load_examples(run_dir)
    for name, column in rec.example_columns.items():
        m = rec.metrics.get(name) or {}
        values = [
            r[column] for r in rows if isinstance(r.get(column), int | float) and r[column] == r[column]
        ]
        value = m.get("value")
        if not values or not isinstance(value, int | float) or value != value:
            continue
        mean = math.fsum(values) / len(values)
        if not _agrees(float(value), mean, (m.get("low"), m.get("high"))):
            raise RecordMismatchError(
                f"{Path(run_dir) / RESULT_FILE}: metric {name!r} = {value:.6g} but its examples "
                f"({EXAMPLES_FILE}, column {column!r}, {len(values)} rows) average {mean:.6g}: the record "
                "disagrees with itself; rerun the evaluation (rvpo-eval) or remove the run"
            )


def _split_or_refuse(df: pd.DataFrame, records: dict[str, RunRecord], split_configs: bool) -> None:
    followers = seed_followers(list(records.values()))
    for (model, task, method), g in df.groupby(["model", "task", "method"]):
        keys = list(dict.fromkeys(g.config_key))
        if len(keys) < 2:
            continue
        first = {k: g.run_dir[g.config_key == k].iloc[0] for k in keys}
        if not split_configs:
            a, b = records[first[keys[0]]], records[first[keys[1]]]
            diff = config_diff(a, b, followers)
            raise ConfigConflictError(
                f"{len(keys)} different configs under one label {method!r} ({model}, {task}): run "
                f"{a.run_id} and run {b.run_id} differ in {'; '.join(diff[:5]) or 'their config hash'}"
                ". Pooling them would mix what differs: remove one, or pass --split-configs for one "
                "row per config."
            )
        base = records[first[keys[0]]]
        for k in keys[1:]:
            rows = g.index[g.config_key == k]
            diff = config_diff(base, records[first[k]], followers)
            short = ", ".join(d.split(" -> ")[0].split(":")[0] + "=" + d.split(" -> ")[1] for d in diff[:3])
            df.loc[rows, "method"] = f"{method} [{short or k[:8]}]"


def collect(results_dir: str | Path, experiment: str | None = None, **filters) -> pd.DataFrame:
    """One row per finished run (keys and one column per metric value and `<metric>_stderr`).

    `filters` select rows by column value, e.g. collect(dir, "toy", aggregator="rvpo")."""
    rows = []
    for d in record_dirs(results_dir, experiment):
        rows.append(_row(d, read_record(d)))
    df = pd.DataFrame(rows)
    for key, value in filters.items():
        if key not in df.columns:
            raise ValueError(f"cannot filter on {key!r}; columns: {sorted(df.columns)}")
        df = df[df[key] == value]
    return df.reset_index(drop=True)


def _row(d: Path, rec: RunRecord) -> dict:
    cfg, agg = rec.config, rec.config["aggregator"]
    risk, schedule = risk_of(agg)
    row = {
        "experiment": rec.experiment, "run_id": rec.run_id, "run_dir": str(d),
        "model": cfg["model"]["name"], "task": cfg["task"]["name"], "aggregator": agg["name"],
        "method": method_label(agg), "risk": risk, "schedule": schedule, "seed": rec.seed,
        "config_hash": rec.config_hash,
        "git_commit": (rec.environment.get("git") or {}).get("commit"),
        "wandb_url": ((rec.extra or {}).get("wandb") or {}).get("url"),
        "wandb_dir": ((rec.extra or {}).get("wandb") or {}).get("dir"),  # the local (offline) run folder
    }  # fmt: skip
    for name, m in rec.metrics.items():
        row[name] = m["value"]
        row[f"{name}_stderr"] = m.get("stderr")
    return row


def provenance(experiment: str, rec: RunRecord) -> dict:
    """What a committed table says of one run behind it: id, seed, config hash, git commit, times
    and library versions."""
    return {"experiment": experiment, "run_id": rec.run_id, "seed": rec.seed, "config_hash": rec.config_hash,
            "git_commit": (rec.environment.get("git") or {}).get("commit"),
            "started_at": rec.started_at, "finished_at": rec.finished_at,
            "packages": rec.environment.get("packages", {})}  # fmt: skip


def load_runs(results_dir: str | Path, experiment: str, split_configs: bool = False) -> Runs:
    """The runs of `experiment` under `results_dir`/runs (see the module docstring). Empty df when
    none finished; `status` lists the failed and unfinished ones either way."""
    root = Path(results_dir) / "runs" / experiment
    status, records, rows = [], {}, []
    for d in sorted(p for p in root.glob("*") if p.is_dir()):
        state, reason = run_state(d)
        if state != "finished":
            status.append({"run_id": d.name, "seed": _id_seed(d.name), "state": state, "reason": reason})
            continue
        rec = read_record(d)
        check_examples(d, rec)
        records[str(d)] = rec
        rows.append(_row(d, rec))
    df = pd.DataFrame(rows)
    if df.empty:
        return Runs(experiment, df, [], {}, status, Path(results_dir))
    followers = seed_followers(list(records.values()))
    df["config_key"] = [config_key(records[d], followers) for d in df.run_dir]
    _check_metrics(df, records)
    _split_or_refuse(df, records, split_configs)
    return Runs(experiment, df, metric_columns(df), records, status, Path(results_dir))


def missing_seeds(runs: Runs) -> dict[str, list[int]]:
    """Per `model / task / method`: seeds that another method of the same (model, task) finished
    but this one did not."""
    out = {}
    for (model, task), g in runs.df.groupby(["model", "task"]):
        every = set(g.seed)
        for method, m in g.groupby("method"):
            if lost := sorted(every - set(m.seed)):
                out[f"{model} / {task} / {method}"] = lost
    return out


def examples(run_dir: str | Path) -> pd.DataFrame:
    """Per-example scores of one run, indexed by example id."""
    return pd.DataFrame(load_examples(run_dir)).set_index("id")
