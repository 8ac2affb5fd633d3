"""Progress bars for long loops: training steps, evaluation generation, judge calls.

    with progress.bar(total=len(prompts), desc="generate", unit="prompt") as b:
        for batch in batches:
            ...
            b.update(len(batch))

On a terminal a bar is tqdm's live bar (count, rate, ETA). In a log file (CI, Slurm, `> log`)
a live bar would fill the file with carriage returns, so the bar prints whole lines instead, at
most one per 10% of the work (11 lines for any total: 0%, 10%, ..., 100%), each with count and ETA.
Only the main process of a distributed job shows bars. A bar opened while another is showing
(judge calls inside a training step) is drawn under it on a terminal and stays silent in a log.

The suite's bars are the only bars: the libraries' own (transformers' "Writing model shards" and
"Loading weights", datasets' "Generating train split", huggingface_hub's downloads) are turned off
when this module is imported (`quiet_library_bars`). While a bar shows on a terminal, whatever
else writes to stderr (W&B's warnings, Python warnings) prints whole lines above the bars instead
of being glued to the end of the bar's line.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

LOG_STEPS = 10  # lines per bar in a non-terminal log (plus the 0% line)

_open: list[Any] = []  # bars showing now, outermost first
_stderr: list[Any] = []  # the real sys.stderr while _AboveBars stands in for it


def quiet_library_bars() -> None:
    """Turn off the progress bars of transformers, datasets and huggingface_hub (module docstring)."""
    import importlib

    for module, name in (("huggingface_hub.utils", "disable_progress_bars"),
                         ("transformers.utils.logging", "disable_progress_bar"),
                         ("datasets.utils.logging", "disable_progress_bar")):  # fmt: skip
        try:
            getattr(importlib.import_module(module), name)()
        except (ImportError, AttributeError):  # a library not installed (or renamed): nothing to quiet
            pass


def is_terminal(file: Any = None) -> bool:
    file = file if file is not None else sys.stderr
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class _Lines:
    """A stream that passes whole lines and drops tqdm's bare cursor moves and newlines."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip("\r\n "):
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class _AboveBars:
    """sys.stderr while a bar shows on a terminal: each whole line others write is printed above
    the bars (tqdm.write), so `wandb: WARNING ...` no longer lands after `risk=1]` on the bar's line."""

    def __init__(self, stream: Any):
        self.stream, self._partial = stream, ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            tqdm.write(line, file=self.stream)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            tqdm.write(self._partial, file=self.stream)
            self._partial = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _route_stderr(on: bool) -> None:
    if on and not _stderr:
        _stderr.append(sys.stderr)
        sys.stderr = _AboveBars(sys.stderr)
    elif not on and _stderr:
        if isinstance(sys.stderr, _AboveBars):
            sys.stderr.flush()
        sys.stderr = _stderr.pop()


class LineBar(plain_tqdm):
    """tqdm that writes one full line per `total / LOG_STEPS` of progress instead of redrawing."""

    def __init__(self, *args: Any, total: float | None = None, **kwargs: Any):
        self._printed_n: float | None = None
        kwargs.update(
            mininterval=0,
            maxinterval=float("inf"),  # tqdm's monitor thread must not lower miniters
            miniters=max(1, math.ceil(total / LOG_STEPS)) if total else 1,
            dynamic_ncols=False,
            ncols=100,
            ascii=True,
        )
        if kwargs.get("file") is not None:
            kwargs["file"] = _Lines(kwargs["file"])
        super().__init__(*args, total=total, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.n == self._printed_n:  # close() redraws the last state: do not repeat it
            return True
        self._printed_n = self.n
        self.fp.write((msg or self.__str__()) + "\n")
        self.fp.flush()
        return True

    def clear(self, nolock: bool = False) -> None:  # nothing drawn in place, nothing to clear
        pass


class _Tracked:
    """Context wrapper that keeps `_open` in step with the bars showing."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> Any:
        return self.inner

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.inner in _open:
            _open.remove(self.inner)
        self.inner.close()
        if not _open:
            _route_stderr(False)


def bar(
    total: int | None, desc: str, unit: str = "it", *, file: Any = None, disable: bool = False, **kwargs: Any
) -> Any:
    """A progress bar over `total` units (a tqdm; use it as a context manager or call close())."""
    from rvpo_repro.tracking import is_main_process

    file = file if file is not None else (_stderr[0] if _stderr else sys.stderr)
    terminal = is_terminal(file)
    _open[:] = [b for b in _open if not b.disable]  # tqdm sets disable when a bar closes
    nested = bool(_open)
    off = disable or not is_main_process() or (nested and not terminal)
    cls = tqdm if terminal else LineBar
    options = {"leave": not nested, "position": len(_open)} if terminal else {}
    inner = cls(total=total, desc=desc, unit=unit, file=file, disable=off, **{**options, **kwargs})
    if not off:
        _open.append(inner)
        if terminal and file is (_stderr[0] if _stderr else sys.stderr):
            _route_stderr(True)
    return _Tracked(inner)


def close_all() -> None:
    """Close every bar still showing: a loop that raised past its bar (a failed training run, whose
    callback never saw the end) must not silence the bars of the next job in this process."""
    while _open:
        _open.pop().close()
    _route_stderr(False)


def write(line: str, file: Any = None) -> None:
    """Print a line without breaking a live bar on a terminal."""
    file = file if file is not None else (_stderr[0] if _stderr else sys.stderr)
    if is_terminal(file):
        tqdm.write(line, file=file)
    else:
        file.write(line + "\n")
        file.flush()


quiet_library_bars()
