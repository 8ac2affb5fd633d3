"""Report of an experiment: tables (Markdown, CSV, LaTeX), figures (PNG) and a static HTML page.

python -m rvpo_repro.report --experiment toy [--results-dir results] [--out results] [--baseline gdpo]
    [--metric rewards/all_constraints] [--seed 0] [--paper-reference results/paper_reference.yaml]

Writes <out>/tables/<experiment>.{md,csv,tex}, <out>/figures/<experiment>/*.png and
<out>/report/<experiment>/index.html. One row of the table per (model, task, method, metric): the
mean over seeds with a 95% CI, the difference to the baseline with a p-value (the test is named in
the row; Holm-adjusted over every comparison of the table) and the paper's number where it reports
one. An experiment given as a glob (`rubric_medicine_7b_*`) pools the runs of every matching experiment
into one report named without the wildcard (`rubric_medicine_7b`): the repo keeps one experiment per
aggregator for the paper's rows. Figures and the HTML page are drawn by rvpo_repro.figures.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import logging
import math
import re
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from rvpo_repro.records import RunRecord, load_record
from rvpo_repro.results import collect, examples, metric_columns
from rvpo_repro.stats import hierarchical_bootstrap, holm, welch

log = logging.getLogger(__name__)

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "results" / "paper_reference.yaml"
DASH = "—"
N_RESAMPLES = 10_000


@dataclass
class Runs:
    """The finished runs of one experiment: `df` (one row per run, from results.collect, plus
    method, risk, schedule), the metric names, and each run's record keyed by run_dir."""

    experiment: str
    df: pd.DataFrame
    metrics: list[str]
    records: dict[str, RunRecord] = field(repr=False)


def risk_of(agg: dict) -> tuple[float | None, str | None]:
    """(risk coefficient k, schedule) of an aggregator config: k is `risk`, or `risk_end` under a
    schedule; (None, None) for aggregators without one (grpo, gdpo, hard_min, ...)."""
    schedule = agg.get("schedule")
    risk = agg.get("risk_end") if agg.get("risk_end") is not None else agg.get("risk")
    return (None if risk is None else float(risk)), schedule


def _variant(agg: dict, differing: list[str]) -> str:
    risk, schedule = risk_of(agg)
    if schedule not in (None, "constant") and agg.get("risk_start") is not None:
        return f"k {agg['risk_start']:g}→{risk:g}"
    if risk is not None and ({"risk", "risk_end", "risk_start", "schedule"} & set(differing)):
        return f"k={risk:g}"
    return ", ".join(f"{k}={agg.get(k)}" for k in differing)


def method_labels(aggs: list[dict]) -> list[str]:
    """One label per aggregator config: its name, plus the varying settings (`rvpo (k=2)`) when one
    experiment runs the same aggregator with several settings (a risk ablation)."""
    by_name: dict[str, list[dict]] = {}
    for a in aggs:
        by_name.setdefault(a["name"], []).append(a)
    differing = {
        name: sorted(
            k for k in {k for a in group for k in a} if len({json.dumps(a.get(k)) for a in group}) > 1
        )
        for name, group in by_name.items()
    }
    return [
        f"{a['name']} ({_variant(a, differing[a['name']])})" if differing[a["name"]] else a["name"]
        for a in aggs
    ]


def report_name(experiment: str) -> str:
    """`rubric_medicine_7b_*` (a glob over experiment names) -> `rubric_medicine_7b`."""
    return re.sub(r"[*?\[\]]", "", experiment).strip("_-") or "all"


def load_runs(results_dir: str | Path, experiment: str) -> Runs:
    """The finished runs of `experiment` under `results_dir`/runs; a glob (`rubric_medicine_7b_*`)
    pools several experiments into one report. Empty df when there are none."""
    _examples.cache_clear()
    df = collect(results_dir, experiment)
    if df.empty:
        return Runs(report_name(experiment), df, [], {})
    metrics = metric_columns(df)
    records = {d: load_record(d) for d in df.run_dir}
    aggs = [records[d].config["aggregator"] for d in df.run_dir]
    df["method"] = method_labels(aggs)
    df["risk"], df["schedule"] = zip(*(risk_of(a) for a in aggs), strict=True)
    # the same method in two pooled experiments (other settings, maybe) stays apart
    spread = df.groupby(["model", "task", "method"]).experiment.transform("nunique") > 1
    df.loc[spread, "method"] = df.method[spread] + " [" + df.experiment[spread] + "]"
    return Runs(report_name(experiment), df, metrics, records)


@functools.lru_cache(maxsize=512)
def _examples(run_dir: str) -> pd.DataFrame:
    return examples(run_dir)


