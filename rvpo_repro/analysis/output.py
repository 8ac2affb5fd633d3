"""Report files written only when their bytes change: rebuilding a report from the same records
leaves every file (and a checkout's `git status`) as it was.

A committed table is one step stricter: its files (csv, md, tex, provenance) are rewritten only
when the table shows other rows (`shows_same_table`). A rerun elsewhere whose floats differ in
digits the table does not show, or whose runs carry another commit, is the same result."""

from __future__ import annotations

import re
from pathlib import Path

from rvpo_repro.io import atomic_write


def write_if_changed(path: str | Path, data: str | bytes) -> bool:
    """Write `data` to `path` (atomically) unless it already holds exactly that; True if written."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_file() and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, raw)
    return True


def table_rows(markdown: str) -> list[str]:
    """The rows of the markdown tables in `markdown` as a reader sees them: each `|` line with its
    cells' padding (and the ruler's dash count, which follows the widest cell) normalised."""
    rows = []
    for line in markdown.splitlines():
        if line.lstrip().startswith("|"):
            line = re.sub(r"\s*\|\s*", "|", line.strip())
            rows.append(re.sub(r"-+", "-", line) if re.fullmatch(r"[|:\- ]+", line) else line)
    return rows


def shows_same_table(path: str | Path, markdown: str) -> bool:
    """Whether the markdown file at `path` exists and shows the same table rows as `markdown`."""
    path = Path(path)
    return path.is_file() and table_rows(path.read_text(encoding="utf-8")) == table_rows(markdown)


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """`fig.savefig` into memory, then `write_if_changed` (PNG bytes are stable for one figure)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    write_if_changed(path, buf.getvalue())
    return Path(path)


def print_paths(prog: str, build, errors: tuple[type[BaseException], ...]) -> int:
    """Run `build()` (-> {name: path}) for a command line: each written path on stdout, or one line
    `<prog>: <error>` on stderr and exit status 2 for the input errors named in `errors`."""
    import sys

    try:
        paths = build()
    except errors as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
