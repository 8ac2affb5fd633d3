"""The risk ablation of an experiment: best and final held-out score per risk setting, and score vs k.

python -m rvpo_repro.analysis.ablation --experiment rubric_toy [--results-dir results] [--out results]
    [--metric healthbench/score]

Reads the finished runs of the experiment (their records), keeps the RVPO-family settings
(rvpo at a constant k, hard_min = k -> inf, rvpo under a k schedule, variance_penalty) and writes
<out>/tables/<experiment>_ablation.{md,csv} and <out>/figures/<experiment>_ablation/score_vs_k.png
(plus checkpoints.png, the held-out score at every checkpoint). Per run: `final` is the recorded
metric, `best` the test value at the best checkpoint: the one with the highest validation score
(`trainer.validation_prompts`, rvpo_repro.run.checkpoint_eval), or, for runs without a validation
split, the highest test value of the checkpoint evaluations (`trainer.eval_checkpoints=true`) and the
final one, which the table's `best selected on` column labels optimistic; the paper reports its
pair as peak -> final. Means over seeds, with a 95% t
interval over seeds (`stats.table_rule.mean_ci`). Settings are named by `labels.setting_label`, with the
aggregators' own defaults filled in (rvpo's risk, variance_penalty's beta).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rvpo_repro.analysis.labels import setting_label
from rvpo_repro.analysis.output import save_figure, shows_same_table, write_if_changed
from rvpo_repro.analysis.runs import record_dirs
from rvpo_repro.analysis.stats.table_rule import mean_ci
from rvpo_repro.run.checkpoint_eval import best_checkpoint
from rvpo_repro.run.record import load_record

INF = math.inf


def default_risk() -> float:
    """The constant k rvpo takes when its config leaves `risk` unset (None), read from its class."""
    from rvpo_repro.aggregators import AGGREGATORS  # torch: only when a record needs it

    return float(AGGREGATORS["rvpo"].default_risk)


def variant(agg: dict) -> tuple[str, float | None, int] | None:
    """(label, k on the x axis or None, sort order) of an ablation setting; None for other methods."""
    name = agg.get("name")
    if agg.get("saturated") == "drop":  # the saturation rule; every other row keeps saturated channels
        base = variant({**agg, "saturated": None})
        return (f"{base[0][:-1]}, saturated dropped)", None, 4) if base else None
    if name == "rvpo" and agg.get("schedule") not in (None, "constant") and agg.get("risk_start") is not None:
        return setting_label(agg), None, 2
    if name == "rvpo":
        k = default_risk() if agg.get("risk") is None else float(agg["risk"])
        return setting_label({**agg, "risk": k}), k, 0
    if name == "hard_min":
        return setting_label(agg), INF, 1
    if name == "variance_penalty":
        from rvpo_repro.aggregators import option_defaults  # torch: only when a record needs it

        beta = option_defaults("variance_penalty")["beta"] if agg.get("beta") is None else float(agg["beta"])
        return setting_label({**agg, "beta": beta}), None, 3
    return None


def load(
    results_dir: str | Path, experiment: str, metric: str | None, seeds: list[int] | None = None
) -> tuple[pd.DataFrame, str]:
    """One row per ablation run: label, k, order, seed, final, best, best_step, and the checkpoint
    scores (list of (step, value)); plus the metric used (default: the runs' primary metric).
    With `seeds`, only those seeds' runs: the benchmark's extra seeds of shared settings stay out."""
    rows = []
    for d in record_dirs(results_dir, experiment):
        rec = load_record(d)
        v = variant(rec.config["aggregator"])
        if v is None or (seeds is not None and rec.seed not in seeds):
            continue
        m = metric or rec.primary_metric
        if m not in rec.metrics:
            raise ValueError(f"{d}: the record has no metric {m!r}; it has {sorted(rec.metrics)}")
        final = rec.metrics[m]["value"]
        ckpts = [
            (c["step"], c["metrics"][m]) for c in rec.extra.get("checkpoint_evals") or [] if m in c["metrics"]
        ]
        steps = [s for s, _ in ckpts]
        rows_ = rec.extra.get("checkpoint_evals") or []
        best_step, best, selected = best_checkpoint(rows_, m, (max(steps, default=0), final))
        rows.append(
            {
                "label": v[0],
                "k": v[1],
                "order": v[2],
                "seed": rec.seed,
                "final": final,
                "best": best,
                "best_step": best_step,
                "selected_on": selected,
                "checkpoints": ckpts,
                "run_dir": str(d),
            }
        )
        metric = m
    if not rows:
        raise ValueError(
            f"no ablation runs (rvpo, hard_min, variance_penalty) under {results_dir}/runs/{experiment}"
        )
    return pd.DataFrame(rows), metric


def _ci(x: np.ndarray) -> tuple[float, float]:
    """95% t interval over seeds (NaN below two): the report's own, without per-example scores or bounds."""
    low, high, _ = mean_ci(x, None, None, seed=0)
    return low, high


def _sort_key(df: pd.DataFrame) -> pd.Series:
    return df["order"] * 100 + df["k"].fillna(0).replace(INF, 99)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: seeds, best and final (mean, 95% CI), mean drop best - final, per-seed finals."""
    out = []
    for label, g in runs.groupby("label", sort=False):
        g = g.sort_values("seed")
        best, final = g["best"].to_numpy(float), g["final"].to_numpy(float)
        out.append(
            {
                "setting": label,
                "k": g["k"].iloc[0],
                "order": g["order"].iloc[0],
                "seeds": len(g),
                "best": best.mean(),
                "best 95% CI": "[{:.3f}, {:.3f}]".format(*_ci(best)),
                "final": final.mean(),
                "final 95% CI": "[{:.3f}, {:.3f}]".format(*_ci(final)),
                "best - final": (best - final).mean(),
                "best step (per seed)": " ".join(str(int(s)) for s in g["best_step"]),
                "best selected on": " / ".join(sorted(set(g["selected_on"]))),
                "final (per seed)": " ".join(f"{v:.3f}" for v in final),
            }
        )
    df = pd.DataFrame(out)
    df = df.iloc[_sort_key(df).argsort(kind="stable")].reset_index(drop=True)
    return df.drop(columns=["order"])


def figures(runs: pd.DataFrame, tab: pd.DataFrame, metric: str, outdir: Path) -> list[Path]:
    """score_vs_k.png (best and final against k; schedules and the penalty beside the axis) and
    checkpoints.png (held-out score against step, mean over seeds, per setting)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    outdir.mkdir(parents=True, exist_ok=True)
    fixed = tab[tab["k"].notna()].copy()
    others = tab[tab["k"].isna()]
    finite = sorted(v for v in fixed["k"] if v != INF)
    # categorical x: each k evenly spaced (0 and inf cannot share a log axis), others to the right
    xs = {k: i for i, k in enumerate([*finite, *([INF] if (fixed["k"] == INF).any() else [])])}
    names = [f"{k:g}" if k != INF else "∞\n(hard min)" for k in xs]
    n = len(xs)
    for j, label in enumerate(others["setting"]):
        names.append(label.replace(" (", "\n("))
        xs[label] = n + j

    fig = Figure(figsize=(max(6.0, 1.05 * len(xs)), 3.8))
    ax = fig.subplots()
    for col, style in (("best", dict(marker="^", mfc="white")), ("final", dict(marker="o"))):
        for _, r in tab.iterrows():
            key = r["k"] if not pd.isna(r["k"]) else r["setting"]
            vals = runs.loc[runs["label"] == r["setting"], col].to_numpy(float)
            x = xs[key] + (-0.12 if col == "best" else 0.12)
            ax.scatter(np.full(len(vals), x), vals, s=9, color="#999999", zorder=2)
            lo, hi = _ci(vals)
            yerr = None if math.isnan(lo) else [[vals.mean() - lo], [hi - vals.mean()]]
            ax.errorbar(
                x,
                vals.mean(),
                yerr=yerr,
                color="#D55E00" if col == "final" else "#0072B2",
                capsize=3,
                ls="none",
                zorder=3,
                **style,
            )
        line = [(xs[k], tab.loc[tab["k"] == k, col].iloc[0]) for k in xs if not isinstance(k, str)]
        ax.plot(
            *zip(*line, strict=True),
            color="#D55E00" if col == "final" else "#0072B2",
            lw=1,
            alpha=0.6,
            label=f"{col} (mean, 95% CI over seeds)",
            marker=style["marker"],
            mfc=style["mfc"] if "mfc" in style else None,
        )
    if others.shape[0]:
        ax.axvline(n - 0.5, color="#cccccc", lw=0.8)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("risk coefficient k")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(
        f"Risk ablation: best checkpoint and final score ({int(runs.seed.nunique())} seeds max)", fontsize=10
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    paths = [outdir / "score_vs_k.png"]
    save_figure(fig, paths[0], dpi=130)

    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    for label in tab["setting"]:
        g = runs[runs["label"] == label]
        pts = pd.DataFrame([(s, v) for c in g["checkpoints"] for s, v in c], columns=["step", "value"])
        if pts.empty:
            continue
        mean = pts.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.to_numpy(), marker=".", label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title("Held-out score at each checkpoint (mean over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(outdir / "checkpoints.png")
    save_figure(fig, paths[1], dpi=130)
    return paths


def write(tab: pd.DataFrame, metric: str, experiment: str, out: Path, command: str) -> list[Path]:
    """<out>/<experiment>_ablation.{csv,md}, unless the md already shows the same rows; returns the
    paths written."""
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{experiment}_ablation.csv", out / f"{experiment}_ablation.md"
    shown = tab.copy()
    shown["k"] = shown["k"].map(lambda k: "—" if pd.isna(k) else ("∞" if k == INF else f"{k:g}"))
    text = [
        f"# {experiment}: risk ablation ({metric})",
        "",
        f"- best: the highest held-out {metric} over the checkpoint evaluations and the final one; "
        "final: at the last step. Means over seeds; 95% CI: t interval over seeds.",
        f"- Command: `{command}`",
        "",
        shown.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    if shows_same_table(md, "\n".join(text)) and csv.is_file():
        return []  # the same result: its files stay as committed
    write_if_changed(csv, tab.to_csv(index=False, float_format="%.4f"))
    write_if_changed(md, "\n".join(text))
    return [csv, md]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", required=True)
    p.add_argument("--results-dir", default="results")
    p.add_argument("--out", default="results")
    p.add_argument("--metric", default=None, help="default: the runs' primary metric")
    p.add_argument("--seeds", default=None, help="comma-separated seeds to include (default: every seed)")
    args = p.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        print(f"rvpo-ablation: --seeds {args.seeds!r}: expected comma-separated integers", file=sys.stderr)
        return 2
    runs, metric = load(args.results_dir, args.experiment, args.metric, seeds)
    tab = table(runs)
    command = "python -m rvpo_repro.analysis.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    files = write(tab, metric, args.experiment, Path(args.out) / "tables", command)
    if files:  # the figures show the table's numbers: redrawn only with them
        files += figures(runs, tab, metric, Path(args.out) / "figures" / f"{args.experiment}_ablation")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            tab.drop(columns=["final (per seed)"]).to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )
    print(
        "\n".join(f"wrote {f}" for f in files)
        or f"{args.experiment}_ablation: the same table as written; no file rewritten"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