def _candidates(ex: pd.DataFrame, metric: str, primary: str) -> list[pd.Series]:
    """Per-example columns that may decompose `metric`: its own name; for `bench/name` (healthbench/
    score, healthbench/axis:accuracy) the rows of that benchmark, column `name`; `score` for the primary."""
    out = [ex[metric]] if metric in ex else []
    if "/" in metric:
        bench, name = metric.split("/", 1)
        rows = (
            ex[ex["benchmark"] == bench]
            if "benchmark" in ex
            else ex[ex.index.astype(str).str.startswith(bench + "/")]
        )
        out += [rows[name]] if name in rows else []
    if metric == primary and "score" in ex:
        out.append(ex["score"])
    return [c for c in out if pd.api.types.is_numeric_dtype(c)]


def example_scores(runs: Runs, run_dirs: list[str], metric: str, primary: str) -> np.ndarray | None:
    """Per-example scores (n_runs, n_shared_examples) of `metric`, or None when the runs lack them.

    A column (see `_candidates`) is used only when its mean reproduces the recorded metric in every
    run, so the per-example rows really decompose it. Examples not scored by every run are dropped."""
    series = []
    for d in run_dirs:
        try:
            ex = _examples(d)
        except (FileNotFoundError, KeyError, ValueError):
            return None
        value = runs.records[d].metrics[metric]["value"]
        declared = runs.records[d].example_columns.get(metric)
        if declared is not None:  # the eval said which column decomposes the metric
            if declared not in ex:
                return None
            series.append(ex[declared].astype(float))
            continue
        ok = [
            c
            for c in _candidates(ex, metric, primary)
            if math.isclose(c.mean(), value, rel_tol=1e-6, abs_tol=1e-9)
        ]
        if not ok:
            return None
        series.append(ok[0].astype(float))
    shared = functools.reduce(lambda a, b: a.intersection(b), (s.index for s in series))
    if len(shared) == 0:
        return None
    x = np.stack([s.reindex(shared).to_numpy() for s in series])
    return x[:, ~np.isnan(x).any(axis=0)]


