"""Progress output: bars on a terminal, at most one line per 10% in a log, compact training lines."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from rvpo_repro import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    from rvpo_repro.tracking import RANK_ENV

    for name in RANK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("total,step", [(100, 1), (1000, 7), (100, 64), (3, 1), (7, 2)])
def test_log_file_gets_at_most_a_line_per_tenth(total, step):
    log = io.StringIO()  # not a terminal, like a CI or Slurm log
    with progress.bar(total=total, desc="work", unit="item", file=log) as b:
        for done in range(0, total, step):
            b.update(min(step, total - done))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 2 <= len(lines) <= 11, lines
    assert lines[0].startswith("work:") and "0/" in lines[0]
    assert f"{total}/{total}" in lines[-1]
    assert len(set(lines)) == len(lines)  # close() does not repeat the last line


def test_line_shows_count_and_eta():
    log = io.StringIO()
    with progress.bar(total=10, desc="generate", unit="prompt", file=log) as b:
        b.update(5)
    mid = log.getvalue().splitlines()[1]
    assert "5/10" in mid and "<" in mid and "prompt/s" in mid  # elapsed<remaining and the rate


def test_terminal_gets_a_live_bar():
    tty = Terminal()
    with progress.bar(total=100, desc="work", file=tty, mininterval=0) as b:
        for _ in range(100):
            b.update(1)
    assert "\r" in tty.getvalue()  # redrawn in place


def test_bar_inside_a_bar_is_silent_in_a_log_and_shown_on_a_terminal():
    log = io.StringIO()
    with progress.bar(total=2, desc="outer", file=log):
        with progress.bar(total=50, desc="inner", file=log) as inner:
            inner.update(50)
    assert "inner" not in log.getvalue() and "outer" in log.getvalue()
    assert progress._open == []
    tty = Terminal()
    with progress.bar(total=2, desc="outer", file=tty):
        with progress.bar(total=50, desc="inner", file=tty, mininterval=0) as inner:
            inner.update(50)
    assert "inner" in tty.getvalue()


def test_only_the_main_process_shows_bars(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    log = io.StringIO()
    with progress.bar(total=10, desc="work", file=log) as b:
        b.update(10)
    assert log.getvalue() == ""


def test_write_is_a_plain_line_in_a_log():
    log = io.StringIO()
    with progress.bar(total=4, desc="work", file=log) as b:
        progress.write("step 1/4 | reward 1", file=log)
        b.update(4)
    assert "step 1/4 | reward 1\n" in log.getvalue()


def _state(step: int, max_steps: int = 10) -> SimpleNamespace:
    return SimpleNamespace(is_world_process_zero=True, global_step=step, max_steps=max_steps)


def test_training_prints_a_bar_and_one_compact_line_per_log(monkeypatch, capsys):
    from rvpo_repro.callbacks import TrainProgress, summary_line

    logs = {
        "loss": 0.0123,
        "reward": 3.5,
        "channels/all_constraints": 0.5,
        "channels/bottleneck": 0.25,
        "aggregator/risk": 1.0,
        "learning_rate": 5e-4,
        **{f"profiling/key{i}": 1.0 for i in range(30)},  # the ~40-key dict stays out of the console
    }
    cb = TrainProgress()
    args, control = SimpleNamespace(disable_tqdm=False), SimpleNamespace(should_log=True)
    cb.on_train_begin(args, _state(0), control)
    for step in range(1, 11):
        cb.on_step_end(args, _state(step), control)
        cb.on_log(args, _state(step), control, logs=logs)
    cb.on_log(args, _state(10), control, logs={"train_runtime": 12.5, "train_loss": 0.01})
    cb.on_train_end(args, _state(10), control)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    lines = err.splitlines()
    summaries = [ln for ln in lines if ln.startswith("step ")]
    assert len(summaries) == 10
    assert summaries[-1] == summary_line(10, 10, logs)
    assert summaries[-1].startswith(
        "step 10/10 | reward 3.5 | all_constraints 0.5 | bottleneck 0.25 | risk 1"
    )
    assert "profiling" not in err and "{" not in err
    bar_lines = [ln for ln in lines if ln.startswith("train:")]
    assert 2 <= len(bar_lines) <= 11 and "10/10" in bar_lines[-1] and "reward=3.5" in bar_lines[-1]
    assert lines[-1] == "training done: 10 steps in 12.5 s, mean loss 0.01"


def test_disable_tqdm_keeps_the_lines_and_drops_the_bar(capsys):
    from rvpo_repro.callbacks import TrainProgress

    cb = TrainProgress()
    args, control = SimpleNamespace(disable_tqdm=True), SimpleNamespace(should_log=True)
    cb.on_train_begin(args, _state(0, 2), control)
    for step in (1, 2):
        cb.on_step_end(args, _state(step, 2), control)
        cb.on_log(args, _state(step, 2), control, logs={"loss": 0.5, "reward": 1.0})
    cb.on_train_end(args, _state(2, 2), control)
    assert capsys.readouterr().err.splitlines() == [
        "step 1/2 | reward 1 | loss 0.5",
        "step 2/2 | reward 1 | loss 0.5",
    ]


def test_a_bar_left_open_by_a_failed_loop_does_not_silence_later_jobs():
    """A training run that raises never reaches the callback that closes its bar; the job closes
    every bar it left, so the next job in the same process (a multirun, a test) still reports."""
    leaked = progress.bar(total=10, desc="failed", file=io.StringIO())  # never closed
    leaked.update(3)
    silent = io.StringIO()
    with progress.bar(total=10, desc="next", file=silent) as b:
        b.update(10)
    assert silent.getvalue() == ""  # nested under the leaked bar: silent in a log
    progress.close_all()
    log = io.StringIO()
    with progress.bar(total=10, desc="next", file=log) as b:
        b.update(10)
    assert "next" in log.getvalue()


class _Tty:
    """A terminal-like stream that records what is written."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_other_stderr_lines_print_above_a_live_bar_not_glued_to_it(monkeypatch):
    import sys

    from rvpo_repro import progress

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with progress.bar(total=4, desc="train", unit="step") as b:
        b.update(1)
        assert sys.stderr is not tty
        print("wandb: WARNING URL not available in offline run", file=sys.stderr)
        b.update(1)
    assert sys.stderr is tty  # restored when the last bar closes
    lines = tty.text.replace("\r", "\n").split("\n")
    assert "wandb: WARNING URL not available in offline run" in lines  # a line of its own
    assert not any(ln.endswith("]wandb: WARNING URL not available in offline run") for ln in lines)


def test_the_libraries_own_bars_are_off():
    import datasets
    import huggingface_hub.utils
    import transformers

    from rvpo_repro import progress  # noqa: F401  (importing it turns them off)

    assert not transformers.utils.logging.is_progress_bar_enabled()
    assert huggingface_hub.utils.are_progress_bars_disabled()
    assert not datasets.utils.logging.is_progress_bar_enabled()
