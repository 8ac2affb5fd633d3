"""The report's static HTML page: what the numbers are, findings, summary, table, figures, provenance.

Findings are plain sentences on every comparison of the primary metric, every Holm-significant
difference elsewhere, and every metric where an RVPO variant scores below the baseline (results
against RVPO are listed, not filtered). Each run links to its W&B run when its record stores one
(`extra.wandb.url`), else to its local offline run folder (`extra.wandb.dir`).
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from rvpo_repro.analysis.output import write_if_changed
from rvpo_repro.analysis.table import fmt_p


def _p(p) -> str:
    text = fmt_p(p)
    return text if text.startswith("<") else f"= {text}"


def findings(table: pd.DataFrame, baseline: str, primary: str, alpha: float = 0.05) -> list[str]:
    """Plain sentences on every comparison of the primary metric, every Holm-significant difference
    on another metric, and every metric where an RVPO variant scores below the baseline."""
    out = []
    comp = table[table.test.ne("baseline") & table.delta.notna()]
    for r in comp.itertuples():
        signif = r.p_holm == r.p_holm and r.p_holm < alpha
        if r.metric != primary and not signif:
            continue
        ci = (
            ""
            if r.delta_ci_low != r.delta_ci_low
            else f", 95% CI [{r.delta_ci_low:+.3f}, {r.delta_ci_high:+.3f}]"
        )
        if r.p != r.p:
            verdict = f"no p-value ({r.note})"
        else:
            word = (
                f"significantly {'higher' if r.delta > 0 else 'lower'}"
                if signif
                else "no significant difference"
            )
            verdict = f"p {_p(r.p)} ({r.test}), Holm-adjusted p {_p(r.p_holm)}: {word} at level {alpha:g}"
        out.append(f"{r.method} vs {baseline} on {r.metric}: Δ {r.delta:+.3f}{ci}; {verdict}.")
    below = comp[comp.method.str.startswith("rvpo") & (comp.delta < 0)]
    for method, g in below.groupby("method"):
        items = ", ".join(f"{r.metric} (Δ {r.delta:+.3f}, Holm p {fmt_p(r.p_holm)})" for r in g.itertuples())
        out.append(f"{method} scores below {baseline} on: {items}.")
    return out


# ------------------------------------------------------------------------------------- page
CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f0f0f0;position:sticky;top:0}.wide{overflow:auto;max-width:100%;max-height:640px;border:1px solid #ddd}img{max-width:100%;border:1px solid #ddd}
code,pre{background:#f6f6f6;padding:2px 4px}pre{white-space:pre-wrap;padding:8px}.warn{color:#a33}.summary td,.full td{white-space:nowrap}.full td:last-child{white-space:normal;min-width:20em}figure{margin:1.5em 0}"""


def _provenance(runs) -> str:
    recs = list(runs.records.values())
    commits = Counter(
        f"{(r.environment.get('git') or {}).get('commit') or 'unknown'}"
        + (" (uncommitted changes)" if (r.environment.get("git") or {}).get("dirty") else "")
        for r in recs
    )
    pkgs: dict[str, Counter] = {}
    for r in recs:
        for name, v in (r.environment.get("packages") or {}).items():
            pkgs.setdefault(name, Counter())[v or "absent"] += 1
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(', '.join(f'{v} ({c} runs)' for v, c in cnt.items()))}"
        f"{' <b class=warn>differs between runs</b>' if len(cnt) > 1 else ''}</td></tr>"
        for n, cnt in sorted(pkgs.items())
    )
    py = Counter(f"Python {r.environment.get('python')} on {r.environment.get('platform')}" for r in recs)
    items = "".join(f"<li><code>{html.escape(c)}</code>: {n} runs</li>" for c, n in commits.items())
    env = "".join(f"<li>{html.escape(p)}: {n} runs</li>" for p, n in py.items())
    runs_html = _runs_table(runs)
    return (f"<h3>Git commits</h3><ul>{items}</ul><h3>Environment</h3><ul>{env}</ul>"
            f"<h3>Package versions</h3><table>{rows}</table>"
            f"<details><summary>All {len(recs)} runs</summary><div class=\"wide\">{runs_html}</div></details>")  # fmt: skip


