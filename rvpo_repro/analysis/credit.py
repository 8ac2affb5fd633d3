"""Credit profiles: the advantage one rollout receives from an aggregator alone, no training.

One group of G rollouts, K binary channels, no batch whitening (`whiten: none` where the method has
it; GRPO's group scaling is its own). Rollout 0 is followed through three groups (`GROUPS`), each a
function of m, the number of rollouts that meet the studied channel 0:

- `meets`: rollout 0 meets channel 0 with m - 1 others (rollouts 0..m-1 meet it); every other
  ("easy") channel j >= 1 is met by all but one rollout, rollout 1 + (j - 1) mod (G - 1), so
  rollout 0 meets each of them.
- `misses`: as `meets`, but rollout 0 misses channel 0, which rollouts 1..m meet.
- `slips`: as `meets`, but rollout 0 also misses easy channel 1, which all G - 1 others meet.

At G = 8, K = 5, m = 1, `meets` is "rollout 0 alone meets a hard item and every easy item" and
`slips` "it meets the hard item but slips on an easy item the others meet". Each is computed as a
function of m (K fixed), of K (m = 1) and, for RVPO, of its risk k (`QUANTITIES`); a method with a
risk schedule is shown at both ends of it (its `phase`: start, end).

Writes <out>/tables/credit.{csv,md} and <out>/figures/credit/<quantity>.png, and puts the credit
section on the benchmark page (<out>/report/benchmark/index.html) when that page exists:

    python -m rvpo_repro.analysis.credit [--out results] [--G 8] [--K 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rvpo_repro.aggregators import AGGREGATORS, get_aggregator
from rvpo_repro.analysis.labels import configured_methods

GROUP_SIZE, CHANNELS = 8, 5  # the defaults: a group of 8 rollouts, 5 binary items
MAX_CHANNELS = 17  # rubric_toy's longest rubric
RISKS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)  # RVPO's k on the risk axis (hard min: k = inf)
# A method with a risk schedule is shown at its start and its end (progress 0 and 1).
PHASES = {"start": 0.0, "end": 1.0}
SYMLOG_TICKS = (-8, -4, -2, -1, -0.5, 0, 0.5, 1, 2, 4, 8, 16)
FIXED = "as configured"  # the risk axis's column of the methods without k
RISK_CURVE = "k on the axis"  # the phase naming RVPO's curve over RISKS


def _easy_missers(G: int, K: int) -> list[int]:
    """The one rollout missing each easy channel j = 1..K-1: 1 + (j - 1) mod (G - 1)."""
    return [1 + (j - 1) % (G - 1) for j in range(1, K)]


def meets(G: int, K: int, m: int) -> torch.Tensor:
    """(G, K) rewards: rollout 0 and m - 1 others meet channel 0; easy channels as the docstring."""
    x = torch.ones(G, K, dtype=torch.float64)
    x[:, 0] = 0.0
    x[:m, 0] = 1.0
    for j, r in enumerate(_easy_missers(G, K), start=1):
        x[r, j] = 0.0
    return x


def misses(G: int, K: int, m: int) -> torch.Tensor:
    """(G, K) rewards: rollout 0 misses channel 0, which rollouts 1..m meet."""
    x = meets(G, K, m)
    x[:, 0] = 0.0
    x[1 : m + 1, 0] = 1.0
    return x


def slips(G: int, K: int, m: int) -> torch.Tensor:
    """(G, K) rewards: `meets`, but rollout 0 misses easy channel 1 and all G - 1 others meet it."""
    if K < 2:
        raise ValueError(f"K = {K}: a slip needs a second channel (K >= 2)")
    x = meets(G, K, m)
    x[:, 1] = 1.0
    x[0, 1] = 0.0
    return x


GROUPS: dict[str, Callable[[int, int, int], torch.Tensor]] = {
    "meets": meets,
    "misses": misses,
    "slips": slips,
}


@dataclass(frozen=True)
class Quantity:
    """One figure: the advantage of rollout 0 in `group` against `axis` (m, K or risk)."""

    group: str
    axis: str
    title: str


QUANTITIES: dict[str, Quantity] = {
    "meets_vs_m": Quantity("meets", "m", "rollout meets the channel: advantage vs how many of the group meet it"),
    "misses_vs_m": Quantity("misses", "m", "rollout misses the channel: advantage vs how many of the group meet it"),
    "slips_vs_m": Quantity("slips", "m", "rollout meets the channel but slips on one most others meet"),
    "meets_vs_K": Quantity("meets", "K", "rollout alone meets the channel: advantage vs the number of channels K"),
    "slips_vs_K": Quantity("slips", "K", "rollout alone meets the channel and slips on another: vs K"),
    "meets_vs_risk": Quantity("meets", "risk", "rollout alone meets the channel: advantage vs RVPO's risk k"),
    "slips_vs_risk": Quantity("slips", "risk", "rollout alone meets the channel and slips on another: vs k"),
}  # fmt: skip


@dataclass(frozen=True)
class Method:
    """One aggregator config as the benchmark runs it: its config name, label and options."""

    config: str
    label: str
    options: dict

    @property
    def aggregator(self) -> str:
        return self.options["name"]

    def build(self, **overrides):
        """The aggregator without batch whitening (where it has the option), options overridden."""
        opts = {k: v for k, v in self.options.items() if k != "name" and v is not None}
        if "whiten" in {f.name for f in fields(AGGREGATORS[self.aggregator])}:
            opts["whiten"] = "none"
        return get_aggregator(self.aggregator, **{**opts, **overrides})

    def phases(self) -> dict[str, float]:
        """{phase: progress}: start and end for a risk schedule, else one phase "" at progress 0."""
        scheduled = self.options.get("schedule") not in (None, "constant")
        return dict(PHASES) if scheduled else {"": 0.0}

    def shown(self, phase: str) -> str:
        """The figure's name of this method at `phase`: its label, plus the phase for a schedule."""
        if phase == RISK_CURVE:
            return f"{self.aggregator} ({phase})"
        return f"{self.label} at {phase}" if phase else self.label


