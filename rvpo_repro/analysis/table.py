"""The results table of one experiment: raw numbers (`results_table`), their display strings and
preamble, and the Markdown / CSV / LaTeX files.

One row per (model, task, method, metric): the mean over seeds with a 95% CI, the difference to
the baseline with the headline test of rvpo_repro.analysis.stats.table_rule (Holm-adjusted over the table),
the secondary tests, and the paper's number where it reports one.

Baseline: `--baseline` names a method label (`gdpo (mean)`, `rvpo (k=1)`) or an aggregator name.
An exact label wins. An aggregator name with several variants in one (model, task) means its
default config, the variant whose label is the bare name (`gdpo` = reduce sum, not `gdpo (mean)`);
when no variant is bare (a risk ablation: `rvpo (k=1)`, `rvpo (k=5)`) it is an error listing them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rvpo_repro.analysis.output import shows_same_table, write_if_changed
from rvpo_repro.analysis.paper import DASH, has_counterpart, paper_numbers, paper_text
from rvpo_repro.analysis.runs import Runs, missing_seeds
from rvpo_repro.analysis.stats.table_rule import (
    RULE,
    bottleneck_source,
    bounds,
    compare,
    example_matrix,
    holm,
    mean_ci,
)


class BaselineError(ValueError):
    """`--baseline` names an aggregator with several variants and none is its default."""


def pick_baseline(methods: list[str], aggregators: list[str], baseline: str) -> str | None:
    """The method label tested against in one (model, task) (module docstring), or None."""
    if baseline in methods:
        return baseline
    variants = sorted({m for m, a in zip(methods, aggregators, strict=True) if a == baseline})
    if len(variants) <= 1:
        return variants[0] if variants else None
    if baseline in variants:
        return baseline
    raise BaselineError(
        f"--baseline {baseline!r} names {len(variants)} variants here ({', '.join(variants)}) and none is "
        f"its default; pass one label, e.g. --baseline {variants[0]!r}"
    )


def _affine(b: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) with b = slope * v + intercept (a bottleneck against its channel)."""
    if np.ptp(v) == 0:
        return 1.0, float(b.mean() - v.mean())
    slope, intercept = np.polyfit(v, b, 1)
    return float(slope), float(intercept)


def _row_stats(runs: Runs, a: pd.DataFrame, base: pd.DataFrame | None, metric: str, seed: int) -> dict:
    dirs, bdirs = list(a.run_dir), [] if base is None else list(base.run_dir)
    entries = [runs.records[d].metrics[metric] for d in dirs + bdirs]
    bnd = bounds(metric, entries)
    source = bottleneck_source(runs, dirs + bdirs, metric)
    use = source or metric  # a derived row is computed on the channel it equals, then rescaled
    va, vb = a[use].to_numpy(float), None if base is None else base[use].to_numpy(float)
    x, why = example_matrix(runs, dirs, use)
    # A derived row's CI is the channel's, rescaled, then held to the row's own bounds (below), so the
    # channel's interval is taken unclipped: one clipping, said once.
    low, high, how = mean_ci(va, x, None if source else bounds(use, entries), seed)
    out = {
        "ci_low": low,
        "ci_high": high,
        "ci_method": how,
        "examples": None if x is None else int(x.shape[1]),
    }
    if base is not None:
        xab, why = example_matrix(runs, dirs + bdirs, use)
        out |= compare(va, vb, xab, why, bounds(use, entries), seed)
    if source:
        both = pd.concat([a, base]) if base is not None else a
        s, c = _affine(both[metric].to_numpy(float), both[source].to_numpy(float))
        lo, hi = sorted((out["ci_low"] * s + c, out["ci_high"] * s + c))
        out |= {"ci_low": lo, "ci_high": hi, "ci_method": f"{how} of {source}, rescaled"}
        if base is not None:
            dl, dh = sorted((out["delta_ci_low"] * s, out["delta_ci_high"] * s))
            out |= {
                "delta": float(a[metric].mean() - base[metric].mean()),
                "delta_ci_low": dl,
                "delta_ci_high": dh,
            }
            out["note"] = "; ".join(
                n for n in (f"same test as {source} (this row is it rescaled)", out["note"]) if n
            )
    elif metric.endswith("/bottleneck") and base is not None:
        out["note"] = "; ".join(
            n for n in ("bottleneck channel differs between runs: seed-level test", out["note"]) if n
        )
    if (
        bnd is not None
        and not math.isnan(out["ci_low"])
        and (out["ci_low"] < bnd[0] or out["ci_high"] > bnd[1])
    ):
        out["ci_low"], out["ci_high"] = max(out["ci_low"], bnd[0]), min(out["ci_high"], bnd[1])
        out["ci_method"] += f", clipped to [{bnd[0]:g}, {bnd[1]:g}]"
    return out


