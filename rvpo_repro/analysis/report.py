"""rvpo-report: tables (Markdown, CSV, LaTeX), figures (PNG), a static HTML page and, on request,
a W&B Report of an experiment. Load (runs) -> statistics (stats.table_rule) -> table -> render (figures,
page, W&B); this driver is imported by nothing in the package.

    rvpo-report [--experiment toy ...] [--results-dir results] [--out results] [--baseline gdpo]
        [--metric rewards/all_constraints] [--seed 0] [--split-configs] [--wandb-report [--dry-run]]

Writes <out>/tables/<experiment>.{md,csv,tex}, <out>/figures/<experiment>/*.png and
<out>/report/<experiment>/index.html. Without --experiment: every experiment under
<results-dir>/runs. When an experiment has no finished run there but the repository's committed
snapshot has it (results/snapshot/runs/<experiment>, refreshed by `make snapshot`), the report is
built from the snapshot into results/snapshot/ and says so.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rvpo_repro.analysis import figures, page, wandb_report
from rvpo_repro.analysis.paper import DEFAULT_REFERENCE, load_reference
from rvpo_repro.analysis.runs import MissingMetricError, RecordError, load_runs
from rvpo_repro.analysis.table import display_table, results_table, table_preamble, write_tables
from rvpo_repro.run.record import load_log_history
from rvpo_repro.version import version_text

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "results" / "snapshot"
# The method every other one is tested against, per experiment (the rest: DEFAULT_BASELINE). The toy
# table tests each method against RVPO, so one table shows RVPO against each baseline; the Makefile,
# the notebook and `rvpo-report` all take it from here.
BASELINES = {"toy": "rvpo"}
DEFAULT_BASELINE = "gdpo"
NO_RUNS = "no runs under {}: run `make reproduce` (or `make smoke`) first; `rvpo-report --experiment toy` shows the committed snapshot"


@dataclass
class Report:
    experiment: str
    table: pd.DataFrame
    tables: dict
    figures: list
    page: Path
    notes: list[str]
    source: Path
    wandb_spec: Path | None = None
    wandb_url: str | None = None


def default_baseline(experiment: str) -> str:
    """The baseline of `experiment` when none is given (BASELINES, else DEFAULT_BASELINE)."""
    return BASELINES.get(experiment, DEFAULT_BASELINE)


def _shown_path(path: str | Path) -> str:
    """A results directory as a rebuild command names it: relative to the repository when inside it,
    so the page reads the same on every checkout."""
    p = Path(path).resolve()
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else str(path)


def rebuild_command(experiment: str, source: str | Path, baseline: str, metric: str | None, seed: int,
                    split_configs: bool) -> str:  # fmt: skip
    """The `rvpo-report` command that rebuilds a page from `source`: the options that decide its
    numbers only, not those that say where files go, so one page has one command."""
    words = ["rvpo-report", "--experiment", experiment, "--baseline", baseline]
    if _shown_path(source) != "results":
        words += ["--results-dir", _shown_path(source)]
    words += ["--metric", metric] if metric else []
    words += ["--seed", str(seed)] if seed else []
    words += ["--split-configs"] if split_configs else []
    return shlex.join(words)


def _primary(runs, metric: str | None) -> str:
    """--metric, else the primary metric the records declare (one value required)."""
    if metric is None:
        declared = sorted({r.primary_metric for r in runs.records.values() if r.primary_metric})
        if len(declared) > 1:
            raise ValueError(f"the runs declare several primary metrics {declared}: pick one with --metric")
        metric = declared[0] if declared else (runs.metrics or [""])[0]
    lacking = [
        f"{r.run_id} ({Path(d) / 'result.json'})" for d, r in runs.records.items() if metric not in r.metrics
    ]
    if lacking:
        raise MissingMetricError(
            f"metric {metric!r} missing from {', '.join(lacking[:3])}; recorded: {runs.metrics}"
        )
    return metric


def _paper_md(table: pd.DataFrame) -> str:
    t = table[(table.paper_final != "—") | (table.paper_best != "—")]
    if t.empty:
        return "The paper reports no numbers for this experiment."
    cols = [
        "model",
        "method",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "paper_final",
        "paper_best",
        "paper_source",
    ]
    return t[cols].round(3).to_markdown(index=False)


def build_report(experiment: str, results_dir: str | Path = "results", out: str | Path = "results",
                 baseline: str | None = None, metric: str | None = None, seed: int = 0,
                 reference: str | Path | None = DEFAULT_REFERENCE, command: str | None = None,
                 split_configs: bool = False, wandb: bool = False, dry_run: bool = False,
                 snapshot: Path | None = SNAPSHOT) -> Report:  # fmt: skip
    """Tables, figures and page of one experiment (module docstring). FileNotFoundError when it has
    no finished runs, neither under results_dir nor in the snapshot. `baseline` None: the
    experiment's default (`default_baseline`)."""
    baseline = baseline or default_baseline(experiment)
    runs, notes, console = load_runs(results_dir, experiment, split_configs), [], []
    if runs.df.empty and snapshot is not None and (Path(snapshot) / "runs" / experiment).is_dir():
        runs, out = load_runs(snapshot, experiment, split_configs), Path(snapshot)
        console.append(
            f"No finished runs under {Path(results_dir) / 'runs' / experiment}: this report shows the committed "
            f"snapshot {snapshot} ({len(runs.df)} runs), written by `make snapshot`; run `make reproduce` for your own."
        )
        log.warning(console[-1])
    # The snapshot's files read the same however they were rebuilt (`make snapshot`, or a fresh
    # clone's `rvpo-report` falling back to it): what the page says depends on the records only.
    is_snapshot = snapshot is not None and Path(runs.source).resolve() == Path(snapshot).resolve()
    about = (
        f"These are the committed snapshot's records ({_shown_path(snapshot)}, refreshed by `make snapshot` "
        "when a result changes); `make reproduce` trains your own."
        if is_snapshot
        else ""
    )
    if runs.df.empty:
        raise FileNotFoundError(
            f"no finished runs (result.json) under {Path(results_dir) / 'runs' / experiment}"
        )
    ref = load_reference(reference)
    given_metric, metric = metric, _primary(runs, metric)
    if not ((runs.df.aggregator == baseline) | (runs.df.method == baseline)).any():
        notes.append(
            f"Warning: no runs of the baseline {baseline!r} in experiment {experiment!r} (methods: "
            f"{', '.join(sorted(set(runs.df.method)))}): no p-values. Pick one with --baseline."
        )
        log.warning(notes[-1])
    table = results_table(runs, baseline, seed, ref)
    pre = table_preamble(runs, table, baseline, ref, about)
    tables = write_tables(runs, table, out, baseline, pre)
    figs, fig_notes = figures.make_figures(runs, table, Path(out) / "figures" / runs.experiment, metric)
    notes += fig_notes
    page_path = page.write_page(
        runs, table, display_table(table, baseline), tables, figs, Path(out) / "report" / runs.experiment,
        title=f"RVPO reproduction: experiment {runs.experiment}", preamble=pre,
        findings=page.findings(table, baseline, metric), notes=notes,
        command=command or rebuild_command(experiment, runs.source, baseline, given_metric, seed, split_configs),
    )  # fmt: skip
    rep = Report(runs.experiment, table, tables, figs, page_path, console + notes, runs.source)
    if wandb:
        keys = {k for d in runs.df.run_dir for h in load_log_history(d) for k in h}
        spec = wandb_report.report_spec(
            runs, tables["md"].read_text(encoding="utf-8"), _paper_md(table), keys
        )
        path = Path(out) / "report" / runs.experiment / "wandb_report.json"
        rep.wandb_spec, rep.wandb_url = wandb_report.build_wandb_report(spec, path, dry_run)
    else:
        wandb_report.log_table(runs, table)
    return rep


