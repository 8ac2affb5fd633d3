"""Former home of provenance helpers; they live in `rvpo_repro.run.provenance`."""

from rvpo_repro.run.provenance import (
    PACKAGES,
    REDACTED,
    environment_info,
    git_info,
    is_secret_key,
    redact,
)

__all__ = ["PACKAGES", "REDACTED", "environment_info", "git_info", "is_secret_key", "redact"]
