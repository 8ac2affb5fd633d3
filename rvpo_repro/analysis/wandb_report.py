"""W&B: the results table as a wandb.Table (`log_table`) and a W&B Report of an experiment
(`report_spec` -> `build_report` with the optional `wandb-workspaces` library, extra `wandb-report`).

The Report holds one run set (the project's runs whose config `experiment_name` is the experiment,
grouped by `aggregator.name`), line panels over training steps of what RVPOTrainer logs through
TRL (W&B prefixes TRL's keys with `train/`): per-channel satisfaction `train/channels/<c>/satisfied`,
`train/channels/bottleneck`, `train/channels/all_constraints`, the risk `train/aggregator/risk` and
the SoftMin weights `train/aggregator/weight/<c>`; a bar panel of the final evaluation metrics
(W&B summary `eval/<metric>`, written by the run's evaluation in rvpo_repro.run.evaluation); the results
table with CIs and p-values; and the paper's numbers beside ours. `--dry-run` writes the spec as JSON and
needs no network; saving needs a W&B login.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd

from rvpo_repro.analysis.output import write_if_changed

log = logging.getLogger(__name__)

TRAIN_PREFIX = "train/"  # transformers' WandbCallback rewrites a training log key k to train/k
EVAL_PREFIX = "eval/"  # the W&B summary keys of the final evaluation metrics


def _logger(runs) -> dict:
    return next((r.config.get("logger") or {} for r in runs.records.values()), {})


def report_spec(runs, table_md: str, paper_md: str, history_keys: set[str] | None = None) -> dict:
    """The Report as plain data. Panels name exact keys where the runs' log_history shows them
    (`history_keys`: TRL's keys, without `train/`), and regexes for the per-channel families."""
    keys = history_keys or set()
    channels = sorted(k.split("/")[1] for k in keys if re.fullmatch(r"channels/[^/]+/satisfied", k))
    weights = sorted(k.split("/")[2] for k in keys if k.startswith("aggregator/weight/"))
    t = TRAIN_PREFIX
    panels = [
        {"type": "line", "title": "Per-channel satisfaction (binary channels, training rollouts)",
         "y": [f"{t}channels/{c}/satisfied" for c in channels], "metric_regex": f"{t}channels/.*/satisfied"},
        {"type": "line", "title": "Bottleneck: weakest channel, normalised to 0-1", "y": [f"{t}channels/bottleneck"]},
        {"type": "line", "title": "All binary constraints met", "y": [f"{t}channels/all_constraints"]},
        {"type": "line", "title": "Risk coefficient k (RVPO)", "y": [f"{t}aggregator/risk"]},
        {"type": "line", "title": "SoftMin weight per channel (RVPO)",
         "y": [f"{t}aggregator/weight/{c}" for c in weights], "metric_regex": f"{t}aggregator/weight/.*"},
        {"type": "bar", "title": "Final held-out evaluation (mean over seeds per aggregator)",
         "metrics": [EVAL_PREFIX + m for m in runs.metrics]},
    ]  # fmt: skip
    for p in panels:
        if p["type"] == "line":
            p["x"] = f"{TRAIN_PREFIX}global_step"  # W&B's Step counts every log call (TRL's timings too)
    logger = _logger(runs)
    return {
        "entity": logger.get("entity"),
        "project": logger.get("project", "rvpo-repro"),
        "title": f"RVPO reproduction: {runs.experiment}",
        "description": f"Runs of experiment {runs.experiment}, grouped by aggregator; table and paper numbers from rvpo-report.",
        "runset": {
            "name": runs.experiment,
            "filters": {"config.experiment_name": runs.experiment},
            "filter_expr": f"Config('experiment_name') = '{runs.experiment}'",
            "groupby": ["aggregator.name"],
            "runs": sorted(runs.df.run_id),
        },
        "panels": panels,
        "results_table_md": table_md,
        "paper_md": paper_md,
    }


def _blocks(spec: dict, wr) -> list:
    rs = spec["runset"]
    runset = wr.Runset(entity=spec["entity"] or "", project=spec["project"], name=rs["name"],
                       filters=rs["filter_expr"], groupby=rs["groupby"])  # fmt: skip
    panels = []
    for p in spec["panels"]:
        if p["type"] == "line":
            kw = (
                {"metric_regex": p["metric_regex"]} if p.get("metric_regex") and not p["y"] else {"y": p["y"]}
            )
            panels.append(
                wr.LinePlot(
                    title=p["title"], x=p["x"], groupby_aggfunc="mean", groupby_rangefunc="stddev", **kw
                )
            )
        else:
            panels.append(
                wr.BarPlot(
                    title=p["title"], metrics=p["metrics"], groupby_aggfunc="mean", groupby_rangefunc="stddev"
                )
            )
    return [
        wr.H1(spec["title"]), wr.P(spec["description"]),
        wr.PanelGrid(runsets=[runset], panels=panels),
        wr.H2("Results (rvpo-report)"), wr.MarkdownBlock(spec["results_table_md"]),
        wr.H2("The paper's numbers beside ours"), wr.MarkdownBlock(spec["paper_md"]),
    ]  # fmt: skip


def build_wandb_report(spec: dict, out: Path, dry_run: bool) -> tuple[Path, str | None]:
    """Write the spec to `out` (always); unless dry_run, save the Report and return its URL.
    With the library installed, a dry run also builds the Report objects (no network)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_if_changed(out, json.dumps(spec, indent=2, ensure_ascii=False) + "\n")
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError:
        if dry_run:
            return out, None
        raise SystemExit(
            "the W&B Report needs the optional extra: pip install 'rvpo-repro[wandb-report]'"
        ) from None
    report = wr.Report(project=spec["project"], entity=spec["entity"] or "", title=spec["title"],
                       description=spec["description"], blocks=_blocks(spec, wr), width="fluid")  # fmt: skip
    if dry_run:
        return out, None
    report.save()  # network: needs `wandb login`
    return out, report.url


def log_table(runs, table: pd.DataFrame) -> bool:
    """Log the table as a wandb.Table in a summary run when the runs logged online and W&B is not
    forced offline (WANDB_MODE); otherwise log a line and do nothing."""
    modes = {str((r.config.get("logger") or {}).get("mode")) for r in runs.records.values()}
    env = os.environ.get("WANDB_MODE", "").lower()
    if "online" not in modes or env in ("offline", "disabled", "dryrun"):
        log.info(
            "W&B: tables not logged (runs' logger.mode %s, WANDB_MODE=%s)", sorted(modes), env or "unset"
        )
        return False
    import wandb

    logger = _logger(runs)
    run = wandb.init(project=logger.get("project", "rvpo-repro"), entity=logger.get("entity"), job_type="report",
                     group=runs.experiment, name=f"report-{runs.experiment}", reinit="finish_previous")  # fmt: skip
    try:
        run.log(
            {
                f"report/{runs.experiment}": wandb.Table(
                    dataframe=table.astype(object).where(table.notna(), None)
                )
            }
        )
    finally:
        run.finish()
    return True


def leaderboard_spec(experiments: list[str], table_md: str, run_ids: list[str]) -> dict:
    """The benchmark's Report section as plain data (the shape `report_spec` returns): one run set
    over the benchmark's experiments grouped by aggregator, the held-out primary metric per group,
    the bottleneck curve, and the leaderboard table."""
    t = TRAIN_PREFIX
    names = ", ".join(repr(e) for e in experiments)
    panels = [
        {"type": "bar", "title": "Held-out primary metric per aggregator",
         "metrics": [f"{EVAL_PREFIX}rewards/all_constraints", f"{EVAL_PREFIX}healthbench/score"]},
        {"type": "line", "title": "Bottleneck: weakest channel, normalised to 0-1", "x": "Step",
         "y": [f"{t}channels/bottleneck"]},
        {"type": "line", "title": "Channel weights of the aggregator", "x": "Step", "y": [],
         "metric_regex": f"{t}aggregator/weight/.*"},
    ]  # fmt: skip
    return {
        "entity": None,
        "project": "rvpo-repro",
        "title": "RVPO reproduction: aggregator benchmark",
        "description": f"Every registered aggregator on {names}; leaderboard from rvpo_repro.analysis.leaderboard.",
        "runset": {
            "name": "benchmark",
            "filters": {"config.experiment_name": {"$in": list(experiments)}},
            "filter_expr": " or ".join(f"Config('experiment_name') = '{e}'" for e in experiments),
            "groupby": ["aggregator.name"],
            "runs": run_ids,
        },
        "panels": panels,
        "results_table_md": table_md,
        "paper_md": "",
    }
