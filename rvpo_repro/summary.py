"""Print the comparison table of an experiment: each metric per aggregator, over seeds.

python -m rvpo_repro.summary --experiment toy [--baseline gdpo] [--results-dir results]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from rvpo_repro.results import collect

KEY_COLUMNS = {
    "experiment",
    "run_id",
    "run_dir",
    "model",
    "task",
    "aggregator",
    "seed",
    "config_hash",
    "git_commit",
}


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [
        c
        for c in df.columns
        if c not in KEY_COLUMNS and not c.endswith("_stderr") and df[c].dtype.kind in "fi"
    ]


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (model, task, aggregator), columns: per metric "mean ± sd" over seeds, and n seeds."""
    out = []
    for (model, task, agg), g in df.groupby(["model", "task", "aggregator"], sort=True):
        row = {"model": model, "task": task, "aggregator": agg, "seeds": len(g)}
        for m in metric_columns(df):
            vals = g[m].to_numpy(dtype=float)
            sd = np.std(vals, ddof=1) if len(vals) > 1 else float("nan")
            row[m] = f"{np.mean(vals):.3f} ± {sd:.3f}" if len(vals) > 1 else f"{np.mean(vals):.3f}"
        out.append(row)
    return pd.DataFrame(out)


def comparison_table(df: pd.DataFrame, metric: str, baseline: str, seed: int = 0) -> pd.DataFrame:
    """Each aggregator against `baseline` on `metric`, per (model, task).

    Two tests, since both sources of noise matter: Welch's t over per-seed values (seed-to-seed
    spread), and a hierarchical bootstrap that resamples seeds, then eval examples (pairs examples
    by id across runs). Holm-Bonferroni adjusts the hierarchical p-values over the family.
    """
    from rvpo_repro.results import examples
    from rvpo_repro.stats import hierarchical_bootstrap, holm, welch

    rows = []
    for (model, task), g in df.groupby(["model", "task"], sort=True):
        base = g[g.aggregator == baseline]
        if base.empty:
            continue
        base_runs = [examples(d)["score"] for d in base.run_dir]
        for agg, a in g[g.aggregator != baseline].groupby("aggregator", sort=True):
            runs = [examples(d)["score"] for d in a.run_dir]
            ids = base_runs[0].index
            h = hierarchical_bootstrap(
                [r.reindex(ids).to_numpy() for r in runs],
                [r.reindex(ids).to_numpy() for r in base_runs],
                seed=seed,
            )
            w = welch(a[metric].to_numpy(dtype=float), base[metric].to_numpy(dtype=float))
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "aggregator": agg,
                    f"Δ {metric} vs {baseline}": f"{h.statistic:+.3f}",
                    "95% CI (hier. bootstrap)": "n/a"
                    if h.ci is None
                    else f"[{h.ci[0]:+.3f}, {h.ci[1]:+.3f}]",
                    "p (hier. bootstrap)": h.p_value,
                    "p (Welch, seeds)": w.p_value,
                    "note": "; ".join(n for n in (h.note, w.note) if n),
                }
            )
    out = pd.DataFrame(rows)
    if not out.empty:
        testable = out["p (hier. bootstrap)"].notna()
        out["p Holm"] = None
        if testable.any():
            out.loc[testable, "p Holm"] = holm(out.loc[testable, "p (hier. bootstrap)"].to_numpy(dtype=float))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", required=True)
    p.add_argument("--results-dir", default="results")
    p.add_argument("--baseline", default="gdpo", help="aggregator the others are tested against")
    p.add_argument(
        "--metric", default="all_constraints", help="metric tested (its per-example column is `score`)"
    )
    args = p.parse_args(argv)
    df = collect(args.results_dir, args.experiment)
    if df.empty:
        print(f"no finished runs under {args.results_dir}/runs/{args.experiment}", file=sys.stderr)
        return 1
    print(f"\n{args.experiment}: mean ± sd over seeds ({len(df)} runs)\n")
    print(summary_table(df).to_markdown(index=False))
    if args.baseline in set(df.aggregator):
        cmp = comparison_table(df, args.metric, args.baseline)
        print(f"\n{args.metric} against {args.baseline} (seeded tests, rvpo_repro.stats)\n")
        print(cmp.to_markdown(index=False, floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
