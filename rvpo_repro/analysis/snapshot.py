"""The committed snapshot of an experiment's records (results/snapshot/runs/<experiment>/, no
weights) and the report built from them, refreshed only when a result changes.

What decides is the table: the report of the runs (`<from>/tables/<experiment>.md`, which `make
reproduce` has just built) against the snapshot's own (`<to>/tables/<experiment>.md`), row by row
as a reader sees them. The same rows mean the same result, and nothing in the snapshot is touched,
however much the records differ in what the table does not show: where, when and at which commit
they ran, the run id a new config key gives, the 8th significant digit of a per-step metric on
another CPU.

When the table differs (or with `--force`), each snapshot run is replaced whose result differs:
its config (the parts the config hash leaves out aside: logger, paths, eval back end), metrics,
package versions, per-example scores or per-step training metrics (timings aside); runs gone are
removed, new ones added, each whole, so the snapshot always holds one real record per run with the
provenance of the run that produced it. Then the snapshot's report (tables, figures, page, W&B
Report spec) is rebuilt, each file written only where its bytes differ.

    python -m rvpo_repro.analysis.snapshot --experiment toy [--from results] [--to results/snapshot] [--force]

prints what changed and exits 0 (1 when there is no finished run to copy, or no table to compare).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from rvpo_repro.analysis.output import shows_same_table, write_if_changed
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


def same_table(results_dir: str | Path, snapshot_dir: str | Path, experiment: str) -> bool:
    """Whether the report of `results_dir` shows the same table rows as the snapshot's."""
    ours = Path(results_dir) / "tables" / f"{experiment}.md"
    if not ours.is_file():
        raise FileNotFoundError(f"no table {ours} (the report of the runs) to compare the snapshot with")
    return shows_same_table(
        Path(snapshot_dir) / "tables" / f"{experiment}.md", ours.read_text(encoding="utf-8")
    )


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


def rebuild_report(snapshot_dir: str | Path, experiment: str) -> None:
    """The snapshot's own report: tables, figures, page and W&B Report spec, from its records."""
    from rvpo_repro.analysis.report import build_report

    snapshot_dir = Path(snapshot_dir)
    build_report(experiment, snapshot_dir, snapshot_dir, wandb=True, dry_run=True, snapshot=snapshot_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rvpo_repro.analysis.snapshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--experiment", default="toy")
    p.add_argument("--from", dest="results_dir", default="results", help="holds runs/<experiment>/")
    p.add_argument("--to", dest="snapshot_dir", default="results/snapshot")
    p.add_argument("--force", action="store_true", help="compare each record even when the table is the same")
    args = p.parse_args(argv)
    where = Path(args.snapshot_dir) / "runs" / args.experiment
    try:
        if not args.force and same_table(args.results_dir, args.snapshot_dir, args.experiment):
            print(f"snapshot {where}: the same table as the snapshot's; nothing rewritten")
            return 0
        done = refresh(args.results_dir, args.snapshot_dir, args.experiment)
    except FileNotFoundError as exc:
        print(f"snapshot: {exc}: run `make reproduce` first", file=sys.stderr)
        return 1
    changed = bool(done["added"] or done["replaced"] or done["removed"])
    print(f"snapshot {where}: " + ", ".join(f"{len(v)} {k}" for k, v in done.items())
          + ("" if changed else " (same results: nothing rewritten)"))  # fmt: skip
    if changed or args.force:
        rebuild_report(args.snapshot_dir, args.experiment)
        print(f"snapshot report rebuilt in {Path(args.snapshot_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
