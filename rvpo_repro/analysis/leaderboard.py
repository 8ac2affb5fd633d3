"""The benchmark leaderboard: every aggregator on every CPU task, on equal footing (`make benchmark`).

Per task and across tasks, for each method (the aggregator's label, rvpo_repro.analysis.labels):
the mean and the IQM of the task's primary metric over seeds with 95% stratified-bootstrap CIs, the
probability of improvement over RVPO (k = 1) and over GDPO with their CIs, the bottleneck rate and
each channel's held-out mean (rewards/<channel>, as channel/<channel>). Estimators: rvpo_repro.analysis.
stats.intervals. The "all tasks" rows pool, per method, the seeds it finished on every task
(a (seeds, tasks) matrix, as rliable's); the per-task rows use every finished seed.

Writes results/tables/benchmark.{csv,md} (one row per method and task, plus the "all" rows),
results/tables/benchmark_provenance.json (every run's id, seed, config hash, git commit and the
library versions), results/figures/benchmark/{leaderboard,profiles}.png, the page
results/report/benchmark/index.html and its W&B Report spec (wandb_report.json). `make benchmark` then
puts the aggregators' credit profiles on that page (rvpo_repro.analysis.credit).

    python -m rvpo_repro.analysis.leaderboard --experiment toy rubric_toy [--aggregators rvpo,gdpo,...]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rvpo_repro.analysis import page, wandb_report
from rvpo_repro.analysis.output import save_figure, shows_same_table, write_if_changed
from rvpo_repro.analysis.runs import RecordError, load_runs, provenance
from rvpo_repro.analysis.stats import intervals
from rvpo_repro.config import ConfigError

ALL = "all tasks"
REFERENCES = {"rvpo": "rvpo (k=1)", "gdpo": "gdpo"}  # the labels of the methods compared against
TAUS = np.linspace(0.0, 1.0, 101)


def method_labels(aggregators: list[str]) -> set[str]:
    """The method labels of these aggregator configs (conf/aggregator/<name>.yaml) at their defaults."""
    from rvpo_repro.analysis.labels import configured_methods

    return {label for label, _ in configured_methods(aggregators).values()}


def collect_scores(
    results_dir: str | Path, experiments: list[str], aggregators: list[str] | None = None
) -> tuple[pd.DataFrame, list[dict]]:
    """One row per finished run: task, method, aggregator, seed, score (its primary metric), and
    every `rewards/*` rate; plus each run's provenance. With `aggregators`, only the runs of those
    configs: other runs of the same tasks (a risk ablation's k = 0.5, say) stay out of the ranking."""
    keep = method_labels(aggregators) if aggregators else None
    rows, prov = [], []
    for exp in experiments:
        runs = load_runs(results_dir, exp, split_configs=True)
        for d, rec in runs.records.items():
            method = runs.df.loc[runs.df.run_dir == d, "method"].iloc[0]
            if keep is not None and method not in keep:
                continue
            metric = rec.primary_metric or runs.metrics[0]
            row = {"task": exp, "method": method,
                   "aggregator": rec.config["aggregator"]["name"], "seed": rec.seed, "metric": metric,
                   "score": rec.metrics[metric]["value"]}  # fmt: skip
            row.update({k: m["value"] for k, m in rec.metrics.items() if k.startswith("rewards/")})
            rows.append(row)
            prov.append(provenance(exp, rec))
    df = pd.DataFrame(rows)
    if df.empty:
        raise FileNotFoundError(f"no finished runs of {experiments} under {Path(results_dir) / 'runs'}")
    return df.sort_values(["task", "method", "seed"]).reset_index(drop=True), prov


def _by_task(df: pd.DataFrame, method: str, tasks: list[str]) -> list[np.ndarray]:
    return [df[(df.method == method) & (df.task == t)].score.to_numpy(float) for t in tasks]


def complete_matrix(df: pd.DataFrame, method: str, tasks: list[str]) -> np.ndarray:
    """(seeds, tasks) scores of the seeds `method` finished on every task (may have 0 rows)."""
    g = df[df.method == method].pivot_table(index="seed", columns="task", values="score")
    g = g.reindex(columns=tasks).dropna()
    return g.to_numpy(float)


def _improvement(df, method, ref, tasks, seed) -> tuple[float, float, float]:
    x, y = _by_task(df, method, tasks), _by_task(df, ref, tasks)
    if method == ref or not all(len(a) for a in x) or not all(len(b) for b in y):
        return (np.nan, np.nan, np.nan)
    return intervals.probability_of_improvement_ci(x, y, seed=seed)


def leaderboard(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per (task, method) and one per method over all tasks (see the module docstring)."""
    tasks = sorted(df.task.unique())
    rate_cols = sorted(c for c in df.columns if c.startswith("rewards/"))
    out = []
    for scope in [*tasks, ALL]:
        scoped = tasks if scope == ALL else [scope]
        for method in sorted(df.method.unique()):
            if scope == ALL:
                mat = complete_matrix(df, method, tasks)
                sub = df[df.method == method]
            else:
                sub = df[(df.method == method) & (df.task == scope)]
                mat = sub.score.to_numpy(float)[:, None]
            if len(sub) == 0:
                continue
            row = {"task": scope, "method": method, "aggregator": sub.aggregator.iloc[0],
                   "metric": "/".join(sorted(sub.metric.unique())), "runs": len(sub),
                   "seeds": " ".join(str(s) for s in sorted(sub.seed.unique())), "seeds_in_matrix": len(mat)}  # fmt: skip
            for name, stat in (("mean", intervals.mean_score), ("iqm", intervals.iqm)):
                est = intervals.stratified_bootstrap_ci(mat, stat, seed=seed) if len(mat) else (np.nan,) * 3
                row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = est
            for key, ref in REFERENCES.items():
                est = _improvement(df, method, ref, scoped, seed)
                (
                    row[f"p_improve_vs_{key}"],
                    row[f"p_improve_vs_{key}_ci_low"],
                    row[f"p_improve_vs_{key}_ci_high"],
                ) = est
            for c in rate_cols:  # per task: the mean over seeds; all tasks: the mean of the task means
                vals = sub.groupby("task")[c].mean().dropna()
                row[c.replace("rewards/", "channel/")] = vals.mean() if len(vals) else np.nan
            out.append(row)
    tab = pd.DataFrame(out)
    return tab.sort_values(["task", "iqm"], ascending=[True, False], key=_task_order(tasks)).reset_index(
        drop=True
    )


def _task_order(tasks):
    order = {t: i for i, t in enumerate([*tasks, ALL])}
    return lambda s: s.map(order) if s.name == "task" else s


def profiles(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per method: the performance profile over TAUS of its complete (seeds, tasks) matrix."""
    tasks = sorted(df.task.unique())
    out = {}
    for method in sorted(df.method.unique()):
        mat = complete_matrix(df, method, tasks)
        if len(mat):
            out[method] = intervals.performance_profile(mat, TAUS)
    return out


def make_figures(tab: pd.DataFrame, prof: dict[str, np.ndarray], outdir: Path) -> list[tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    outdir.mkdir(parents=True, exist_ok=True)
    scopes = list(dict.fromkeys(tab.task))
    methods = list(tab[tab.task == ALL].sort_values("iqm").method) or sorted(tab.method.unique())
    fig = Figure(figsize=(4.2 * len(scopes), 0.32 * len(methods) + 1.6))
    for i, scope in enumerate(scopes):
        ax = fig.add_subplot(1, len(scopes), i + 1)
        t = tab[tab.task == scope].set_index("method").reindex(methods)
        y = np.arange(len(methods))
        ax.errorbar(t.iqm, y, xerr=[t.iqm - t.iqm_ci_low, t.iqm_ci_high - t.iqm], fmt="o", color="#1f5fa8",
                    ecolor="#9bb8dc", capsize=2, label="IQM, 95% CI")  # fmt: skip
        ax.plot(t["mean"], y, "|", color="#c0392b", markersize=9, label="mean")
        ax.set_yticks(y, methods if i == 0 else [""] * len(methods), fontsize=7)
        ax.set_ylim(-0.8, len(methods) - 0.2)
        ax.set_title(scope, fontsize=9)
        ax.set_xlabel("primary metric (held-out)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.axes[-1].legend(fontsize=7, loc="best", framealpha=0.8)
    fig.tight_layout()
    board = outdir / "leaderboard.png"
    save_figure(fig, board, dpi=130)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for method, curve in sorted(prof.items(), key=lambda kv: -kv[1].sum()):
        style = "-" if method in REFERENCES.values() else "--"
        ax.plot(TAUS, curve, style, linewidth=1.8 if style == "-" else 1.0, label=method)
    ax.set_xlabel("threshold τ on the primary metric")
    ax.set_ylabel("share of (seed, task) runs above τ")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    prof_path = outdir / "profiles.png"
    save_figure(fig, prof_path, dpi=130)
    return [
        (board, "IQM (dot, 95% stratified-bootstrap CI) and mean (bar) of each task's primary metric over seeds, "
                "per task and over all tasks (the seeds a method finished on every task)."),
        (prof_path, "Performance profiles: share of a method's (seed, task) runs whose primary metric exceeds τ; "
                    "a curve above another is better at every threshold. Solid: RVPO (k=1) and GDPO."),
    ]  # fmt: skip


def to_markdown(tab: pd.DataFrame) -> str:
    def ci(r, k):
        return "—" if r[k] != r[k] else f"{r[k]:.3f} [{r[k + '_ci_low']:.3f}, {r[k + '_ci_high']:.3f}]"

    lines = ["| task | method | seeds | mean [95% CI] | IQM [95% CI] | P(> rvpo) | P(> gdpo) | bottleneck |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in tab.iterrows():
        bottleneck = r.get("channel/bottleneck", np.nan)
        lines.append(
            f"| {r.task} | {r.method} | {r.seeds} | {ci(r, 'mean')} | {ci(r, 'iqm')} | {ci(r, 'p_improve_vs_rvpo')} "
            f"| {ci(r, 'p_improve_vs_gdpo')} | {'—' if bottleneck != bottleneck else f'{bottleneck:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def build(experiments: list[str], results_dir: str | Path = "results", out: str | Path = "results",
          seed: int = 0, command: str | None = None, status: str = "",
          aggregators: list[str] | None = None) -> dict[str, Path]:  # fmt: skip
    """Compute the leaderboard of `experiments` (of `aggregators`' runs only, when given) and write
    every output; returns their paths."""
    out = Path(out)
    df, prov = collect_scores(results_dir, experiments, aggregators)
    tab = leaderboard(df, seed)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    paths = {"csv": tables / "benchmark.csv", "md": tables / "benchmark.md",
             "provenance": tables / "benchmark_provenance.json"}  # fmt: skip
    md = to_markdown(tab)
    md_text = (
        f"# Aggregator benchmark: {', '.join(experiments)}\n\n" + (f"{status}\n\n" if status else "") + md
    )
    if shows_same_table(paths["md"], md_text) and all(p.is_file() for p in paths.values()):
        # The same leaderboard: its files, figures, page and the provenance of the runs that made
        # it stay as written (a rerun elsewhere has other commits, the same result).
        return {}
    write_if_changed(paths["csv"], tab.to_csv(index=False))
    write_if_changed(paths["md"], md_text)
    boot = {"n": intervals.N_BOOT, "confidence": intervals.CONFIDENCE, "seed": seed}
    meta = {"experiments": experiments, "bootstrap": boot,
            "runs": sorted(prov, key=lambda p: (p["experiment"], p["run_id"]))}  # fmt: skip
    write_if_changed(paths["provenance"], json.dumps(meta, indent=1) + "\n")
    figs = make_figures(tab, profiles(df), out / "figures" / "benchmark")
    command = command or "python -m rvpo_repro.analysis.leaderboard --experiment " + " ".join(experiments)
    paths["page"] = page.write_leaderboard_page(
        tab, md, figs, paths, out / "report" / "benchmark", command, status
    )
    spec = wandb_report.leaderboard_spec(experiments, md, sorted(p["run_id"] for p in prov))
    paths["wandb"], _ = wandb_report.build_wandb_report(
        spec, out / "report" / "benchmark" / "wandb_report.json", True
    )
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", nargs="+", required=True, help="experiments (tasks) to rank on")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--out", default="results")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    p.add_argument("--status", default="", help="a line on how complete the runs are, shown with the table")
    p.add_argument(
        "--aggregators", help="comma-separated aggregator configs to rank (default: every run of the tasks)"
    )
    a = p.parse_args(argv)
    aggregators = [x for x in (a.aggregators or "").split(",") if x] or None
    try:
        paths = build(
            a.experiment,
            a.results_dir,
            a.out,
            a.seed,
            shlex.join([sys.argv[0], *sys.argv[1:]]),
            a.status,
            aggregators,
        )
    except (FileNotFoundError, ConfigError, RecordError) as err:  # no runs; no such config; a bad record
        print(f"rvpo-leaderboard: {err}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    if not paths:
        print(
            f"benchmark: {Path(a.out) / 'tables' / 'benchmark.md'} already shows this table; no file rewritten"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
