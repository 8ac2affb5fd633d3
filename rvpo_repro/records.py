"""Former home of the run record; it lives in `rvpo_repro.run.record` (files: `rvpo_repro.io`)."""

from rvpo_repro.io import read_jsonl, write_jsonl
from rvpo_repro.run.provenance import environment_info, redact
from rvpo_repro.run.record import (
    EXAMPLES_FILE,
    HASH_EXCLUDED,
    LOG_HISTORY_FILE,
    RESULT_FILE,
    SCHEMA_VERSION,
    RecordConflictError,
    RunRecord,
    config_hash,
    find_finished,
    load_examples,
    load_log_history,
    load_record,
    metric,
    new_record,
    resolved_config,
    run_dir,
    run_id,
    utc_now,
    write_record,
)

__all__ = [
    "EXAMPLES_FILE", "HASH_EXCLUDED", "LOG_HISTORY_FILE", "RESULT_FILE", "SCHEMA_VERSION",
    "RecordConflictError", "RunRecord", "config_hash", "environment_info", "find_finished",
    "load_examples", "load_log_history", "load_record", "metric", "new_record", "read_jsonl", "redact",
    "resolved_config", "run_dir", "run_id", "utc_now", "write_jsonl", "write_record",
]  # fmt: skip
