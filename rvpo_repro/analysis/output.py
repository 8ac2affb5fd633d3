"""Report files written only when their bytes change: rebuilding a report from the same records
leaves every file (and a checkout's `git status`) as it was."""

from __future__ import annotations

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
