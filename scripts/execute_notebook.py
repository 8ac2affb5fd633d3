"""Execute notebooks/analysis.ipynb and save a copy with its outputs (tables, figures), so a reader
browsing the repository sees them: `make notebook` writes results/notebook/analysis.ipynb.

The copy holds what the notebook shows, not when it ran: the kernel's per-cell execution times are
dropped, and the file is written only when its bytes change, so executing it again on the same
records leaves it as it was."""

import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rvpo_repro.analysis.output import write_if_changed  # noqa: E402


def without_timings(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` without the execution timestamps nbclient stores in each code cell's metadata."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def main(src: str = "notebooks/analysis.ipynb", dest: str = "results/notebook/analysis.ipynb") -> int:
    nb = nbformat.read(ROOT / src, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str((ROOT / src).parent)}}).execute()  # fmt: skip
    text = nbformat.writes(without_timings(nb))
    written = write_if_changed(ROOT / dest, text if text.endswith("\n") else text + "\n")
    print(f"executed {src} -> {dest}" + ("" if written else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