EMPTY = {"delta": np.nan, "delta_ci_low": np.nan, "delta_ci_high": np.nan, "test": DASH, "p": np.nan,
         "p_welch": np.nan, "p_perm": np.nan, "perm_note": "", "p_examples": np.nan, "note": ""}  # fmt: skip


def results_table(
    runs: Runs, baseline: str = "gdpo", seed: int = 0, reference: dict | None = None
) -> pd.DataFrame:
    """One row per (model, task, method, metric), raw numbers (see the module docstring)."""
    reference = reference or {"papers": {}, "entries": []}
    rows = []
    for (model, task), g in runs.df.groupby(["model", "task"], sort=True):
        base_method = pick_baseline(list(g.method), list(g.aggregator), baseline)
        base = g[g.method == base_method] if base_method else None
        for method, a in g.groupby("method", sort=True):
            for metric in runs.metrics:
                vals = a[metric].dropna().to_numpy(dtype=float)
                # A run whose record holds no value (null/NaN) for the metric is named in the row,
                # never dropped in silence: the row says over how many runs it stands.
                lacking = list(a.run_id[a[metric].isna()])
                lacking_note = (
                    f"no value in {len(lacking)} of {len(a)} runs ({', '.join(lacking[:3])}"
                    + (", ..." if len(lacking) > 3 else "")
                    + (f"): over the other {vals.size}" if vals.size else ")")
                )
                if vals.size == 0:
                    rows.append({"model": model, "task": task, "method": method, "metric": metric,
                                 "mean": np.nan, "seeds": 0, "ci_low": np.nan, "ci_high": np.nan, "ci_method": DASH,
                                 "examples": np.nan} | EMPTY | {"note": lacking_note, "test": "none",
                                 "paper_best": DASH, "paper_final": DASH, "paper_source": DASH})  # fmt: skip
                    continue
                row = {
                    "model": model,
                    "task": task,
                    "method": method,
                    "metric": metric,
                    "mean": vals.mean(),
                    "seeds": int(vals.size),
                }
                is_base = method == base_method
                row |= EMPTY | _row_stats(runs, a, None if is_base or base is None else base, metric, seed)
                if is_base:
                    row |= {"test": "baseline"}
                elif base is None:
                    row["note"] = f"no runs of baseline {baseline!r} here: nothing to test against"
                if lacking:
                    row["note"] = "; ".join(n for n in (lacking_note, row["note"]) if n)
                paper = paper_numbers(reference, runs.experiment, model, method, metric)
                row["paper_best"], row["paper_final"] = (paper_text(paper.get(k)) for k in ("best", "final"))
                row["paper_source"] = (
                    "; ".join(sorted({f"{e['paper']}: {e.get('where', '')}" for e in paper.values()})) or DASH
                )
                rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        testable = out["p"].notna()
        out["p_holm"] = np.nan
        if testable.any():
            out.loc[testable, "p_holm"] = holm(out.loc[testable, "p"].to_numpy(dtype=float))
    return out


def _num(v, fmt: str = "{:.3f}") -> str:
    return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _perm(p, note: str) -> str:
    m = re.search(r"smallest attainable p = ([0-9.e-]+)", note or "")
    return fmt_p(p) + (f" (min {m.group(1)})" if m and p == p else "")


