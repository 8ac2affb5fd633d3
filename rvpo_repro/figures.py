"""Figures and the HTML page of a report; they live in rvpo_repro.analysis.figures / .page /
.wandb_report (this module re-exports their public names)."""

from rvpo_repro.analysis.figures import (  # noqa: F401
    BASE_COLORS,
    checkpoint_figure,
    curves,
    final_scores,
    history,
    make_figures,
    method_styles,
    risk_figure,
    training_figures,
)
from rvpo_repro.analysis.page import findings, summary_html, write_page  # noqa: F401
from rvpo_repro.analysis.wandb_report import log_table as log_wandb  # noqa: F401
