"""notebooks/analysis.ipynb runs end to end on synthetic toy records and reproduces the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from test_report import write_runs  # noqa: E402  (tests/ is on sys.path under pytest's rootdir import)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_notebook_runs_on_toy_records(tmp_path, monkeypatch):
    results = write_runs(tmp_path / "results", "toy", seeds=(0, 1))
    monkeypatch.setenv("RVPO_RESULTS_DIR", str(results))
    monkeypatch.setenv("RVPO_EXPERIMENT", "toy")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (results / "tables" / "toy.md").is_file() and (results / "report" / "toy" / "index.html").is_file()
    html_outputs = " ".join(
        o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "Welch (seeds)" in html_outputs and "p (Holm)" in html_outputs  # the results table is shown
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3


@pytest.mark.slow
def test_notebook_falls_back_to_the_snapshot_and_says_so(tmp_path, monkeypatch):
    import shutil

    snapshot = Path(__file__).resolve().parents[1] / "results" / "snapshot"
    if not (snapshot / "runs" / "toy").is_dir():
        pytest.skip("no committed snapshot (make snapshot)")
    shutil.copytree(snapshot / "runs", tmp_path / "snapshot" / "runs")
    monkeypatch.setenv("RVPO_RESULTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("RVPO_SNAPSHOT_DIR", str(tmp_path / "snapshot"))
    monkeypatch.setenv("RVPO_EXPERIMENT", "toy")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # fmt: skip
    text = json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.outputs])
    assert (
        "showing the committed snapshot" in text and (tmp_path / "snapshot" / "tables" / "toy.md").is_file()
    )


def _executor():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "execute_notebook", NOTEBOOK.parents[1] / "scripts" / "execute_notebook.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_executed_notebook_is_current_for_the_committed_snapshot():
    """`make snapshot` on a fresh clone does not re-execute (and so never rewrites) it."""
    ex = _executor()
    records = ex.ROOT / "results" / "snapshot" / "runs"
    if not records.is_dir():
        pytest.skip("no committed snapshot")
    assert ex.stored_digest(ex.ROOT / ex.DEST) == ex.inputs_digest(ex.ROOT / ex.SRC, records)


def test_the_notebook_is_executed_again_only_when_its_inputs_change(tmp_path, monkeypatch):
    ex = _executor()
    results = write_runs(tmp_path / "results", "toy", seeds=(0,))
    monkeypatch.setenv("RVPO_RESULTS_DIR", str(results))
    monkeypatch.setattr(ex, "ROOT", tmp_path)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / ex.SRC).write_bytes(NOTEBOOK.read_bytes())
    executed = []
    monkeypatch.setattr(ex.nbclient.NotebookClient, "execute", lambda self: executed.append(1))
    assert ex.main(["--if-inputs-changed"]) == 0 and len(executed) == 1  # no copy yet
    assert ex.main(["--if-inputs-changed"]) == 0 and len(executed) == 1  # same inputs: skipped
    record = next((results / "runs" / "toy").glob("*/result.json"))
    record.write_text(record.read_text() + " ")
    assert ex.main(["--if-inputs-changed"]) == 0 and len(executed) == 2  # a record changed
    assert ex.main([]) == 0 and len(executed) == 3  # make notebook: always