def _counts(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """(m, k) multiplicities of k items drawn k times with replacement, m times over."""
    idx = rng.integers(0, k, size=(m, k)) + k * np.arange(m)[:, None]
    return np.bincount(idx.ravel(), minlength=m * k).reshape(m, k).astype(float)


def hier_mean_ci(x: np.ndarray, seed: int, n_resamples: int = N_RESAMPLES, confidence: float = 0.95):
    """Percentile CI of the grand mean of x (n_seeds, n_examples), resampling seeds, then examples
    (the same two-level scheme as stats.hierarchical_bootstrap, for one method)."""
    rng = np.random.default_rng(seed)
    s, e = x.shape
    dist = np.empty(n_resamples)
    step = max(1, 2_000_000 // (s + e))
    for start in range(0, n_resamples, step):
        m = min(step, n_resamples - start)
        w, c = _counts(rng, m, e), _counts(rng, m, s)  # multiplicities of examples and of seeds
        dist[start : start + m] = (c * (w @ x.T)).sum(1) / (s * e)
    alpha = 1 - confidence
    low, high = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _mean_ci(values: np.ndarray, x: np.ndarray | None, seed: int) -> tuple[float, float, str]:
    if x is not None and x.shape[1] > 1:
        low, high = hier_mean_ci(x, seed)
        how = "hier. bootstrap" if len(x) > 1 else "example bootstrap (1 seed)"
        return low, high, how
    if len(values) > 1:
        half = sps.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
        return float(values.mean() - half), float(values.mean() + half), "t over seeds"
    return math.nan, math.nan, "none: one seed, no per-example scores"


# ----------------------------------------------------------------------------- paper numbers
def load_reference(path: str | Path | None = DEFAULT_REFERENCE) -> dict:
    """The paper's numbers (results/paper_reference.yaml); empty when the file is absent."""
    import yaml

    if path is None or not Path(path).exists():
        log.warning("no paper reference file at %s: paper columns stay empty", path)
        return {"papers": {}, "entries": []}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for i, e in enumerate(data.get("entries", [])):
        missing = {"experiments", "metrics", "checkpoint", "value", "grade", "paper"} - e.keys()
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {sorted(missing)}")
        if e["grade"] not in ("P", "S", "I") or e["checkpoint"] not in ("best", "final"):
            raise ValueError(f"{path}: entry {i}: grade must be P/S/I and checkpoint best/final, got {e}")
    return {"papers": data.get("papers", {}), "entries": data.get("entries", [])}


def _matches(entry: dict, experiment: str) -> bool:
    return any(fnmatch.fnmatchcase(experiment, p) for p in entry["experiments"])


def paper_numbers(reference: dict, experiment: str, metric: str, attrs: dict) -> dict[str, dict]:
    """{"best": entry, "final": entry} of the paper for one row; the most specific match wins."""
    found: dict[str, dict] = {}
    for e in reference["entries"]:
        if not _matches(e, experiment) or metric not in e["metrics"]:
            continue
        ok = all(
            attrs.get(k) is not None and math.isclose(float(attrs[k]), float(v))
            if isinstance(v, int | float) and not isinstance(v, bool)
            else attrs.get(k) == v
            for k, v in (e.get("match") or {}).items()
        )
        old = found.get(e["checkpoint"])
        if ok and (old is None or len(e.get("match") or {}) > len(old.get("match") or {})):
            found[e["checkpoint"]] = e
    return found


def has_counterpart(reference: dict, experiment: str) -> bool:
    return any(_matches(e, experiment) for e in reference["entries"])


def _paper_text(e: dict | None) -> str:
    if e is None:
        return DASH
    return f"{e['value']:g}{'%' if e.get('unit') == 'percent' else ''} [{e['grade']}]"


# ------------------------------------------------------------------------------------ table
def results_table(runs: Runs, baseline: str = "gdpo", primary: str = "all_constraints", seed: int = 0,
                  reference: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per (model, task, method, metric), raw numbers (see the module docstring).

    Tests against the baseline's runs of the same (model, task): the hierarchical bootstrap over
    seeds and examples where per-example scores exist, else Welch's t over per-seed values (Welch is
    always given too). `p_holm` adjusts the primary p-values over all rows of the table."""
    reference = reference or {"papers": {}, "entries": []}
    df, rows = runs.df, []
    for (model, task), g in df.groupby(["model", "task"], sort=True):
        base = g[(g.method == baseline) | (g.aggregator == baseline)]
        base_method = base.method.iloc[0] if not base.empty else None
        base = base[base.method == base_method]
        for method, a in g.groupby("method", sort=True):
            first = a.iloc[0]
            attrs = {"aggregator": first.aggregator, "schedule": first.schedule, "risk": first.risk}
            for metric in runs.metrics:
                vals = a[metric].dropna().to_numpy(dtype=float)
                if vals.size == 0:
                    continue
                x = example_scores(runs, list(a.run_dir), metric, primary)
                low, high, how = _mean_ci(vals, x, seed)
                row = {"model": model, "task": task, "method": method, "metric": metric}
                row |= {"mean": vals.mean(), "ci_low": low, "ci_high": high, "ci_method": how}
                row |= {"seeds": int(vals.size), "examples": None if x is None else int(x.shape[1])}
                row |= _compare(runs, a, base, method == base_method, metric, primary, seed, baseline)
                paper = paper_numbers(reference, first.experiment, metric, attrs)
                row["paper_best"], row["paper_final"] = (_paper_text(paper.get(k)) for k in ("best", "final"))
                row["paper_source"] = "; ".join(
                    sorted({f"{e['paper']}: {e.get('where', '')}" for e in paper.values()})
                ) or DASH  # fmt: skip
                rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        testable = out["p"].notna()
        out["p_holm"] = np.nan
        if testable.any():
            out.loc[testable, "p_holm"] = holm(out.loc[testable, "p"].to_numpy(dtype=float))
    return out


def _compare(runs: Runs, a, base, is_base: bool, metric: str, primary: str, seed: int, baseline: str) -> dict:
    empty = {"delta": np.nan, "delta_ci_low": np.nan, "delta_ci_high": np.nan, "test": DASH, "p": np.nan}
    empty["p_welch"] = np.nan
    if is_base:
        return empty | {"test": "baseline", "note": ""}
    if base.empty:
        return empty | {"note": f"no runs of baseline {baseline!r} here: nothing to test against"}
    va, vb = a[metric].dropna().to_numpy(float), base[metric].dropna().to_numpy(float)
    with warnings.catch_warnings(record=True) as caught:  # scipy: near-identical per-seed values
        warnings.simplefilter("always", RuntimeWarning)
        w = welch(va, vb)
    welch_warning = f"Welch: {str(caught[0].message).split('.')[0].lower()}" if caught else ""
    xa = example_scores(runs, list(a.run_dir) + list(base.run_dir), metric, primary)
    if xa is not None and xa.shape[1] > 1:
        h = hierarchical_bootstrap(xa[: len(a)], xa[len(a) :], n_resamples=N_RESAMPLES, seed=seed)
        test, p, delta, ci, note = "hier. bootstrap", h.p_value, h.statistic, h.ci, h.note
    else:
        test, p, delta, ci, note = "Welch (seeds)", w.p_value, w.statistic, w.ci, w.note
        note = "; ".join(n for n in ("no per-example scores", note) if n)
    note = "; ".join(n for n in (note, welch_warning) if n)
    p_welch = np.nan if w.p_value is None else w.p_value
    low, high = ci if ci is not None else (np.nan, np.nan)
    out = {"delta": delta, "delta_ci_low": low, "delta_ci_high": high, "test": test}
    return out | {"p": np.nan if p is None else p, "p_welch": p_welch, "note": note}


def _num(v, fmt: str = "{:.3f}") -> str:
    return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def display_table(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The table as formatted strings, for Markdown, LaTeX and HTML (model/task dropped when unique)."""
    t = pd.DataFrame(
        {
            "model": table.model,
            "task": table.task,
            "method": table.method,
            "metric": table.metric,
            "mean": [_num(v) for v in table["mean"]],
            "95% CI": [DASH if math.isnan(lo) else f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(table.ci_low, table.ci_high, strict=True)],
            "paper final": table.paper_final,
            "paper best": table.paper_best,
            "CI method": table.ci_method,
            "seeds": table.seeds,
            "examples": [DASH if v is None or v != v else int(v) for v in table.examples],
            f"Δ vs {baseline}": [_num(v, "{:+.3f}") for v in table.delta],
            "Δ 95% CI": [DASH if lo != lo else f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(table.delta_ci_low, table.delta_ci_high, strict=True)],
            "test": table.test,
            "p": [fmt_p(v) for v in table.p],
            "p (Holm)": [fmt_p(v) for v in table.p_holm],
            "p (Welch, seeds)": [fmt_p(v) for v in table.p_welch],
            "note": table.note,
        }
    )  # fmt: skip
    return t.drop(columns=[c for c in ("model", "task") if t[c].nunique() <= 1])


def table_preamble(runs: Runs, table: pd.DataFrame, baseline: str, reference: dict) -> list[str]:
    """Sentences saying what the numbers are (shown above the table in Markdown and HTML)."""
    df = runs.df
    ex = sorted({int(v) for v in table.examples.dropna()})
    lines = [
        f"Experiments: {', '.join(sorted(set(df.experiment)))}.",
        f"{len(df)} finished runs: " + ", ".join(f"{m} × {n} seed{'s' * (n > 1)}" for m, n in df.groupby("method").size().items()) + ".",
        "mean: average over seeds of each run's final held-out metric; 95% CI: by the method in `CI method`.",
        f"Δ and p: against {baseline}, by the test named in `test` (two-sided); `p (Holm)` adjusts "
        f"the {int(table.p.notna().sum())} testable p-values of this table as one family.",
        "Examples per run (shared by all runs): " + (", ".join(map(str, ex)) if ex else "none recorded") + ".",
    ]  # fmt: skip
    if not any(has_counterpart(reference, e) for e in set(df.experiment)):
        lines.append(
            f"The paper reports no numbers for experiment `{runs.experiment}`: paper columns show {DASH}."
        )
    else:
        lines.append(
            "Paper columns: the paper's number with its source grade [P]/[S]/[I]. Ours are final-checkpoint "
            "values: compare them with `paper final`; `paper best` is the paper's peak over training."
        )
    return lines


_LATEX_UNICODE = {
    "—": "--",
    "<": r"$<$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "→": r"$\to$",
    "±": r"$\pm$",
    "≥": r"$\geq$",
}
_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\~{}", "^": r"\^{}"}


def _latex(text: str) -> str:
    return re.sub(r"[&%$#_{}\\~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def _unicode_to_latex(tex: str) -> str:
    """pdflatex-safe: the table's few non-ASCII symbols as LaTeX commands."""
    for ch, rep in _LATEX_UNICODE.items():
        tex = tex.replace(ch, rep)
    return tex


def write_tables(runs: Runs, table: pd.DataFrame, out: str | Path, baseline: str, reference: dict) -> dict:
    """<out>/tables/<experiment>.{md,csv,tex}; returns {"md"|"csv"|"tex": path}."""
    d = Path(out) / "tables"
    d.mkdir(parents=True, exist_ok=True)
    paths = {k: d / f"{runs.experiment}.{k}" for k in ("md", "csv", "tex")}
    table.to_csv(paths["csv"], index=False)
    shown = display_table(table, baseline)
    pre = table_preamble(runs, table, baseline, reference)
    md = [f"# {runs.experiment}: results against {baseline}", "", *(f"- {s}" for s in pre), "", ""]
    paths["md"].write_text("\n".join(md) + shown.to_markdown(index=False) + "\n", encoding="utf-8")
    styled = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = styled.to_latex(caption=_latex(f"{runs.experiment}: " + " ".join(pre)), hrules=True)
    paths["tex"].write_text(_unicode_to_latex(tex), encoding="utf-8")
    return paths


# ----------------------------------------------------------------------------------- driver
@dataclass
class Report:
    experiment: str
    table: pd.DataFrame
    tables: dict
    figures: list
    page: Path
    notes: list[str]


def command_line(experiment, results_dir, out, baseline, metric, seed, reference) -> str:
    args = ["--experiment", experiment, "--results-dir", str(results_dir), "--out", str(out)]
    args += ["--baseline", baseline, "--metric", metric, "--seed", str(seed)]
    args += ["--paper-reference", str(reference)]
    return f"cd {shlex.quote(str(Path.cwd()))} && python -m rvpo_repro.report {shlex.join(args)}"


def build_report(experiment: str, results_dir: str | Path = "results", out: str | Path = "results",
                 baseline: str = "gdpo", metric: str | None = None, seed: int = 0,
                 reference: str | Path | None = DEFAULT_REFERENCE, command: str | None = None) -> Report:  # fmt: skip
    """Tables, figures and page of one experiment. Raises FileNotFoundError when it has no runs."""
    from rvpo_repro import figures  # imports matplotlib: only when drawing

    runs = load_runs(results_dir, experiment)
    if runs.df.empty:
        raise FileNotFoundError(
            f"no finished runs (result.json) under {Path(results_dir) / 'runs' / experiment}"
        )
    ref = load_reference(reference)
    if metric is None:  # the primary metric the runs' evaluation declared
        declared = sorted({r.primary_metric for r in runs.records.values() if r.primary_metric})
        fallback = [m for m in ("rewards/all_constraints", "all_constraints") if m in runs.metrics]
        metric = declared[0] if len(declared) == 1 else (fallback or runs.metrics or [""])[0]
    notes = []
    if not ((runs.df.aggregator == baseline) | (runs.df.method == baseline)).any():
        notes.append(
            f"Warning: no runs of the baseline {baseline!r} in experiment {experiment!r} (methods: "
            f"{', '.join(sorted(set(runs.df.method)))}): no p-values. Pick one with --baseline."
        )
        log.warning(notes[-1])
    if metric not in runs.metrics:
        notes.append(f"Primary metric {metric!r} is not among the recorded metrics {runs.metrics}.")
        log.warning(notes[-1])
    table = results_table(runs, baseline, metric, seed, ref)
    tables = write_tables(runs, table, out, baseline, ref)
    figs, fig_notes = figures.make_figures(runs, table, Path(out) / "figures" / runs.experiment, metric)
    notes += fig_notes
    page = figures.write_page(
        runs, table, display_table(table, baseline), tables, figs, Path(out) / "report" / runs.experiment,
        title=f"RVPO reproduction: experiment {runs.experiment}", preamble=table_preamble(runs, table, baseline, ref),
        findings=figures.findings(table, baseline, metric), notes=notes,
        command=command or command_line(experiment, results_dir, out, baseline, metric, seed, reference),
    )  # fmt: skip
    figures.log_wandb(runs, table)
    return Report(runs.experiment, table, tables, figs, page, notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--experiment", required=True, nargs="+", help="experiment names; a quoted glob pools several"
    )
    p.add_argument("--results-dir", default="results", help="holds runs/<experiment>/<run>/")
    p.add_argument("--out", default="results", help="tables/, figures/ and report/ go here")
    p.add_argument("--baseline", default="gdpo", help="aggregator (or method label) tested against")
    p.add_argument(
        "--metric", default=None, help="primary metric (default: the one the runs' evaluation declares)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every bootstrap draw")
    p.add_argument("--paper-reference", default=str(DEFAULT_REFERENCE), help="the paper's numbers (YAML)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raw = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    status = 0
    for exp in args.experiment:
        cmd = f"cd {shlex.quote(str(Path.cwd()))} && python -m rvpo_repro.report {raw}"
        try:
            rep = build_report(exp, args.results_dir, args.out, args.baseline, args.metric, args.seed,
                               args.paper_reference, command=cmd)  # fmt: skip
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        for note in rep.notes:
            print(f"note: {note}", file=sys.stderr)
        print(Path(rep.tables["md"]).read_text(encoding="utf-8"))
        print(f"{exp}: tables {rep.tables['md']}, page {rep.page}")
    return status


if __name__ == "__main__":
    sys.exit(main())
