"""`--version` of every console script: the suite's version and the git commit it runs from."""

from __future__ import annotations

from pathlib import Path

from rvpo_repro import __version__


def version_text(prog: str) -> str:
    """`<prog> (rvpo-repro) 0.1.0, git <commit>[ with uncommitted changes]`; an installed wheel
    has no checkout and says so."""
    from rvpo_repro.run.provenance import git_info

    git = git_info(Path(__file__).resolve().parent)
    if git["commit"] is None:
        where = "not run from a git checkout"
    else:
        where = f"git {git['commit']}" + (" with uncommitted changes" if git["dirty"] else "")
    return f"{prog} (rvpo-repro) {__version__}, {where}"
