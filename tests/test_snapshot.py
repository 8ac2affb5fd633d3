"""A rerun with the same results rewrites no committed file: the snapshot is left alone while the
table of the runs shows the same rows as its own (whatever else the records say), keeps a record
whose result is unchanged byte for byte when it is refreshed, and the report built from it writes no
file whose bytes would not change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import write_runs  # noqa: E402

from rvpo_repro.analysis import snapshot  # noqa: E402
from rvpo_repro.analysis.report import build_report  # noqa: E402
from rvpo_repro.io import read_jsonl, write_jsonl  # noqa: E402
from rvpo_repro.run.record import LOG_HISTORY_FILE, RESULT_FILE, config_hash  # noqa: E402


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
    assert snapshot.main(["--experiment", "toy", "--from", str(results), "--to", str(snap), "--force"]) == 0
    assert "4 kept" in capsys.readouterr().out
    none = ["--experiment", "toy", "--from", str(tmp_path / "none"), "--to", str(snap), "--force"]
    assert snapshot.main(none) == 1
    assert "no finished runs" in capsys.readouterr().err


def _report(results: Path, snap: Path) -> None:
    """What `make reproduce` builds before `make snapshot`: the runs' own table, and (once) the
    snapshot's report."""
    build_report("toy", results, results, snapshot=None)
    if not (snap / "tables" / "toy.md").is_file():
        snapshot.rebuild_report(snap, "toy")


def _elsewhere_at_another_commit(results: Path) -> None:
    """A fresh clone on another CPU at a later commit: circumstances differ, a new config key gives
    every run a new id, and per-step floats differ in the 8th significant digit; the table does not."""
    _rerun_elsewhere(results)
    for d in sorted((results / "runs" / "toy").iterdir()):
        rows = read_jsonl(d / LOG_HISTORY_FILE)
        write_jsonl(d / LOG_HISTORY_FILE, [r | {"grad_norm": 0.31636816 + i} for i, r in enumerate(rows)])
        data = json.loads((d / RESULT_FILE).read_text())
        data["config"]["a_new_key"] = 1
        data["config_hash"] = config_hash(data["config"])  # as the new code would record it
        data["run_id"] = data["run_id"][: data["run_id"].rindex("-")] + "-" + data["config_hash"][:8]
        (d / RESULT_FILE).write_text(json.dumps(data, indent=2))
        d.rename(d.with_name(data["run_id"]))


def test_the_same_table_leaves_the_whole_snapshot_as_committed(tmp_path, capsys):
    results, snap = _first_rerun(tmp_path)
    _report(results, snap)
    before = _files(snap)
    _elsewhere_at_another_commit(results)
    _report(results, snap)
    args = ["--experiment", "toy", "--from", str(results), "--to", str(snap)]
    assert snapshot.main(args) == 0
    assert "the same table as the snapshot's; nothing rewritten" in capsys.readouterr().out
    assert _files(snap) == before  # records, tables, figures, page: bytes and modification times
    # on purpose (make snapshot-update) the per-record rule applies: every record differs now
    assert snapshot.main([*args, "--force"]) == 0
    out = capsys.readouterr().out
    assert "4 added" in out and "4 removed" in out and "snapshot report rebuilt" in out
    assert sorted(p.name for p in (snap / "runs" / "toy").iterdir()) == sorted(
        p.name for p in (results / "runs" / "toy").iterdir()
    )


def test_a_changed_table_refreshes_the_records_and_rebuilds_the_report(tmp_path, capsys):
    results, snap = _first_rerun(tmp_path)
    _report(results, snap)
    import shutil

    run = sorted((results / "runs" / "toy").iterdir())[0]
    shutil.rmtree(run)  # one seed fewer: the table shows other rows
    _report(results, snap)
    assert not snapshot.same_table(results, snap, "toy")
    assert snapshot.main(["--experiment", "toy", "--from", str(results), "--to", str(snap)]) == 0
    out = capsys.readouterr().out
    assert "1 removed" in out and "3 kept" in out and "snapshot report rebuilt" in out
    assert not (snap / "runs" / "toy" / run.name).exists()
    assert snapshot.same_table(results, snap, "toy")  # the snapshot's table now shows the new result


def test_no_table_of_the_runs_is_one_line_and_exit_1(tmp_path, capsys):
    results, snap = _first_rerun(tmp_path)
    assert snapshot.main(["--experiment", "toy", "--from", str(results), "--to", str(snap)]) == 1
    err = capsys.readouterr().err
    assert f"no table {results / 'tables' / 'toy.md'}" in err and "make reproduce" in err


def test_the_report_keeps_a_table_whose_rows_read_the_same(tmp_path):
    results, _ = _first_rerun(tmp_path)
    rep = build_report("toy", results, results, snapshot=None)
    csv = rep.tables["csv"]
    lines = csv.read_text().splitlines()
    head, first = lines[0].split(","), lines[1].split(",")
    first[head.index("mean")] = repr(float(first[head.index("mean")]) + 1e-12)  # another CPU's last digits
    csv.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    before = {k: p.read_bytes() for k, p in rep.tables.items()}
    build_report("toy", results, results, snapshot=None)
    assert {k: p.read_bytes() for k, p in rep.tables.items()} == before


def test_table_rows_ignore_padding_but_not_a_cell():
    from rvpo_repro.analysis.output import table_rows

    a = "# t\n\n| m | v |\n|:--|--:|\n| gdpo | 0.724 |\n"
    assert table_rows(a) == table_rows("# other note\n|  m   |  v    |\n|:-----|------:|\n|  gdpo  | 0.724 |")
    assert table_rows(a) != table_rows(a.replace("0.724", "0.725"))
