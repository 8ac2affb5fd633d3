"""Which channels each method learns, beside what its credit profile predicts.

From the runs of one experiment trained with `trainer.eval_checkpoints`: each channel's held-out
rate at every checkpoint (the task's `rewards/<channel>` metrics, without the aggregates
all_constraints and bottleneck), mean over seeds, per method.

The split (one rule for every method, so the classes do not depend on the method): a channel is
**met early** when its held-out rate at the first checkpoint, averaged over every run of every
method, is at least EARLY (0.5): most responses already meet it; otherwise it is **acquired late**
(or never). Per method: each channel's rate at the first and last checkpoint and the gain between
them; per class, the mean over its channels.

Beside them, the method's credit profile (rvpo_repro.analysis.credit; G = 8, K = 5, no whitening,
a risk schedule taken at its midpoint): the advantage of a rollout that alone meets a hard channel
(`meets`), of one that also slips on an easy channel the rest meet (`slips`), and their ratio
`slips / meets`, which does not depend on the method's scale: below 0 a rollout that learns a rare
channel while slipping on a common one is pushed down.

Writes <out>/tables/<experiment>_channels.{csv,md,json} (the JSON holds the figures' numbers),
<out>/tables/<experiment>_provenance.json (every run behind them: id, seed, commit, versions) and
<out>/figures/<experiment>_channels/{held_out_by_channel,profile_vs_late}.png:

    python -m rvpo_repro.analysis.channel_outcomes --experiment rubric_toy_long
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rvpo_repro.analysis.labels import method_label, risk_of
from rvpo_repro.analysis.output import print_paths
from rvpo_repro.analysis.runs import provenance, record_dirs
from rvpo_repro.run.record import load_record

EARLY = 0.5  # first-checkpoint rate (pooled over all runs) at or above which a channel is "met early"
AGGREGATES = {"rewards/all_constraints", "rewards/bottleneck"}  # not channels of their own
PROFILE_PROGRESS = 0.5  # where a risk schedule's profile is read


def records(results_dir: str | Path, experiment: str) -> list:
    """The finished run records of `experiment`, in run-directory order."""
    return [load_record(d) for d in record_dirs(results_dir, experiment)]


def checkpoint_rates(
    results_dir: str | Path, experiment: str, primary: bool = False
) -> tuple[pd.DataFrame, dict]:
    """One row per (run, checkpoint step, channel): method, aggregator, seed, step, channel, rate;
    and {method: its aggregator config}. With `primary`, the rows of each run's primary metric
    instead of its channels. FileNotFoundError when no finished run has checkpoints."""
    rows, configs = [], {}
    for rec in records(results_dir, experiment):
        agg = rec.config["aggregator"]
        method = method_label(agg)
        configs.setdefault(method, agg)
        for c in rec.extra.get("checkpoint_evals") or []:
            for key, value in c.get("metrics", {}).items():
                wanted = (
                    key == rec.primary_metric
                    if primary
                    else key.startswith("rewards/") and key not in AGGREGATES
                )
                if wanted and value == value:
                    rows.append({"method": method, "aggregator": agg["name"], "seed": rec.seed, "run": rec.run_id,
                                 "step": c["step"], "channel": key.removeprefix("rewards/"), "rate": float(value)})  # fmt: skip
    if not rows:
        raise FileNotFoundError(
            f"no finished run with checkpoint evaluations under {Path(results_dir) / 'runs' / experiment} "
            "(train with trainer.eval_checkpoints=true)"
        )
    return pd.DataFrame(rows), configs


def classify(rates: pd.DataFrame, threshold: float = EARLY) -> pd.DataFrame:
    """Per channel: its pooled rate at the first checkpoint step and its class (early | late)."""
    first = rates.step.min()
    pooled = rates[rates.step == first].groupby("channel").rate.mean()
    return pd.DataFrame({"first_step": first, "first_rate_pooled": pooled,
                         "class": np.where(pooled >= threshold, "early", "late")}).rename_axis("channel")  # fmt: skip


def credit_of(agg: dict) -> dict[str, float]:
    """The credit profile of one aggregator config: meets, slips (m = 1, G = 8, K = 5) and their ratio."""
    from rvpo_repro.analysis import credit

    meth = credit.Method(agg["name"], method_label(agg), agg)
    a = meth.build()
    progress = PROFILE_PROGRESS if len(meth.phases()) > 1 else 0.0
    vals = {
        g: credit.advantage(a, g, credit.GROUP_SIZE, credit.CHANNELS, 1, progress) for g in ("meets", "slips")
    }
    return {"credit_meets": vals["meets"], "credit_slips": vals["slips"],
            "slips_over_meets": vals["slips"] / vals["meets"] if vals["meets"] else np.nan}  # fmt: skip


def outcomes(rates: pd.DataFrame, classes: pd.DataFrame, configs: dict) -> pd.DataFrame:
    """One row per (method, channel): class, seeds, rate at the first and last checkpoint (mean over
    seeds) and the gain; then one row per (method, class) with channel = `<class> channels (mean)`."""
    first, last = rates.step.min(), rates.step.max()
    per_seed = rates[rates.step.isin([first, last])].pivot_table(
        index=["method", "channel", "seed"], columns="step", values="rate"
    )
    per = per_seed.groupby(level=["method", "channel"]).mean()
    n = per_seed.groupby(level=["method", "channel"]).size()
    tab = pd.DataFrame({"first": per[first], "last": per[last], "seeds": n}).reset_index()
    tab["gain"] = tab["last"] - tab["first"]
    tab["class"] = tab.channel.map(classes["class"])
    means = tab.groupby(["method", "class"])[["first", "last", "gain", "seeds"]].mean().reset_index()
    means["channel"] = means["class"] + " channels (mean)"
    means["seeds"] = means.seeds.round().astype(int)
    out = pd.concat([tab, means], ignore_index=True)
    prof = pd.DataFrame({m: credit_of(configs[m]) for m in out.method.unique()}).T
    out = out.join(prof, on="method")
    order = {"early": 0, "late": 1}
    out["_c"] = out["class"].map(order) + out.channel.str.endswith("(mean)") * 0.5
    cols = ["method", "class", "channel", "seeds", "first", "last", "gain",
            "credit_meets", "credit_slips", "slips_over_meets"]  # fmt: skip
    return out.sort_values(["method", "_c", "channel"])[cols].reset_index(drop=True)


def summary(tab: pd.DataFrame) -> pd.DataFrame:
    """Per method: final held-out rate of its early and late channels, the late channels' gain,
    and its credit profile; sorted by the late channels' final rate."""
    m = tab[tab.channel.str.endswith("(mean)")]
    s = m.pivot_table(index="method", columns="class", values=["last", "gain"])
    s.columns = [f"{c}_{v}" for v, c in s.columns]
    prof = tab.drop_duplicates("method").set_index("method")[
        ["credit_meets", "credit_slips", "slips_over_meets"]
    ]
    seeds = tab.groupby("method").seeds.max()
    out = s.join(prof).assign(seeds=seeds).reset_index()
    return out.sort_values("late_last", ascending=False).reset_index(drop=True)


