"""The report's PNG figures (matplotlib, Agg; no pyplot global state).

Figures: training curves per channel and of the bottleneck channel (mean over seeds, band
+-1 s.d.), the aggregator's weights and risk, held-out scores at checkpoints, final scores with
95% CIs and every seed, and score against the risk coefficient k for ablations. A method keeps
one colour in every figure (`method_styles`). The HTML page is rvpo_repro.analysis.page.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; the figures below never go through pyplot's global state
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rvpo_repro.analysis.output import save_figure  # noqa: E402
from rvpo_repro.run.record import load_log_history  # noqa: E402

# Okabe-Ito colours (distinguishable with colour-vision deficiencies), one per aggregator.
BASE_COLORS = {
    "rvpo": "#D55E00",
    "gdpo": "#0072B2",
    "grpo": "#7F7F7F",
    "hard_min": "#CC79A7",
    "dr_grpo": "#E69F00",
    "variance_penalty": "#009E73",
}
SPARE_COLORS = ["#56B4E9", "#000000", "#8C564B", "#BCBD22", "#17BECF", "#9467BD"]
DPI = 130
# One set of font sizes for every figure (points), applied in `_finish`, so panels of different
# figures read alike side by side on the page.
FONT = {"suptitle": 11, "title": 10, "label": 9, "tick": 8, "legend": 9}
log = logging.getLogger(__name__)


def method_styles(df: pd.DataFrame) -> dict[str, dict]:
    """Line style of each method: its aggregator's colour; the variants of one aggregator (a risk
    ablation) get shades of it, light to dark in order of k, and dashes when k follows a schedule."""
    out, spare = {}, iter(SPARE_COLORS * 3)
    for agg, g in df.drop_duplicates("method").groupby("aggregator", sort=True):
        base = np.array(mcolors.to_rgb(BASE_COLORS.get(agg) or next(spare)))
        g = g.sort_values(["risk", "method"], na_position="first")
        for i, (m, sched) in enumerate(zip(g.method, g.schedule, strict=True)):
            t = 0.0 if len(g) == 1 else -0.55 + 0.9 * i / (len(g) - 1)
            rgb = base + (1 - base) * -t if t < 0 else base * (1 - t)
            dashed = len(g) > 1 and sched not in (None, "constant") and sched == sched
            out[m] = {"color": mcolors.to_hex(rgb), "ls": "--" if dashed else "-"}
    return out


def panel_grid(n: int, ncols: int = 3, size=(4.6, 3.3)) -> tuple[Figure, list]:
    """A figure of n panels, ncols to a row, each `size` inches: (figure, its n axes); spare cells hidden."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _finish(fig: Figure, path: Path, title: str, styles: dict, methods, extra: list | None = None) -> Path:
    """Title on top, one legend for all panels below them, saved as PNG."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], lw=2.5, label=m, **styles[m]) for m in methods] + (extra or [])
    for ax in fig.axes:
        ax.title.set_fontsize(FONT["title"])
        ax.xaxis.label.set_fontsize(FONT["label"])
        ax.yaxis.label.set_fontsize(FONT["label"])
        ax.tick_params(labelsize=FONT["tick"])
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False,
               fontsize=FONT["legend"])  # fmt: skip
    fig.suptitle(title, fontsize=FONT["suptitle"])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=DPI)
    return path


# ------------------------------------------------------------------------ training curves
def history(runs) -> pd.DataFrame:
    """Long per-step metrics of every run: method, seed, step, key, value (training logs only)."""
    frames = []
    for r in runs.df.itertuples():
        rows = [h for h in load_log_history(r.run_dir) if "step" in h and "loss" in h]
        if rows:
            wide = pd.DataFrame(rows).drop_duplicates("step", keep="last").set_index("step")
            long = wide.select_dtypes("number").stack().rename("value").reset_index()
            frames.append(long.rename(columns={"level_1": "key"}).assign(method=r.method, seed=r.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def curves(hist: pd.DataFrame, panels: list[tuple[str, str, str]], styles: dict, path: Path, title: str,
           smooth: bool = True) -> Path:  # fmt: skip
    """One panel per (key, panel title, y label): per method, the mean over seeds of each run's
    rolling mean (window: 1/20 of the steps), with a +-1 s.d. band over seeds."""
    window = max(1, int(hist.step.nunique()) // 20) if smooth else 1
    hist = hist[hist.key.isin([k for k, _, _ in panels])]
    methods = [m for m in styles if m in set(hist.method)]
    fig, axes = panel_grid(len(panels))
    for ax, (key, name, ylabel) in zip(axes, panels, strict=True):
        h = hist[hist.key == key]
        for method in methods:
            per_seed = h[h.method == method].pivot_table(index="step", columns="seed", values="value")
            if per_seed.empty:
                continue
            smoothed = per_seed.rolling(window, min_periods=1).mean()
            mean, sd = smoothed.mean(axis=1), smoothed.std(axis=1, ddof=1)
            ax.plot(mean.index, mean, lw=1.8, **styles[method])
            if per_seed.shape[1] > 1:
                ax.fill_between(
                    mean.index, mean - sd, mean + sd, color=styles[method]["color"], alpha=0.15, lw=0
                )
        ax.set(title=name, xlabel="training step", ylabel=ylabel)
        ax.grid(alpha=0.3)
    n = hist.groupby("method").seed.nunique()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    how = f", rolling mean over {window} steps" if window > 1 else ""
    return _finish(fig, path, f"{title}: mean over {seeds} seeds, band ±1 s.d.{how}", styles, methods)


def training_figures(runs, styles: dict, outdir: Path) -> tuple[list, list[str]]:
    hist = history(runs)
    if hist.empty:
        return [], ["No run kept per-step training logs (log_history.jsonl): no training curves."]
    keys = set(hist.key)
    binary = sorted(k.split("/")[1] for k in keys if k.startswith("channels/") and k.endswith("/satisfied"))
    graded = sorted(k.split("/")[1] for k in keys if k.startswith("rewards/") and k.endswith("/mean"))
    figs = []
    panels = [(f"channels/{c}/satisfied", f"{c} (binary)", "share of rollouts satisfying it") for c in binary]
    panels += [(f"rewards/{c}/mean", f"{c} (graded)", "mean reward") for c in graded if c not in binary]
    if panels:
        p = curves(
            hist, panels, styles, outdir / "curves_channels.png", "Reward channels on training rollouts"
        )
        figs.append((p, "Per-channel training curves. Binary channels: share of rollouts satisfying them; graded "
                        "channels: mean raw reward on the channel's own scale. Constraint neglect shows as a binary "
                        "channel falling while a graded channel keeps rising."))  # fmt: skip
    panels = [(k, t, "share / normalised reward") for k, t in (
        ("channels/bottleneck", "bottleneck: weakest channel (each normalised to 0-1)"),
        ("channels/all_constraints", "all binary constraints met")) if k in keys]  # fmt: skip
    if panels:
        p = curves(hist, panels, styles, outdir / "curves_bottleneck.png", "Weakest channel during training")
        figs.append((p, "Bottleneck curve: per step, the weakest channel after scaling each to 0-1, and the share "
                        "of rollouts meeting every binary constraint. A method can raise the summed reward while "
                        "this curve falls: that is constraint neglect."))  # fmt: skip
    panels = [(k, f"SoftMin weight of {k.split('/')[-1]}", "mean weight") for k in sorted(keys)
              if k.startswith("aggregator/weight/")]  # fmt: skip
    panels += [("aggregator/risk", "risk coefficient k", "k")] if "aggregator/risk" in keys else []
    if panels:
        p = curves(
            hist, panels, styles, outdir / "curves_aggregator.png", "Aggregator weights and risk", False
        )
        figs.append(
            (
                p,
                "Aggregator internals (SoftMin methods only): mean weight softmax(-k Z)_j of each channel "
                "(the weakest channel gets the most) and the risk coefficient k, per step (not smoothed).",
            )
        )
    return figs, []


def checkpoint_figure(runs, metrics: list[str], styles: dict, outdir: Path) -> list:
    rows = [
        {"method": r.method, "seed": r.seed, "step": c["step"], "key": k, "value": v}
        for r in runs.df.itertuples()
        for c in runs.records[r.run_dir].extra.get("checkpoint_evals") or []
        for k, v in c.get("metrics", {}).items()
        if k in metrics and v is not None
    ]
    if not rows:
        return []
    hist = pd.DataFrame(rows)
    panels = [(m, m, "held-out score") for m in metrics if m in set(hist.key)]
    p = curves(
        hist, panels, styles, outdir / "checkpoint_evals.png", "Held-out evaluation at checkpoints", False
    )
    return [(p, "Held-out scores at saved checkpoints: a peak followed by a fall is late-stage collapse.")]


# ------------------------------------------------------------------------------ final scores
def final_scores(runs, table: pd.DataFrame, styles: dict, path: Path) -> Path:
    """One panel per metric: each method's mean with its 95% CI, and every seed as a dot."""
    metrics = list(dict.fromkeys(table.metric))
    fig, axes = panel_grid(len(metrics), ncols=3 if len(metrics) <= 9 else 4, size=(4.2, 3.4))
    methods = [m for m in styles if m in set(table.method)]
    rng = np.random.default_rng(0)  # jitter of the seed dots only
    for ax, metric in zip(axes, metrics, strict=True):
        t = table[table.metric == metric].groupby("method").first()
        for i, m in enumerate(methods):
            if m not in t.index:
                continue
            r, color = t.loc[m], styles[m]["color"]
            if not np.isnan(r.ci_low):
                yerr = [[r["mean"] - r.ci_low], [r.ci_high - r["mean"]]]
                ax.errorbar(i, r["mean"], yerr=yerr, fmt="none", ecolor=color, elinewidth=2, capsize=5)
            ax.plot(i, r["mean"], "D", color=color, ms=7, mec="black", mew=0.6)
            seeds = runs.df.loc[runs.df.method == m, metric].dropna()
            ax.scatter(
                i + 0.22 + rng.uniform(-0.05, 0.05, len(seeds)), seeds, s=14, color=color, alpha=0.6, lw=0
            )
        rotate = len(methods) > 3
        ax.set_xticks(
            range(len(methods)), methods, rotation=30 if rotate else 0, ha="right" if rotate else "center"
        )
        ax.set_title(metric)
        ax.set_ylabel("held-out score (mean over prompts)")
        ax.grid(axis="y", alpha=0.3)
    title = "Final held-out scores: ◆ mean over seeds with its 95% CI (CI method: see the table), dots: seeds"
    return _finish(fig, path, title, styles, methods)


