"""One writer per run directory: an advisory lock file holding the writer's PID.

`flock` locks belong to the open file, so the kernel drops them when their process dies, however
it dies (SIGKILL included): a lock file left behind by a killed run is stale by construction and
the next launch takes it over. Needs a local file system with working `flock` (not every NFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"
log = logging.getLogger(__name__)


class RunLockedError(RuntimeError):
    """Another live process is writing this run directory."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = run_dir, pid
        holder = f"PID {pid}" if pid is not None else "another process"
        super().__init__(f"{run_dir} is being written by {holder}; wait for it to finish or stop it first")

    def __reduce__(self):  # rebuilt from its own arguments where it crosses a process (joblib, submitit)
        return type(self), (self.run_dir, self.pid)


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of `run_dir` (created if needed) for the body; raise RunLockedError, naming
    the holder's PID, when a live process holds it. The lock file is removed on release."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunLockedError(run_dir, pid) from None
        try:  # a holder that just released unlinks the file: lock the one now at `path` instead
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        if (stale := _read_pid(fd)) is not None and stale != os.getpid():
            log.info("taking over the lock of %s left by PID %d, which no longer holds it", run_dir, stale)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):  # the body may have removed the directory
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
        os.close(fd)
