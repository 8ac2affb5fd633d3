"""How a run ends without its record, on every rank, in one line (rvpo_repro.cli maps each to its
exit status)."""


class RunFailed(RuntimeError):
    """A run that must not be sealed (e.g. its judge never answered); `str()` is the one line."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; `str()` is the one line to show (where the checkpoint is, how to resume)."""
