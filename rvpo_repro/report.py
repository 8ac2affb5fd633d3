"""`python -m rvpo_repro.report`: kept for users' commands and code; the report lives in
rvpo_repro.analysis (this module re-exports its public names)."""

import sys

from rvpo_repro.analysis.compare import HIER_MIN_SEEDS, N_RESAMPLES, RULE, example_matrix, mean_ci  # noqa: F401
from rvpo_repro.analysis.labels import method_label, risk_of  # noqa: F401
from rvpo_repro.analysis.paper import DASH, DEFAULT_REFERENCE, has_counterpart, load_reference, paper_numbers  # noqa: F401
from rvpo_repro.analysis.report import Report, build_report, main  # noqa: F401
from rvpo_repro.analysis.runs import ConfigConflictError, MissingMetricError, Runs, load_runs  # noqa: F401
from rvpo_repro.analysis.seed_stats import hierarchical_mean_ci  # noqa: F401
from rvpo_repro.analysis.table import (  # noqa: F401
    BaselineError,
    display_table,
    fmt_p,
    pick_baseline,
    results_table,
    table_preamble,
    write_tables,
)

if __name__ == "__main__":
    sys.exit(main())
