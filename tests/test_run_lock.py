"""One writer per run directory: a held lock names its PID; a dead holder's lock is taken over."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from rvpo_repro.run.lock import LOCK_FILE, RunLockedError, run_lock


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    with run_lock(tmp_path / "run") as path:
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError, match=rf"being written by PID {os.getpid()}"):
            with run_lock(tmp_path / "run"):
                pass
    assert not path.exists()  # released: the directory holds no lock file
    with run_lock(tmp_path / "run"):  # and can be locked again
        pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    holder = (
        "import fcntl, os, signal, sys\n"
        f"fd = os.open({str(run / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", holder])
    assert proc.returncode == -9 and (run / LOCK_FILE).exists()
    dead = int((run / LOCK_FILE).read_text())
    with caplog.at_level(logging.INFO, logger="rvpo_repro.run.lock"), run_lock(run) as path:
        assert path.read_text().strip() == str(os.getpid())
    assert f"left by PID {dead}" in caplog.text
