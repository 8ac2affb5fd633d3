"""A rerun with the same results rewrites no committed file: the snapshot keeps a record whose result
is unchanged byte for byte, and the report built from it writes no file whose bytes would not change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import write_runs  # noqa: E402

from rvpo_repro.analysis import snapshot  # noqa: E402
from rvpo_repro.analysis.report import build_report  # noqa: E402
from rvpo_repro.io import read_jsonl, write_jsonl  # noqa: E402
from rvpo_repro.run.record import LOG_HISTORY_FILE, RESULT_FILE  # noqa: E402


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _rerun_elsewhere(results: Path) -> None:
    """What a rerun on another machine at another commit changes, with the same results."""
    for d in (results / "runs" / "toy").iterdir():
        data = json.loads((d / RESULT_FILE).read_text())
        data["started_at"], data["finished_at"] = "2027-02-02T10:00:00+00:00", "2027-02-02T10:01:00+00:00"
        data["environment"] |= {
            "platform": "Linux-other-machine",
            "git": {"commit": "f" * 40, "dirty": True, "branch": None},
        }
        data["config"]["paths"]["output_dir"] = "/elsewhere/multirun/toy/7"
        data["config"]["logger"]["profiling"] = False  # a tracking setting added since: not the result
        data["extra"] = {
            "train": {"train_seconds": 99.5, "global_step": 60},
            "wandb": {"dir": "/elsewhere/wandb/run-1"},
        }
        (d / RESULT_FILE).write_text(json.dumps(data, indent=2))
        rows = read_jsonl(d / LOG_HISTORY_FILE)
        write_jsonl(
            d / LOG_HISTORY_FILE,
            [r | {"step_time": 0.123} if "loss" in r else r | {"train_runtime": 7.0} for r in rows],
        )


def _first_rerun(tmp_path: Path) -> tuple[Path, Path]:
    results, snap = tmp_path / "results", tmp_path / "snapshot"
    write_runs(results, "toy", ["gdpo", "rvpo"], seeds=(0, 1))
    for d in (results / "runs" / "toy").iterdir():  # the first run's own circumstances
        data = json.loads((d / RESULT_FILE).read_text())
        data["extra"] = {
            "train": {"train_seconds": 12.0, "global_step": 60},
            "wandb": {"dir": "/here/wandb/run-1"},
        }
        (d / RESULT_FILE).write_text(json.dumps(data, indent=2))
    assert len(snapshot.refresh(results, snap, "toy")["added"]) == 4
    return results, snap


def test_a_rerun_with_the_same_results_leaves_the_snapshot_as_it_was(tmp_path):
    results, snap = _first_rerun(tmp_path)
    before = _files(snap)
    _rerun_elsewhere(results)
    done = snapshot.refresh(results, snap, "toy")
    assert (len(done["kept"]), done["added"], done["replaced"], done["removed"]) == (4, [], [], [])
    assert _files(snap) == before  # bytes and modification times
    kept = json.loads(next((snap / "runs" / "toy").glob("*/result.json")).read_text())
    assert (
        kept["environment"]["git"]["commit"] == "0123456789abcdef0123456789abcdef01234567"
    )  # the run that made it


def test_a_changed_result_replaces_that_run_whole_and_a_gone_run_leaves(tmp_path):
    results, snap = _first_rerun(tmp_path)
    runs = sorted((results / "runs" / "toy").iterdir())
    data = json.loads((runs[0] / RESULT_FILE).read_text())
    data["metrics"]["rewards/digit"]["value"] += 0.01
    (runs[0] / RESULT_FILE).write_text(json.dumps(data))
    rows = read_jsonl(runs[1] / LOG_HISTORY_FILE)
    rows[3]["loss"] = 0.5  # a training metric, not a timing
    write_jsonl(runs[1] / LOG_HISTORY_FILE, rows)
    import shutil

    shutil.rmtree(runs[2])
    done = snapshot.refresh(results, snap, "toy")
    assert done["replaced"] == [runs[0].name, runs[1].name] and done["removed"] == [runs[2].name]
    assert (snap / "runs" / "toy" / runs[0].name / RESULT_FILE).read_bytes() == (
        runs[0] / RESULT_FILE
    ).read_bytes()
    assert not (snap / "runs" / "toy" / runs[2].name).exists() and len(done["kept"]) == 1


def test_the_report_rebuilt_from_the_same_records_writes_nothing(tmp_path):
    results, snap = _first_rerun(tmp_path)
    build_report("toy", snap, snap, wandb=True, dry_run=True, snapshot=snap)
    before = _files(snap)
    build_report("toy", snap, snap, wandb=True, dry_run=True, snapshot=snap)
    assert _files(snap) == before
    page = (snap / "report" / "toy" / "index.html").read_text()
    assert "Generated" not in page and "2026-" not in page.split("<h3>Command</h3>")[1]
    # A fresh clone's `rvpo-report --experiment toy` falls back to the snapshot and writes the same page.
    build_report("toy", tmp_path / "no-runs", tmp_path / "elsewhere", snapshot=snap)
    assert _files(snap) == before
    assert f"rvpo-report --experiment toy --baseline rvpo --results-dir {snap}" in page


def test_the_command_line_prints_what_changed(tmp_path, capsys):
    results, snap = _first_rerun(tmp_path)
    assert snapshot.main(["--experiment", "toy", "--from", str(results), "--to", str(snap)]) == 0
    assert "4 kept" in capsys.readouterr().out
    assert snapshot.main(["--experiment", "toy", "--from", str(tmp_path / "none"), "--to", str(snap)]) == 1
    assert "no finished runs" in capsys.readouterr().err