def methods(configs: list[str] | None = None) -> list[Method]:
    """The aggregator configs (conf/aggregator; default: all), labelled as the leaderboard labels them."""
    return [Method(name, label, cfg) for name, (label, cfg) in sorted(configured_methods(configs).items())]


def risk_at(agg, progress: float) -> float:
    """The risk coefficient k of `agg` at `progress`: RVPO's, inf for the hard min, NaN otherwise."""
    if hasattr(agg, "risk_at"):
        return float(agg.risk_at(progress))
    return math.inf if agg.name == "hard_min" else math.nan


def advantage(agg, group: str, G: int, K: int, m: int, progress: float = 0.0) -> float:
    """Rollout 0's advantage under `agg` in group `group` (GROUPS) of G rollouts and K channels."""
    if not 1 <= m <= G - 1:
        raise ValueError(f"m = {m}: expected 1..{G - 1} rollouts of {G} meeting the channel")
    return float(agg(GROUPS[group](G, K, m), num_generations=G, progress=progress)[0])


def profiles(ms: list[Method], G: int = GROUP_SIZE, K: int = CHANNELS) -> pd.DataFrame:
    """One row per (quantity, method, phase, x): the advantage of rollout 0 (see QUANTITIES)."""
    rows = []

    def add(q: str, meth: Method, phase: str, x: float, value: float, k: float, **where) -> None:
        rows.append({"quantity": q, "group": QUANTITIES[q].group, "axis": QUANTITIES[q].axis, "x": x,
                     "config": meth.config, "method": meth.label, "aggregator": meth.aggregator, "phase": phase,
                     "shown": meth.shown(phase), "G": G, "K": where.get("K", K), "m": where.get("m", 1),
                     "k": k, "advantage": value})  # fmt: skip

    for meth in ms:
        agg = meth.build()
        for phase, progress in meth.phases().items():
            k = risk_at(agg, progress)
            for q, spec in QUANTITIES.items():
                if spec.axis == "m":
                    for m in range(1, G):
                        add(q, meth, phase, m, advantage(agg, spec.group, G, K, m, progress), k, m=m)
                elif spec.axis == "K":
                    for n in range(2, MAX_CHANNELS + 1):
                        add(q, meth, phase, n, advantage(agg, spec.group, G, n, 1, progress), k, K=n)
        for q, spec in QUANTITIES.items():  # the risk axis: RVPO at each k, the others as they are
            if spec.axis != "risk":
                continue
            if meth.config == "rvpo":  # the curve of k; the other RVPO configs are points at their k
                for k in RISKS:
                    add(q, meth, RISK_CURVE, k, advantage(meth.build(risk=k), spec.group, G, K, 1), k)
            elif meth.aggregator == "rvpo":
                for phase, progress in meth.phases().items():
                    k = risk_at(agg, progress)
                    add(q, meth, phase, k, advantage(agg, spec.group, G, K, 1, progress), k)
            else:
                add(q, meth, "", math.nan, advantage(agg, spec.group, G, K, 1), risk_at(agg, 0.0))
    return pd.DataFrame(rows)