def experiments_under(results_dir: str | Path) -> list[str]:
    root = Path(results_dir) / "runs"
    return sorted(p.name for p in root.glob("*") if p.is_dir()) if root.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rvpo-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--experiment",
        nargs="+",
        default=None,
        help="experiment names (default: every one under --results-dir)",
    )
    p.add_argument("--version", action="version", version=version_text("rvpo-report"))
    p.add_argument("--results-dir", default="results", help="holds runs/<experiment>/<run>/")
    p.add_argument("--out", default="results", help="tables/, figures/ and report/ go here")
    p.add_argument(
        "--baseline",
        default=None,
        help="method label or aggregator tested against (its default variant); default: the "
        f"experiment's ({', '.join(f'{e}: {b}' for e, b in BASELINES.items())}; others: {DEFAULT_BASELINE})",
    )
    p.add_argument(
        "--metric", default=None, help="primary metric (default: the one the runs' evaluation declares)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every bootstrap draw")
    p.add_argument("--paper-reference", default=str(DEFAULT_REFERENCE), help="the paper's numbers (YAML)")
    p.add_argument(
        "--split-configs", action="store_true", help="one row per config when runs under one label differ"
    )
    p.add_argument("--wandb-report", action="store_true", help="build a W&B Report (extra `wandb-report`)")
    p.add_argument(
        "--dry-run", action="store_true", help="with --wandb-report: write its spec JSON only, no network"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    exps = args.experiment or experiments_under(args.results_dir)
    if not exps:
        print(f"error: {NO_RUNS.format(Path(args.results_dir) / 'runs')}", file=sys.stderr)
        return 1
    status = 0
    for exp in exps:
        try:
            rep = build_report(exp, args.results_dir, args.out, args.baseline, args.metric, args.seed,
                               args.paper_reference, split_configs=args.split_configs,
                               wandb=args.wandb_report, dry_run=args.dry_run)  # fmt: skip
        except RecordError as e:  # a record it cannot read faithfully: refused, as bad input is
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = max(status, 1)
            continue
        for note in rep.notes:
            print(f"note: {note}", file=sys.stderr)
        print(Path(rep.tables["md"]).read_text(encoding="utf-8"))
        print(f"{exp}: tables {rep.tables['md']}, page {rep.page}")
        if rep.wandb_spec:
            print(
                f"{exp}: W&B Report spec {rep.wandb_spec}"
                + (f", report {rep.wandb_url}" if rep.wandb_url else "")
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