def risk_figure(runs, metrics: list[str], styles: dict, path: Path) -> tuple[Path | None, str]:
    """Score against the risk coefficient k, when the experiment varies k; else (None, why)."""
    from matplotlib.lines import Line2D

    df = runs.df
    ks = sorted(float(k) for k in df.risk.dropna().unique())
    if len(ks) < 2:
        return (
            None,
            f"No risk variation in this experiment (k values: {', '.join(f'{k:g}' for k in ks) or 'none'}): no score-vs-risk figure.",
        )
    fig, axes = panel_grid(len(metrics))
    others = [m for m in styles if m in set(df[df.risk.isna()].method)]
    for ax, metric in zip(axes, metrics, strict=True):
        for (_, constant), g in df[df.risk.notna()].groupby(
            ["aggregator", df.schedule.isin([None, "constant"])]
        ):
            means = g.groupby("risk")[metric].agg(["mean", "std"]).sort_index()
            for m, gm in g.groupby("method"):
                ax.scatter(gm.risk, gm[metric], color=styles[m]["color"], s=18, alpha=0.7, lw=0, zorder=3)
            ax.errorbar(means.index, means["mean"], yerr=means["std"].fillna(0), color="black", capsize=3, lw=1.2,
                        marker="o" if constant else "s", ms=6, ls="-" if constant else "none")  # fmt: skip
        for m in others:
            ax.axhline(df.loc[df.method == m, metric].mean(), color=styles[m]["color"], ls=":", lw=1.8)
        if ks[0] > 0 and ks[-1] / ks[0] >= 8:
            ax.set_xscale("log")
        ax.set_xticks(ks, [f"{k:g}" for k in ks], minor=False)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set(title=metric, xlabel="risk coefficient k (end value for schedules)")
        ax.grid(alpha=0.3)
    extra = [Line2D([], [], color="black", marker="o", label="constant k: mean ± s.d. over seeds"),
             Line2D([], [], color="black", marker="s", ls="none", label="scheduled k (at its end value)")]  # fmt: skip
    title = "Final score against risk coefficient k; dots: seeds; dotted lines: methods without k (mean over seeds)"
    return _finish(fig, path, title, styles, [m for m in styles if m in set(df.method)], extra), ""


def make_figures(runs, table: pd.DataFrame, outdir: Path, primary: str) -> tuple[list, list[str]]:
    """Every figure of a report: [(png path, caption)], and notes on figures that were skipped."""
    styles = method_styles(runs.df)
    figs, notes = training_figures(runs, styles, outdir)
    figs += checkpoint_figure(runs, runs.metrics, styles, outdir)
    p = final_scores(runs, table, styles, outdir / "final_scores.png")
    figs.append(
        (p, "Final held-out scores per metric: mean over seeds with its 95% CI, and each seed's value.")
    )
    p, why = risk_figure(runs, runs.metrics, styles, outdir / "risk.png")
    if p is None:
        notes.append(why)
    else:
        figs.append(
            (p, "Final score against the risk coefficient k (ablation); methods without k as dotted lines.")
        )
    return figs, notes