def reference_groups(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and phase: rollout 0's advantage in `meets` and `slips` at m = 1 and the table's K."""
    t = df[df.quantity.isin(["meets_vs_m", "slips_vs_m"]) & (df.x == 1)]
    out = t.pivot_table(index=["config", "shown"], columns="group", values="advantage", sort=False)
    return out.reset_index().rename_axis(columns=None)


def table_csv(df: pd.DataFrame) -> str:
    """The long table as CSV text (6 significant digits)."""
    return df.to_csv(index=False, float_format="%.6g")


def to_markdown(df: pd.DataFrame, G: int, K: int) -> str:
    """The reference groups, then one methods x axis table per quantity (2 decimals)."""
    ref = reference_groups(df)
    lines = [f"# Credit profiles (G = {G} rollouts, K = {K} binary channels unless the axis is K)", "",
             "Rollout 0's advantage from the aggregator alone (no batch whitening). `meets`: it alone meets "
             "channel 0 and meets every easy channel (each missed by one other rollout); `slips`: the same, but "
             "it misses easy channel 1, which every other rollout meets. Written by "
             "`python -m rvpo_repro.analysis.credit`; the groups are defined in rvpo_repro/analysis/credit.py.",
             "", "| config | method | meets (m = 1) | slips (m = 1) |", "|---|---|---|---|"]  # fmt: skip
    for r in ref.itertuples():
        lines.append(f"| {r.config} | {r.shown} | {r.meets:+.2f} | {r.slips:+.2f} |")
    for q, spec in QUANTITIES.items():
        t = df[df.quantity == q].assign(x=lambda d: [f"{x:g}" if x == x else FIXED for x in d.x])
        p = t.pivot_table(index="shown", columns="x", values="advantage", sort=False)
        p = p[sorted(p.columns, key=lambda c: math.inf if c == FIXED else float(c))]
        name = {
            "m": "m of G meet the channel",
            "K": "K channels",
            "risk": f"RVPO's k; {FIXED}: a method without k",
        }
        lines += ["", f"## {q}: {spec.title}", "", f"Columns: {name[spec.axis]}.", ""]
        lines.append("| method | " + " | ".join(p.columns) + " |")
        lines.append("|---" * (len(p.columns) + 1) + "|")
        for method, vals in p.iterrows():
            lines.append(f"| {method} | " + " | ".join("" if v != v else f"{v:+.2f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def make_figures(df: pd.DataFrame, outdir: Path) -> list[tuple[Path, str]]:
    """One PNG per quantity, every method on it; returns (path, caption) pairs."""
    import matplotlib.ticker
    from matplotlib.figure import Figure

    from rvpo_repro.analysis.figures import method_styles
    from rvpo_repro.analysis.output import save_figure

    first = df.drop_duplicates("shown")
    styles = method_styles(first.assign(method=first.shown, risk=first.k,
                                        schedule=np.where(first.phase.isin(list(PHASES)), "linear", None)))  # fmt: skip
    xlabel = {"m": "m: rollouts of the group (G = {G}) meeting the channel", "K": "K: number of channels",
              "risk": "RVPO's risk k (other methods: horizontal lines)"}  # fmt: skip
    out = []
    for q, spec in QUANTITIES.items():
        t = df[df.quantity == q]
        fig = Figure(figsize=(11.0, 5.0), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        for shown, g in t.groupby("shown", sort=False):
            st = styles[shown]
            if spec.axis == "risk" and not np.isfinite(g.x).any():
                ax.axhline(g.advantage.iloc[0], lw=1.0, alpha=0.8, label=shown, **st)
            elif len(g) == 1:
                ax.plot(g.x, g.advantage, marker="D", ms=7, ls="none", label=shown, color=st["color"])
            else:
                ax.plot(g.x, g.advantage, marker="o", ms=3, lw=1.4, label=shown, **st)
        ax.axhline(0.0, color="#999", lw=0.6)
        ax.set_xlabel(xlabel[spec.axis].format(G=int(t.G.iloc[0])))
        ax.set_yscale("symlog", linthresh=1.0)  # sums of K z-scores reach 17; means stay within +-2.5
        lo, hi = t.advantage.min(), t.advantage.max()
        ax.set_yticks([v for v in SYMLOG_TICKS if lo - 0.5 <= v <= hi + 0.5])
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylabel("advantage of rollout 0 (linear within ±1, log beyond)")
        fig.suptitle(spec.title, fontsize=11)
        ax.grid(alpha=0.3)
        fig.legend(loc="outside right center", fontsize=7, frameon=False)
        path = save_figure(fig, outdir / f"{q}.png", dpi=110)
        out.append(
            (
                path,
                f"{q}: {spec.title} (G = {int(t.G.iloc[0])}, K = {int(t.K.iloc[0]) if spec.axis != 'K' else 'varies'}).",
            )
        )
    return out


def build(out: str | Path = "results", G: int = GROUP_SIZE, K: int = CHANNELS,
          configs: list[str] | None = None) -> dict[str, Path]:  # fmt: skip
    """Compute every profile and write the table, the figures and the benchmark page's section."""
    from rvpo_repro.analysis import page
    from rvpo_repro.analysis.output import write_if_changed

    out = Path(out)
    df = profiles(methods(configs), G, K)
    tables = out / "tables"
    paths = {"csv": tables / "credit.csv", "md": tables / "credit.md"}
    write_if_changed(paths["csv"], table_csv(df))
    md = to_markdown(df, G, K)
    write_if_changed(paths["md"], md)
    figs = make_figures(df, out / "figures" / "credit")
    bench = out / "report" / "benchmark" / "index.html"
    if bench.is_file():
        page.put_section(
            bench, "credit", page.credit_section(reference_groups(df), figs, paths, bench.parent)
        )
        paths["page"] = bench
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results", help="tables/, figures/credit/ and report/benchmark/ go here")
    p.add_argument("--G", type=int, default=GROUP_SIZE, help="rollouts per group (>= 2)")
    p.add_argument("--K", type=int, default=CHANNELS, help="binary channels (>= 2)")
    p.add_argument(
        "--aggregators", help="comma-separated aggregator configs (default: every one in conf/aggregator)"
    )
    a = p.parse_args(argv)
    if a.G < 2 or a.K < 2:
        print(f"rvpo-credit: --G {a.G} --K {a.K}: expected G >= 2 and K >= 2", file=sys.stderr)
        return 2
    from rvpo_repro.analysis.output import print_paths
    from rvpo_repro.config import ConfigError

    configs = [x for x in (a.aggregators or "").split(",") if x] or None
    return print_paths("rvpo-credit", lambda: build(a.out, a.G, a.K, configs), (ConfigError,))


if __name__ == "__main__":
    raise SystemExit(main())
