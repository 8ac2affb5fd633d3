"""Execute notebooks/analysis.ipynb and save a copy with its outputs (tables, figures), so a reader
browsing the repository sees them: `make notebook` writes results/notebook/analysis.ipynb."""

import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def main(src: str = "notebooks/analysis.ipynb", dest: str = "results/notebook/analysis.ipynb") -> int:
    nb = nbformat.read(ROOT / src, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str((ROOT / src).parent)}}).execute()  # fmt: skip
    out = ROOT / dest
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    print(f"executed {src} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