def rank_agreement(summ: pd.DataFrame) -> float:
    """Spearman correlation, over methods, of `slips / meets` with the late channels' final rate."""
    if len(summ) < 3:
        return float("nan")
    return float(summ.slips_over_meets.rank().corr(summ.late_last.rank()))


def benchmark_summary(path: str | Path, task: str, classes: pd.DataFrame) -> pd.DataFrame:
    """Per method of a committed benchmark table (its `task` rows; final held-out rates only, the
    `channel/<channel>` columns): the mean final rate of the early and of the late channels (as
    `classes` split them) and the method's credit profile; sorted by the late channels' rate."""
    from rvpo_repro.analysis.labels import configured_methods

    b = pd.read_csv(path)
    b = b[b.task == task]
    if b.empty:
        raise FileNotFoundError(f"{path}: no rows of task {task!r}")
    missing = [f"channel/{c}" for c in classes.index if f"channel/{c}" not in b.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing}; expected one per channel of {task}")
    by_label = {label: cfg for label, cfg in configured_methods().values()}
    rows = []
    for r in b.to_dict("records"):
        if r["method"] not in by_label:
            raise ValueError(f"{path}: method {r['method']!r} matches no config in conf/aggregator")
        cfg = by_label[r["method"]]
        rate = {
            k: np.mean([r[f"channel/{c}"] for c in classes.index[classes["class"] == k]])
            for k in ("early", "late")
        }
        rows.append({"method": r["method"], "seeds": len(str(r["seeds"]).split()), "early_last": rate["early"],
                     "late_last": rate["late"], "aggregator": cfg["name"], **credit_of(cfg)})  # fmt: skip
    return pd.DataFrame(rows).sort_values("late_last", ascending=False).reset_index(drop=True)