def _runs_table(runs) -> str:
    """Every run (finished ones with their W&B link when recorded), then the unfinished/failed ones."""
    esc = html.escape
    rows = []
    for r in runs.df.sort_values(["method", "seed"]).itertuples():
        url = r.wandb_url if isinstance(r.wandb_url, str) and r.wandb_url.startswith("https://") else None
        local = getattr(r, "wandb_dir", None)
        if url:
            link = f'<a href="{esc(url)}">W&amp;B run</a>'
        elif isinstance(local, str) and local:  # an offline run: its folder, which `make wandb-sync` uploads
            folder = Path(local)
            link = f'<a href="{esc(folder.as_uri() if folder.is_absolute() else local)}" title="{esc(local)}">offline: {esc(folder.name)}</a>'
        else:
            link = "—"
        cells = (r.run_id, r.method, r.seed, r.config_hash, r.git_commit or "unknown")
        rows.append(
            "<tr>"
            + "".join(f"<td>{esc(str(c))}</td>" for c in cells)
            + f"<td>finished</td><td>{link}</td></tr>"
        )
    for s in runs.status:
        cells = (
            s["run_id"],
            "",
            "" if s["seed"] is None else s["seed"],
            "",
            "",
            f"{s['state']} {s['reason']}".strip(),
        )
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "<td>—</td></tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("run_id", "method", "seed", "config_hash", "git_commit", "state", "W&amp;B")
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def summary_html(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """Methods x metrics: mean [95% CI], marked ▲/▼ where Holm-adjusted p < alpha against the baseline."""

    def cell(r) -> str:
        ci = "" if r.ci_low != r.ci_low else f" [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        mark = " ▲" if r.delta > 0 else " ▼" if r.delta < 0 else ""
        return f"{r['mean']:.3f}{ci}{mark if r.p_holm == r.p_holm and r.p_holm < alpha else ''}"

    t = table.assign(cell=table.apply(cell, axis=1), row=table.method)
    if table.model.nunique() > 1 or table.task.nunique() > 1:
        t["row"] = t.model + " / " + t.task + " / " + t.method
    pivot = t.pivot_table(index="row", columns="metric", values="cell", aggfunc="first", sort=False)
    return pivot.rename_axis(index=None, columns=None).to_html(border=0, na_rep="—", classes="summary")


def write_page(runs, table: pd.DataFrame, shown: pd.DataFrame, tables: dict, figs: list, outdir: Path, *, title: str,
               preamble: list[str], findings: list[str], notes: list[str], command: str) -> Path:  # fmt: skip
    """<outdir>/index.html: explanation, findings, table (and its files), figures, provenance."""
    outdir.mkdir(parents=True, exist_ok=True)
    esc = html.escape

    def rel(p: Path) -> str:
        return esc(Path(os.path.relpath(Path(p).resolve(), outdir.resolve())).as_posix())

    links = " · ".join(f'<a href="{rel(p)}">{k.upper()}</a>' for k, p in tables.items())
    fig_html = figures_html(figs, rel)
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{CSS}</style></head><body><h1>{esc(title)}</h1>
<p><b>Constraint neglect</b>: GRPO-style methods add up several rewards, so success on an easy channel can
pay for failure on a hard one. RVPO aggregates per-channel advantages with a SoftMin (risk coefficient k),
which weights the weakest channel most. The tables and figures below compare the methods of this experiment
on held-out data; every number is computed from the run records, none is typed in.</p>
<h2>What the numbers are</h2><ul>{"".join(f"<li>{esc(s)}</li>" for s in preamble)}
<li>Bootstraps draw 10,000 seeded resamples; the hierarchical bootstrap resamples seeds, then the eval
examples shared by all runs. With one seed per method no across-seed test can run: the
<code>note</code> column says so instead of giving a p-value.</li></ul>
<h2>Findings</h2><ul>{"".join(f"<li>{esc(s)}</li>" for s in findings) or "<li>No comparison possible.</li>"}</ul>
<h2>Notes</h2><ul>{"".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>None.</li>"}</ul>
<h2>Summary</h2><p>Mean over seeds [95% CI]; ▲/▼: higher/lower than the baseline with Holm-adjusted p &lt; 0.05.</p>
<div class="wide">{summary_html(table)}</div>
<h2>Full results table</h2><p>Files: {links}. Wider than the page: it scrolls sideways inside its box.</p><div class="wide">{shown.to_html(index=False, border=0, na_rep="—", classes="full")}</div>
<h2>Figures</h2><p>One colour per method in every figure.</p>{fig_html}
<h2>Provenance</h2>{_provenance(runs)}
<h3>Command</h3><p>Rebuilt from the records above by:</p><pre>{esc(command)}</pre>
</body></html>"""
    page = outdir / "index.html"
    write_if_changed(page, body)
    return page


def figures_html(figs: list, rel) -> str:
    """(path, caption) pairs as linked <figure>s; `rel` makes a path relative to the page."""
    esc = html.escape
    return "".join(
        f'<figure><a href="{rel(p)}"><img src="{rel(p)}" alt="{esc(Path(p).stem)}"></a>'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for p, cap in figs
    )


def leaderboard_section(table: pd.DataFrame, figs: list, rel) -> str:
    """The aggregator benchmark as an HTML section: the leaderboard table and its figures."""
    shown = table.drop(columns=[c for c in table.columns if c.endswith(("_ci_low", "_ci_high"))])
    fig_html = figures_html(figs, rel)
    return f"""<h2>Aggregator benchmark</h2>
<p>Every registered aggregator at its defaults (and the paper's RVPO variants) on the CPU tasks. Per task and
over all tasks: mean and interquartile mean (IQM) of the task's primary metric over seeds, with 95%
stratified-bootstrap CIs in the CSV; P(&gt; rvpo), P(&gt; gdpo): the probability that a run of the method beats a
run of RVPO (k=1) or of GDPO on the same task, averaged over tasks; bottleneck and per-channel rates on the
held-out set.</p>
<div class="wide">{shown.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.3f}", classes="full")}</div>
{fig_html}"""


def write_leaderboard_page(table: pd.DataFrame, md: str, figs: list, files: dict, outdir: Path, command: str,
                           status: str = "") -> Path:  # fmt: skip
    """<outdir>/index.html: the benchmark section, its files and the command that wrote it."""
    outdir.mkdir(parents=True, exist_ok=True)
    esc = html.escape

    def rel(p: Path) -> str:
        return esc(Path(os.path.relpath(Path(p).resolve(), outdir.resolve())).as_posix())

    links = " · ".join(f'<a href="{rel(p)}">{esc(k)}</a>' for k, p in files.items())
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Aggregator benchmark</title>
<style>{CSS}</style></head><body><h1>Aggregator benchmark</h1>
<p>{esc(status)}</p><p>Files: {links}</p>
{leaderboard_section(table, figs, rel)}
<h3>Command</h3><p>Rebuild with:</p><pre>{esc(command)}</pre>
</body></html>"""
    path = outdir / "index.html"
    path.write_text(body, encoding="utf-8")
    return path


def credit_section(reference: pd.DataFrame, figs: list, files: dict, outdir: Path) -> str:
    """The credit profiles as an HTML section: the two reference groups per method, then the figures."""
    esc = html.escape

    def rel(p: Path) -> str:
        return esc(Path(os.path.relpath(Path(p).resolve(), outdir.resolve())).as_posix())

    rows = "".join(
        f"<tr><td>{esc(r.config)}</td><td>{esc(r.shown)}</td><td>{r.meets:+.2f}</td><td>{r.slips:+.2f}</td></tr>"
        for r in reference.itertuples()
    )
    links = " · ".join(f'<a href="{rel(p)}">{esc(k)}</a>' for k, p in files.items())
    fig_html = figures_html(figs, rel)
    return f"""<h2>Credit profiles: why the methods differ</h2>
<p>The advantage one rollout receives from each aggregator alone, without training or batch whitening, in one
group of 8 rollouts with 5 binary channels. <i>meets</i>: it alone meets a hard channel and meets every easy one;
<i>slips</i>: the same, but it misses an easy channel every other rollout meets. A SoftMin weighs a rollout's
worst channel: a rare success is a high z-score and is discounted, a slip is a low one and dominates. Files:
{links}.</p>
<table><tr><th>config</th><th>method</th><th>meets</th><th>slips</th></tr>{rows}</table>
{fig_html}"""


def put_section(path: Path, name: str, section: str) -> None:
    """Put `section` into the page at `path` between `<!-- name -->` markers: in place of the
    previous one, else before the page's command (or the end of its body)."""
    text = Path(path).read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{section}\n{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        anchor = "<h3>Command</h3>" if "<h3>Command</h3>" in text else "</body>"
        text = text.replace(anchor, block + anchor, 1)
    write_if_changed(path, text)
