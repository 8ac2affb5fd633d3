"""The committed snapshot of an experiment's records (results/snapshot/runs/<experiment>/, no
weights), refreshed so that a rerun with the same results leaves it byte for byte as it was.

A record also says where, when and on what machine it ran (output paths, platform, git state,
timestamps, wall-clock timings). Those differ on every rerun though the result does not. A snapshot
run is therefore replaced only when what describes the result differs: its config (the parts the
config hash leaves out aside: logger, paths, eval back end), metrics, package versions, per-example
scores or per-step training metrics (timings aside). Then the new record replaces it whole, so the snapshot always holds one real record per
run with the provenance of the run that produced it.

    python -m rvpo_repro.analysis.snapshot --experiment toy [--from results] [--to results/snapshot]

prints what changed and exits 0 (1 when there is no finished run to copy); a second call with the
same records changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from rvpo_repro.analysis.output import write_if_changed
from rvpo_repro.analysis.runs import record_dirs
from rvpo_repro.run.record import EXAMPLES_FILE, HASH_EXCLUDED, LOG_HISTORY_FILE, RESULT_FILE

FILES = (RESULT_FILE, EXAMPLES_FILE, LOG_HISTORY_FILE)
# Dotted paths of result.json that describe the machine and the moment, not the result.
RECORD_CIRCUMSTANCES = (
    "started_at",
    "finished_at",
    "environment.platform",
    "environment.git",
    "environment.cuda_device",
    *(".".join(("config", *path)) for path in HASH_EXCLUDED),  # what the run id does not depend on
    "extra.train.train_seconds",
    "extra.wandb.dir",
    "extra.wandb.url",
    "extra.model_path",
)
# Per-step keys that are wall-clock timings (TRL and transformers), not training metrics.
TIMING_KEY = re.compile(
    r"(^|/)(step_time|train_runtime|train_samples_per_second|train_steps_per_second)$|^profiling/"
)


def _drop(data: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def _record_view(text: str) -> dict:
    data = json.loads(text)
    for dotted in RECORD_CIRCUMSTANCES:
        _drop(data, dotted)
    return data


def _history_view(text: str) -> list[dict]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if not TIMING_KEY.search(k)} for row in rows]


VIEWS = {RESULT_FILE: _record_view, LOG_HISTORY_FILE: _history_view, EXAMPLES_FILE: _history_view}


def same_result(src: Path, dest: Path) -> bool:
    """Whether the run in `dest` records the same result as the one in `src` (module docstring)."""
    for name in FILES:
        a, b = src / name, dest / name
        if a.is_file() != b.is_file():
            return False
        if a.is_file() and VIEWS[name](a.read_text(encoding="utf-8")) != VIEWS[name](
            b.read_text(encoding="utf-8")
        ):
            return False
    return True


def refresh(results_dir: str | Path, snapshot_dir: str | Path, experiment: str) -> dict[str, list[str]]:
    """Make <snapshot_dir>/runs/<experiment> hold the finished runs of <results_dir>/runs/<experiment>:
    add new ones, replace those whose result changed, remove those gone; keep the rest untouched.
    Returns {"added", "replaced", "removed", "kept"}: run ids."""
    dest_root = Path(snapshot_dir) / "runs" / experiment
    srcs = {d.name: d for d in record_dirs(results_dir, experiment)}
    if not srcs:
        raise FileNotFoundError(
            f"no finished runs (result.json) under {Path(results_dir) / 'runs' / experiment}"
        )
    out: dict[str, list[str]] = {"added": [], "replaced": [], "removed": [], "kept": []}
    for old in sorted(p for p in dest_root.glob("*") if p.is_dir() and p.name not in srcs):
        shutil.rmtree(old)
        out["removed"].append(old.name)
    for name, src in sorted(srcs.items()):
        dest = dest_root / name
        if dest.is_dir() and same_result(src, dest):
            out["kept"].append(name)
            continue
        out["replaced" if dest.is_dir() else "added"].append(name)
        dest.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            if (src / f).is_file():
                write_if_changed(dest / f, (src / f).read_bytes())
            else:
                (dest / f).unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rvpo_repro.analysis.snapshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--experiment", default="toy")
    p.add_argument("--from", dest="results_dir", default="results", help="holds runs/<experiment>/")
    p.add_argument("--to", dest="snapshot_dir", default="results/snapshot")
    args = p.parse_args(argv)
    try:
        done = refresh(args.results_dir, args.snapshot_dir, args.experiment)
    except FileNotFoundError as exc:
        print(f"snapshot: {exc}: run `make reproduce` first", file=sys.stderr)
        return 1
    print(
        f"snapshot {Path(args.snapshot_dir) / 'runs' / args.experiment}: "
        + ", ".join(f"{len(v)} {k}" for k, v in done.items())
        + (
            " (same results: nothing rewritten)"
            if not (done["added"] or done["replaced"] or done["removed"])
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