def to_markdown(tab: pd.DataFrame, summ: pd.DataFrame, classes: pd.DataFrame, experiment: str, rho: float,
                bench: pd.DataFrame | None = None, bench_task: str = "") -> str:  # fmt: skip
    cls = ", ".join(
        f"{c} ({r['class']}, {r.first_rate_pooled:.2f})" for c, r in classes.sort_values("class").iterrows()
    )
    first = int(classes.first_step.iloc[0])
    lines = [f"# {experiment}: which channels each method learns", "",
             f"Held-out rate of each channel (`rewards/<channel>`) at the first checkpoint (step {first}) and the "
             "last, mean over seeds. Rule: a channel is *met early* when its rate at the first checkpoint, pooled "
             f"over every run, is at least {EARLY:g}; otherwise *late*. Channels (class, pooled first rate): {cls}.",
             "Credit profile (G = 8, K = 5; schedules at their midpoint): `meets`, `slips` = advantage of a rollout "
             "that alone meets a hard channel, and of one that also slips on an easy channel the rest meet; "
             "`slips/meets` < 0: learning a rare channel while slipping on a common one is pushed down.",
             f"Spearman correlation over methods of slips/meets with the late channels' final rate: {rho:.2f} "
             f"({len(summ)} methods). Written by `python -m rvpo_repro.analysis.channel_outcomes --experiment {experiment}`.",
             "", "## Per method", "",
             "| method | seeds | early: final | late: final | late: gain | meets | slips | slips/meets |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summ.itertuples():
        lines.append(f"| {r.method} | {r.seeds} | {r.early_last:.3f} | {r.late_last:.3f} | {r.late_gain:+.3f} "
                     f"| {r.credit_meets:+.2f} | {r.credit_slips:+.2f} | {r.slips_over_meets:+.2f} |")  # fmt: skip
    if bench is not None:
        lines += ["", f"## The benchmark's {bench_task} runs (200 steps, final rates only)", "",
                  f"From the committed benchmark table (the runs' records are not committed, so no checkpoints): each "
                  f"method's final held-out rate of the same early and late channels, beside its credit profile. "
                  f"Spearman correlation over methods of slips/meets with the late channels' rate: "
                  f"{rank_agreement(bench):.2f} ({len(bench)} methods).", "",
                  "| method | seeds | early: final | late: final | meets | slips | slips/meets |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in bench.itertuples():
            lines.append(f"| {r.method} | {r.seeds} | {r.early_last:.3f} | {r.late_last:.3f} "
                         f"| {r.credit_meets:+.2f} | {r.credit_slips:+.2f} | {r.slips_over_meets:+.2f} |")  # fmt: skip
    lines += ["", "## Per channel", "", "| method | class | channel | seeds | first | last | gain |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in tab.itertuples():
        lines.append(
            f"| {r.method} | {r._2} | {r.channel} | {r.seeds} | {r.first:.3f} | {r.last:.3f} | {r.gain:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def curves(rates: pd.DataFrame) -> dict:
    """{method: {channel: {"steps": [...], "mean": [...], "seeds": {seed: [...]}}}} for the JSON and figure."""
    out: dict = {}
    for (method, channel), g in rates.groupby(["method", "channel"]):
        p = g.pivot_table(index="step", columns="seed", values="rate")
        out.setdefault(method, {})[channel] = {
            "steps": [int(s) for s in p.index],
            "mean": [round(float(v), 6) for v in p.mean(axis=1)],
            "seeds": {str(s): [None if v != v else round(float(v), 6) for v in p[s]] for s in p.columns},
        }
    return out


def make_figures(rates, classes, summ, configs, outdir: Path, bench=None) -> list[tuple[Path, str]]:
    from rvpo_repro.analysis.figures import method_styles, panel_grid
    from rvpo_repro.analysis.output import save_figure

    meta = pd.DataFrame(
        [{"method": m, "aggregator": c["name"], "risk": risk_of(c)[0], "schedule": risk_of(c)[1]}
         for m, c in configs.items()]
    )  # fmt: skip
    if bench is not None:
        extra = bench[~bench.method.isin(meta.method)]
        meta = pd.concat([meta, pd.DataFrame([{"method": r.method, "aggregator": r.aggregator,
                                               "risk": np.nan, "schedule": None} for r in extra.itertuples()])])  # fmt: skip
    styles = method_styles(meta)
    order = classes.sort_values(["class", "first_rate_pooled"], ascending=[True, False]).index.tolist()
    fig, axes = panel_grid(len(order), ncols=3)
    cur = curves(rates)
    for ax, ch in zip(axes, order, strict=True):
        for method in sorted(cur):
            if ch in cur[method]:
                c = cur[method][ch]
                ax.plot(c["steps"], c["mean"], marker="o", ms=2.5, lw=1.5, label=method, **styles[method])
        r = classes.loc[ch]
        ax.set_title(f"{ch}: {r['class']} (pooled {r.first_rate_pooled:.2f} at step {int(r.first_step)})")
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out rate")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False, fontsize=8
    )
    fig.suptitle("Held-out rate of each channel at every checkpoint (mean over seeds)", fontsize=11)
    a = save_figure(fig, outdir / "held_out_by_channel.png", dpi=110)
    runs = [("600-step runs", summ, "o")] + (
        [("benchmark, 200 steps", bench, "X")] if bench is not None else []
    )
    fig, axes = panel_grid(len(runs), ncols=2, size=(5.6, 4.2))
    for ax, (title, df, marker) in zip(axes, runs, strict=True):
        for r in df.itertuples():
            ax.scatter(r.slips_over_meets, r.late_last, s=50, marker=marker, color=styles[r.method]["color"],
                       label=r.method, zorder=3)  # fmt: skip
        ax.axvline(0.0, color="#999", lw=0.6)
        ax.set_title(f"{title}\nSpearman {rank_agreement(df):.2f} over {len(df)} methods")
        ax.set_xlabel("credit profile: slips / meets")
        ax.set_ylabel("late channels' final held-out rate")
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes for h in ax.collections}
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=7, frameon=False)
    b = save_figure(fig, outdir / "profile_vs_late.png", dpi=110)
    return [(a, "Held-out rate of each channel at every checkpoint, per method (mean over seeds); "
                "panels: the channels met early first, then those acquired late."),
            (b, "Each method's credit profile (slips/meets) against the final held-out rate of the channels "
                "acquired late.")]  # fmt: skip


def build(experiment: str, results_dir: str | Path = "results", out: str | Path = "results",
          benchmark: str | Path | None = None, benchmark_task: str = "") -> dict[str, Path]:  # fmt: skip
    """Compute the per-channel outcomes of `experiment` and write the table, JSON and figures; with
    `benchmark` (a benchmark.csv), its `benchmark_task` rows' final rates beside them."""
    from rvpo_repro.analysis.output import write_if_changed

    rates, configs = checkpoint_rates(results_dir, experiment)
    classes = classify(rates)
    tab = outcomes(rates, classes, configs)
    summ = summary(tab)
    rho = rank_agreement(summ)
    bench = None if benchmark is None else benchmark_summary(benchmark, benchmark_task, classes)
    tables = Path(out) / "tables"
    paths = {"csv": tables / f"{experiment}_channels.csv", "md": tables / f"{experiment}_channels.md",
             "json": tables / f"{experiment}_channels.json", "provenance": tables / f"{experiment}_provenance.json"}  # fmt: skip
    prov = sorted(
        (provenance(experiment, r) for r in records(results_dir, experiment)), key=lambda p: p["run_id"]
    )
    write_if_changed(
        paths["provenance"], json.dumps({"experiment": experiment, "runs": prov}, indent=1) + "\n"
    )
    write_if_changed(paths["csv"], tab.to_csv(index=False, float_format="%.6g"))
    write_if_changed(paths["md"], to_markdown(tab, summ, classes, experiment, rho, bench, benchmark_task))
    doc = {"experiment": experiment, "rule": f"met early: pooled held-out rate at step "
           f"{int(classes.first_step.iloc[0])} >= {EARLY:g}; otherwise late", "threshold": EARLY,
           "classes": {c: {"class": r["class"], "first_rate_pooled": round(float(r.first_rate_pooled), 6)}
                       for c, r in classes.iterrows()},
           "spearman_slips_over_meets_vs_late_final": None if rho != rho else round(rho, 6),
           "methods": _per_method(summ), "curves": curves(rates),
           "primary": curves(checkpoint_rates(results_dir, experiment, primary=True)[0])}  # fmt: skip
    if bench is not None:
        doc["benchmark"] = {"source": Path(benchmark).as_posix(), "task": benchmark_task,
                            "spearman_slips_over_meets_vs_late_final": round(rank_agreement(bench), 6),
                            "methods": _per_method(bench)}  # fmt: skip
    write_if_changed(paths["json"], json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    for p, _ in make_figures(
        rates, classes, summ, configs, Path(out) / "figures" / f"{experiment}_channels", bench
    ):
        paths[p.stem] = p
    return paths


def _per_method(summ: pd.DataFrame) -> dict:
    keys = {"early_final": "early_last", "late_final": "late_last", "late_gain": "late_gain",
            "credit_meets": "credit_meets", "credit_slips": "credit_slips", "slips_over_meets": "slips_over_meets"}  # fmt: skip
    return {r["method"]: {"seeds": int(r["seeds"]), **{k: round(float(r[c]), 6) for k, c in keys.items() if c in r}}
            for r in summ.to_dict("records")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="experiment under <results-dir>/runs")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--out", default="results")
    p.add_argument("--benchmark", help="a committed benchmark.csv whose final rates go beside (optional)")
    p.add_argument("--task", default="rubric_toy", help="the benchmark's task matching the experiment")
    a = p.parse_args(argv)
    return print_paths("channel-outcomes", lambda: build(a.experiment, a.results_dir, a.out, a.benchmark, a.task),
                       (FileNotFoundError, ValueError))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
