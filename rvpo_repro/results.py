"""Collect run records into pandas DataFrames; lives in rvpo_repro.analysis.runs (re-exported)."""

from rvpo_repro.analysis.runs import KEY_COLUMNS, collect, examples, metric_columns, record_dirs  # noqa: F401