def display_table(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The table as formatted strings, for Markdown, LaTeX and HTML (model/task dropped when unique)."""
    ci = zip(table.ci_low, table.ci_high, strict=True)
    dci = zip(table.delta_ci_low, table.delta_ci_high, strict=True)
    t = pd.DataFrame(
        {
            "model": table.model, "task": table.task, "method": table.method, "metric": table.metric,
            "mean": [_num(v) for v in table["mean"]],
            "95% CI": [DASH if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]" for lo, hi in ci],
            "paper final": table.paper_final, "paper best": table.paper_best, "CI method": table.ci_method,
            "seeds": table.seeds, "examples": [DASH if v is None or v != v else int(v) for v in table.examples],
            f"Δ vs {baseline}": [_num(v, "{:+.3f}") for v in table.delta],
            "Δ 95% CI": [DASH if lo != lo else f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in dci],
            "test": table.test, "p": [fmt_p(v) for v in table.p], "p (Holm)": [fmt_p(v) for v in table.p_holm],
            "p (Welch, seeds)": [fmt_p(v) for v in table.p_welch],
            "p (perm., seeds)": [_perm(p, n) for p, n in zip(table.p_perm, table.perm_note, strict=True)],
            "p (examples | these seeds)": [fmt_p(v) for v in table.p_examples],
            "note": table.note,
        }
    )  # fmt: skip
    return t.drop(columns=[c for c in ("model", "task") if t[c].nunique() <= 1])


def table_preamble(
    runs: Runs, table: pd.DataFrame, baseline: str, reference: dict, note: str = ""
) -> list[str]:
    """Sentences saying what the numbers are (shown above the table in Markdown and HTML)."""
    df = runs.df
    ex = sorted({int(v) for v in table.examples.dropna()})
    counts = ", ".join(f"{m} × {n} seed{'s' * (n > 1)}" for m, n in df.groupby("method").size().items())
    lines = [note] if note else []
    lines += [
        f"Experiment: {runs.experiment}. {len(df)} finished runs: {counts}.",
        _not_finished(runs),
        "mean: average over seeds of each run's final held-out metric; 95% CI: by the method in `CI method`.",
        f"Δ and p: against {baseline}, by the test named in `test` (two-sided); `p (Holm)` adjusts "
        f"the {int(table.p.notna().sum())} headline p-values of this table as one family.",
        RULE,
        "Examples per run (shared by all runs): " + (", ".join(map(str, ex)) if ex else "none recorded") + ".",
    ]  # fmt: skip
    if not has_counterpart(reference, runs.experiment):
        lines.append(
            f"The paper reports no numbers for experiment `{runs.experiment}`: paper columns show {DASH}."
        )
    else:
        lines.append(
            "Paper columns: the paper's number with its source grade [P]/[S]/[I]. Ours are final-checkpoint "
            "values: compare them with `paper final`; `paper best` is the paper's peak over training, "
            "picked on the test set itself (optimistic)."
        )
    return [s for s in lines if s]


def _not_finished(runs: Runs) -> str:
    parts = [
        f"{s['state']}: {s['run_id']}" + (f" ({s['reason']})" if s["reason"] else "") for s in runs.status
    ]
    lost = missing_seeds(runs)
    parts += [f"missing seeds of {k}: {', '.join(map(str, v))}" for k, v in lost.items()]
    if not parts:
        return "Every run directory holds a finished record; no seed is missing."
    return "Not in the table: " + "; ".join(parts) + "."


_LATEX_UNICODE = {"—": "--", "<": r"$<$", "Δ": r"$\Delta$", "×": r"$\times$", "→": r"$\to$", "±": r"$\pm$", "≥": r"$\geq$", "|": r"$|$"}  # fmt: skip
_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\~{}", "^": r"\^{}"}


def _latex(text: str) -> str:
    return re.sub(r"[&%$#_{}\\~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def _unicode_to_latex(tex: str) -> str:
    """pdflatex-safe: the table's few non-ASCII symbols as LaTeX commands."""
    for ch, rep in _LATEX_UNICODE.items():
        tex = tex.replace(ch, rep)
    return tex


def write_tables(
    runs: Runs, table: pd.DataFrame, out: str | Path, baseline: str, preamble: list[str]
) -> dict:
    """<out>/tables/<experiment>.{md,csv,tex}; returns {"md"|"csv"|"tex": path}."""
    d = Path(out) / "tables"
    d.mkdir(parents=True, exist_ok=True)
    paths = {k: d / f"{runs.experiment}.{k}" for k in ("md", "csv", "tex")}
    shown = display_table(table, baseline)
    md = [f"# {runs.experiment}: results against {baseline}", "", *(f"- {s}" for s in preamble), "", ""]
    md_text = "\n".join(md) + shown.to_markdown(index=False) + "\n"
    if shows_same_table(paths["md"], md_text) and all(p.is_file() for p in paths.values()):
        return paths  # the same result as written: leave its files (and their digits) as they are
    # 12 significant digits: the last bits of a float sum differ between CPUs, not the result
    write_if_changed(paths["csv"], table.to_csv(index=False, float_format="%.12g"))
    write_if_changed(paths["md"], md_text)
    styled = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = styled.to_latex(caption=_latex(f"{runs.experiment}: " + " ".join(preamble)), hrules=True)
    write_if_changed(paths["tex"], _unicode_to_latex(tex))
    return paths
