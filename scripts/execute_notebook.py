"""Execute notebooks/analysis.ipynb and save a copy with its outputs (tables, figures), so a reader
browsing the repository sees them: `make notebook` writes results/notebook/analysis.ipynb.

The copy holds what the notebook shows, not when it ran: the kernel's per-cell execution times are
dropped, and the file is written only when its bytes change. It also stores a digest of its inputs
(the source notebook and the snapshot's records); with `--if-inputs-changed` (what `make snapshot`
runs) a copy whose inputs have the same digest is not executed again, so an unchanged snapshot
leaves it as committed whatever machine runs it."""

import argparse
import hashlib
import os
import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rvpo_repro.analysis.output import write_if_changed  # noqa: E402

SRC, DEST = "notebooks/analysis.ipynb", "results/notebook/analysis.ipynb"
DIGEST_KEY = "rvpo_inputs_sha256"


def without_timings(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` without the execution timestamps nbclient stores in each code cell's metadata."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def inputs_digest(src: Path, records: Path) -> str:
    """sha256 over the source notebook and every file under `records` (relative path and bytes)."""
    h = hashlib.sha256(src.read_bytes())
    for path in sorted(p for p in records.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(records)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def stored_digest(dest: Path) -> str | None:
    if not dest.is_file():
        return None
    return nbformat.read(dest, as_version=4).metadata.get(DIGEST_KEY)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--if-inputs-changed", action="store_true",
                   help="skip execution when the copy's stored digest matches its inputs")  # fmt: skip
    args = p.parse_args(argv)
    src, dest = ROOT / SRC, ROOT / DEST
    records = Path(os.environ.get("RVPO_RESULTS_DIR", ROOT / "results" / "snapshot")) / "runs"
    digest = inputs_digest(src, records)
    if args.if_inputs_changed and stored_digest(dest) == digest:
        print(f"{DEST}: its inputs are unchanged; not executed again")
        return 0
    nb = nbformat.read(src, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(src.parent)}}).execute()  # fmt: skip
    nb.metadata[DIGEST_KEY] = digest
    text = nbformat.writes(without_timings(nb))
    written = write_if_changed(dest, text if text.endswith("\n") else text + "\n")
    print(f"executed {SRC} -> {DEST}" + ("" if written else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
