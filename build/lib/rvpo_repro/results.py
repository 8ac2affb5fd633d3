"""Collect run records (results/runs/<experiment>/<run-id>/) into pandas DataFrames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rvpo_repro.records import load_examples, load_record

KEY_COLUMNS = {
    "experiment",
    "run_id",
    "run_dir",
    "model",
    "task",
    "aggregator",
    "seed",
    "config_hash",
    "git_commit",
}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a `collect` frame (not keys, not `<metric>_stderr`)."""
    return [
        c
        for c in df.columns
        if c not in KEY_COLUMNS and not c.endswith("_stderr") and df[c].dtype.kind in "fi"
    ]


def record_dirs(results_dir: str | Path, experiment: str | None = None) -> list[Path]:
    """Run directories with a finished record (result.json), sorted."""
    root = Path(results_dir) / "runs"
    pattern = f"{experiment}/*/result.json" if experiment else "*/*/result.json"
    return sorted(p.parent for p in root.glob(pattern))


def collect(results_dir: str | Path, experiment: str | None = None, **filters: str | int) -> pd.DataFrame:
    """One row per finished run: experiment, run_id, model, task, aggregator, seed, config_hash,
    git commit, and one column per metric (value) plus `<metric>_stderr`.

    `filters` select rows by column value, e.g. collect(dir, "toy", aggregator="rvpo").
    """
    rows = []
    for d in record_dirs(results_dir, experiment):
        rec = load_record(d)
        cfg = rec.config
        row = {
            "experiment": rec.experiment,
            "run_id": rec.run_id,
            "run_dir": str(d),
            "model": cfg["model"]["name"],
            "task": cfg["task"]["name"],
            "aggregator": cfg["aggregator"]["name"],
            "seed": rec.seed,
            "config_hash": rec.config_hash,
            "git_commit": (rec.environment.get("git") or {}).get("commit"),
        }
        for name, m in rec.metrics.items():
            row[name] = m["value"]
            row[f"{name}_stderr"] = m.get("stderr")
        rows.append(row)
    df = pd.DataFrame(rows)
    for key, value in filters.items():
        if key not in df.columns:
            raise ValueError(f"cannot filter on {key!r}; columns: {sorted(df.columns)}")
        df = df[df[key] == value]
    return df.reset_index(drop=True)


def examples(run_dir: str | Path) -> pd.DataFrame:
    """Per-example scores of one run, indexed by example id."""
    return pd.DataFrame(load_examples(run_dir)).set_index("id")
