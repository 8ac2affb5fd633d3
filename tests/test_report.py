"""rvpo-report on synthetic run records: tables, figures, the HTML page and degenerate cases."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rvpo_repro.analysis import report
from rvpo_repro.analysis.labels import method_label
from rvpo_repro.analysis.paper import DASH, load_reference, paper_numbers
from rvpo_repro.analysis.report import build_report
from rvpo_repro.analysis.runs import load_runs
from rvpo_repro.analysis.stats.seeds import hierarchical_mean_ci
from rvpo_repro.analysis.wandb_report import log_table
from rvpo_repro.evals.base import metric
from rvpo_repro.io import write_jsonl
from rvpo_repro.run.record import LOG_HISTORY_FILE, load_record, new_record, run_dir, write_record

ENV = {
    "python": "3.11.7",
    "platform": "Linux-test",
    "packages": {"torch": "2.13.0+cpu", "trl": "1.16.0", "numpy": "2.4.6"},
    "cuda_available": False,
    "cuda_device": None,
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "branch": "main"},
}
# Per aggregator: chance that a sample has a digit, and mean fluency (0-3). GDPO neglects the digit
# constraint; RVPO keeps it and pays a little fluency for it (a result against RVPO the page must show).
EFFECTS = {"grpo": (0.55, 2.6), "gdpo": (0.35, 2.7), "rvpo": (0.85, 2.5), "hard_min": (0.8, 2.2)}


def aggregator_cfg(name: str, risk: float | None = None, schedule: str | None = None) -> dict:
    cfg = {"name": name, "risk": None, "risk_start": None, "risk_end": None, "schedule": None}
    if schedule == "linear":
        cfg |= {"risk_start": 0.5, "risk_end": risk, "schedule": "linear"}
    elif risk is not None:
        cfg |= {"risk": risk, "schedule": "constant"}
    return cfg


def write_runs(results_dir, experiment="toy", aggregators=("grpo", "gdpo", "rvpo"), seeds=(0, 1, 2),
               n_examples=40, with_examples=True, with_history=True, metric_names=None, logger_mode="disabled",
               model="tiny", extra_config=None, wandb_url=None):  # fmt: skip
    """Finished toy-like records under results_dir/runs/<experiment>/, in the schema rvpo-train writes:
    metrics `rewards/<channel>`, `rewards/all_constraints`, `rewards/bottleneck` (with its channel),
    the declared primary metric and metric -> example column map. `aggregators` holds names or
    aggregator config dicts (for risk variants). Deterministic: every draw is seeded."""
    results_dir = Path(results_dir)
    for i, agg in enumerate(aggregators):
        agg = aggregator_cfg(agg) if isinstance(agg, str) else agg
        p_digit, fluency = EFFECTS[agg["name"]]
        if agg.get("risk") is not None or agg.get("risk_end") is not None:  # larger k: more digits
            p_digit = min(0.95, p_digit - 0.1 + 0.1 * (agg.get("risk_end") or agg["risk"]))
        for seed in seeds:
            rng = np.random.default_rng(1000 * i + seed)
            p_seed = np.clip(p_digit + rng.normal(0, 0.04), 0.02, 0.98)
            rows = []
            for e in range(n_examples):
                digit = rng.random(4) < p_seed
                upper = rng.random(4) < 0.9
                rows.append(
                    {
                        "id": f"eval-{e:04d}",
                        "all_constraints": float(np.mean(digit & upper)),
                        "fluency": float(np.clip(rng.normal(fluency, 0.2), 0, 3)),
                        "upper": float(upper.mean()),
                        "digit": float(digit.mean()),
                    }
                )
            ex = pd.DataFrame(rows)
            columns = {f"rewards/{c}": c for c in ("all_constraints", "fluency", "upper", "digit")}
            metrics = {m: metric(ex[c].mean(), ex[c].sem(), n_examples) for m, c in columns.items()}
            norm = {"fluency": ex.fluency.mean() / 3, "upper": ex.upper.mean(), "digit": ex.digit.mean()}
            worst = min(norm, key=norm.get)
            metrics["rewards/bottleneck"] = metric(norm[worst], None, n_examples) | {"channel": worst}
            primary = "rewards/all_constraints"
            if metric_names:  # rename metrics (and their example columns) for paper-mapped experiments
                metrics = {metric_names.get(k, k): v for k, v in metrics.items()}
                columns = {metric_names.get(k, k): c for k, c in columns.items()}
                primary = metric_names.get(primary, primary)
            cfg = {
                "experiment_name": experiment,
                "model": {"name": model},
                "task": {"name": "toy_constraints", "data_seed": seed},
                "aggregator": agg,
                "seed": seed,
                "logger": {"mode": logger_mode, "project": "rvpo-repro", "entity": None},
                "paths": {"results_dir": str(results_dir)},
            } | (extra_config or {})
            extra = (
                {"wandb": {"path": f"me/rvpo-repro/{seed}{i}", "url": f"{wandb_url}/{seed}{i}"}}
                if wandb_url
                else None
            )
            rec = new_record(
                cfg, metrics, started_at="2026-01-01T00:00:00+00:00", environment=ENV, extra=extra
            )
            rec.primary_metric, rec.example_columns = primary, columns
            d = run_dir(cfg)
            write_record(d, rec, rows if with_examples else [])
            if with_history:
                write_jsonl(d / LOG_HISTORY_FILE, history(rng, agg, p_seed, fluency))
    return results_dir


def history(rng, agg: dict, p_digit: float, fluency: float, steps: int = 60) -> list[dict]:
    rows = []
    for step in range(1, steps + 1):
        t = step / steps
        digit = float(np.clip(0.5 + (p_digit - 0.5) * t + rng.normal(0, 0.05), 0, 1))
        upper = float(np.clip(0.7 + 0.2 * t + rng.normal(0, 0.05), 0, 1))
        flu = float(np.clip(2.0 + (fluency - 2.0) * t + rng.normal(0, 0.05), 0, 3))
        row = {"loss": 0.0, "step": step, "reward": flu + upper + digit, "rewards/fluency/mean": flu}
        row |= {"rewards/upper/mean": upper, "rewards/digit/mean": digit}
        row |= {"channels/upper/satisfied": upper, "channels/digit/satisfied": digit}
        row |= {"channels/bottleneck": min(flu / 3, upper, digit), "channels/all_constraints": upper * digit}
        if agg["name"] == "rvpo":
            row |= {"aggregator/risk": agg.get("risk") or 0.5 + 1.5 * t}
            w = np.exp(-np.array([flu / 3, upper, digit]) * 2)
            row |= {
                f"aggregator/weight/{c}": float(v)
                for c, v in zip(("fluency", "upper", "digit"), w / w.sum(), strict=True)
            }
        rows.append(row)
    return rows + [{"train_runtime": 1.0, "step": steps}]


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_runs(tmp_path_factory.mktemp("results"), wandb_url="https://wandb.ai/me/rvpo-repro/runs")
    return root, build_report("toy", root, root, baseline="gdpo", snapshot=None)


def test_tables_written_in_three_formats_with_values_from_the_records(toy):
    root, rep = toy
    assert {k: p.name for k, p in rep.tables.items()} == {"md": "toy.md", "csv": "toy.csv", "tex": "toy.tex"}
    csv = pd.read_csv(rep.tables["csv"])
    runs = load_runs(root, "toy")
    for (method, metric_name), row in csv.set_index(["method", "metric"]).iterrows():
        values = runs.df.loc[runs.df.method == method, metric_name]
        assert row["mean"] == pytest.approx(values.mean()) and row["seeds"] == 3
        assert row.ci_low <= row["mean"] <= row.ci_high
    md = rep.tables["md"].read_text()
    assert (
        "| method" in md and "p (Holm)" in md and "Welch (seeds)" in md and "p (examples | these seeds)" in md
    )
    assert "Statistics rule: with fewer than 5 seeds" in md
    tex = rep.tables["tex"].read_text()
    assert r"\begin{tabular}" in tex and r"rewards/all\_constraints" in tex and "—" not in tex


def test_three_seeds_headline_is_seed_level_with_example_bootstrap_secondary(toy):
    _, rep = toy
    t = rep.table
    assert set(t[t.method == "gdpo"].test) == {"baseline"}
    others = t[t.method != "gdpo"]
    assert set(others.test) == {"Welch (seeds)"} and (others.p == others.p_welch).all()
    assert others.p_perm.notna().all() and (others.p_perm >= 0.1 - 1e-12).all()  # 3 v 3 seeds: min p 0.1
    assert others.perm_note.str.contains("smallest attainable p = 0.1").all()
    nb = others[others.metric != "rewards/bottleneck"]
    assert nb.p_examples.notna().all()  # the conditional example bootstrap, secondary
    assert (others.p_holm >= others.p - 1e-12).all()
    digit = t[(t.method == "rvpo") & (t.metric == "rewards/digit")].iloc[0]
    assert digit.delta > 0.3 and digit.p_holm < 0.05
    assert "p (perm., seeds)" in rep.tables["md"].read_text() and "(min 0.1)" in rep.tables["md"].read_text()


def test_bottleneck_row_takes_the_test_of_the_channel_it_equals(toy):
    _, rep = toy
    t = rep.table.set_index(["method", "metric"])
    b, d = t.loc[("grpo", "rewards/bottleneck")], t.loc[("grpo", "rewards/digit")]  # digit is the bottleneck
    assert b.test == d.test and b.p == pytest.approx(d.p, rel=1e-9) and "same test as rewards/digit" in b.note
    assert b.delta_ci_low == pytest.approx(d.delta_ci_low) and b.delta_ci_high == pytest.approx(
        d.delta_ci_high
    )


def test_five_seeds_make_the_hierarchical_bootstrap_the_headline(tmp_path):
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=range(5), n_examples=30, with_history=False)
    rep = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    rv = rep.table[rep.table.method == "rvpo"].set_index("metric")
    assert rv.loc["rewards/digit", "test"] == "hier. bootstrap" and rv.loc["rewards/digit", "p_welch"] >= 0
    assert rv.loc["rewards/digit", "ci_method"] == "hier. bootstrap"
    b = rv.loc["rewards/bottleneck"]
    channel = b.note.split("same test as ")[1].split(" ")[0] if "same test as" in b.note else None
    if channel:  # every run's bottleneck is one channel: its test and p, rescaled CI
        assert b.test == rv.loc[channel, "test"] and b.p == pytest.approx(rv.loc[channel, "p"])
    else:
        assert b.test == "Welch (seeds)" and "differs between runs" in b.note


def test_findings_report_results_against_rvpo(toy):
    _, rep = toy
    page = rep.page.read_text()
    assert "rvpo vs gdpo on rewards/all_constraints" in page
    assert re.search(r"rvpo scores below gdpo on: [^<]*rewards/fluency", page)  # RVPO pays fluency: shown


def test_no_paper_counterpart_is_stated(toy):
    _, rep = toy
    assert set(rep.table.paper_best) == {DASH} and set(rep.table.paper_final) == {DASH}
    assert "The paper reports no numbers for experiment `toy`" in rep.tables["md"].read_text()


def test_paper_numbers_beside_a_track_by_model_and_variant(tmp_path):
    names = {"rewards/all_constraints": "healthbench/score", "rewards/digit": "healthbench/axis:completeness"}
    annealed = aggregator_cfg("rvpo", 2.0, "linear")
    write_runs(
        tmp_path,
        "rubric_medicine",
        ["gdpo", annealed],
        metric_names=names,
        with_history=False,
        model="qwen2.5-7b",
    )
    rep = build_report("rubric_medicine", tmp_path, tmp_path, snapshot=None)
    assert rep.tables["md"].name == "rubric_medicine.md"
    t = rep.table.set_index(["method", "metric"])
    assert t.loc[("rvpo (k 0.5→2)", "healthbench/score"), ["paper_best", "paper_final"]].tolist() == [
        "0.23 [S]",
        "0.204 [S]",
    ]
    assert t.loc[("gdpo", "healthbench/score"), ["paper_best", "paper_final"]].tolist() == [
        "0.198 [S]",
        "0.026 [S]",
    ]
    assert t.loc[("rvpo (k 0.5→2)", "healthbench/axis:completeness"), "paper_final"] == "15.2% [S]"
    assert (
        t.loc[("gdpo", "rewards/fluency"), "paper_final"] == DASH
        and t.loc[("gdpo", "rewards/fluency"), "paper_source"] == DASH
    )
    assert "paper final" in rep.tables["md"].read_text()


def test_reference_file_is_valid_and_keyed_on_track_model_variant():
    ref = load_reference()
    assert len(ref["entries"]) >= 25 and "rvpo" in ref["papers"]
    got = paper_numbers(ref, "rubric_medicine", "qwen2.5-14b", "rvpo (k 0.5→2)", "healthbench/score")
    assert (got["best"]["value"], got["best"]["grade"]) == (0.261, "P")
    got = paper_numbers(ref, "rubric_medicine", "qwen2.5-7b", "rvpo (k=5)", "healthbench/score")
    assert (got["best"]["value"], got["final"]["value"]) == (0.241, 0.095)
    assert paper_numbers(ref, "rubric_medicine", "qwen2.5-7b", "rvpo (k=1)", "healthbench/score") == {}
    assert (
        paper_numbers(ref, "rubric_medicine", "qwen2.5-7b", "gdpo (mean)", "healthbench/score")["best"][
            "value"
        ]
        == 0.198
    )
    bfcl = paper_numbers(ref, "tool_calling", "qwen2.5-3b", "rvpo (k=1)", "bfcl/overall")
    assert bfcl["final"]["value"] == 80.4 and "best" not in bfcl
    variants = {
        v for e in ref["entries"] for v in e["variants"]
    }  # every variant is a label method_label renders
    rendered = {method_label(a) for a in ({"name": "gdpo"}, {"name": "gdpo", "reduce": "mean"}, {"name": "hard_min"},
                aggregator_cfg("rvpo", 5.0), aggregator_cfg("rvpo", 1.0), aggregator_cfg("rvpo", 2.0, "linear"))}  # fmt: skip
    assert variants <= rendered


def test_figures_are_non_empty_pngs(toy):
    _, rep = toy
    names = {Path(p).name for p, _ in rep.figures}
    assert {
        "curves_channels.png",
        "curves_bottleneck.png",
        "curves_aggregator.png",
        "final_scores.png",
    } <= names
    assert all(is_png(Path(p)) for p, _ in rep.figures)
    assert "risk.png" not in names and any("No risk variation" in n for n in rep.notes)


def test_risk_figure_for_an_ablation(tmp_path):
    aggs = ["gdpo", *(aggregator_cfg("rvpo", k) for k in (0.5, 1.0, 2.0))]
    write_runs(tmp_path, "toy_risk", aggs, seeds=(0, 1), with_history=False)
    rep = build_report("toy_risk", tmp_path, tmp_path, snapshot=None)
    assert set(rep.table.method) == {"gdpo", "rvpo (k=0.5)", "rvpo (k=1)", "rvpo (k=2)"}
    risk = tmp_path / "figures" / "toy_risk" / "risk.png"
    assert is_png(risk) and any("log_history" in n for n in rep.notes)


def test_html_links_resolve_and_page_states_provenance(toy):
    _, rep = toy
    page = rep.page.read_text()
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    local = [u for u in links if not u.startswith("https://wandb.ai/")]
    assert len(local) >= 8 and len(links) - len(local) == 9  # one W&B link per finished run
    for link in local:
        assert not link.startswith(("/", "http")), link
        assert (rep.page.parent / link).resolve().is_file(), link
    assert ENV["git"]["commit"] in page and "trl" in page and "1.16.0 (9 runs)" in page
    assert "rvpo-report --experiment toy" in page
    assert "Welch" in page and "hierarchical bootstrap" in page


def test_page_without_wandb_links_has_none(tmp_path):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0,), with_history=False)
    rep = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    assert "wandb.ai" not in rep.page.read_text()


def test_an_offline_run_links_its_local_wandb_folder(tmp_path):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0, 1), with_history=False)
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    for f in sorted((tmp_path / "runs" / "toy").glob("*/result.json"))[:1]:
        data = json.loads(f.read_text())
        data["extra"] = {"wandb": {"mode": "offline", "url": None, "dir": str(folder)}}
        f.write_text(json.dumps(data))
    page = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None).page.read_text()
    assert f'<a href="{folder.as_uri()}" title="{folder}">offline: {folder.name}</a>' in page
    assert page.count("offline: ") == 1 and "wandb.ai" not in page  # the other run recorded none: "—"


def test_one_seed_explains_missing_p_value(tmp_path):
    write_runs(tmp_path, "toy", seeds=(0,))
    rep = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    rows = rep.table[rep.table.method != "gdpo"]
    assert rows.p.isna().all() and rows.p_holm.isna().all()
    assert rows.note.str.contains("at least 2 seeds").all()
    assert "one run has no seed-to-seed spread" in rep.tables["md"].read_text()
    assert set(rep.table.ci_method[rep.table.metric != "rewards/bottleneck"]) == {
        "example bootstrap (1 seed)"
    }


def test_no_baseline_runs_gives_a_clear_message(tmp_path, capsys):
    write_runs(tmp_path, "toy", ["grpo", "rvpo"], seeds=(0, 1), with_history=False)
    args = [
        "--experiment",
        "toy",
        "--baseline",
        "gdpo",
        "--results-dir",
        str(tmp_path),
        "--out",
        str(tmp_path),
    ]
    assert report.main(args) == 0
    err = capsys.readouterr().err
    assert "no runs of the baseline 'gdpo' in experiment 'toy'" in err and "--baseline" in err
    md = (tmp_path / "tables" / "toy.md").read_text()
    assert "no runs of baseline 'gdpo' here" in md
    assert "no runs of the baseline" in (tmp_path / "report" / "toy" / "index.html").read_text()


def test_one_default_baseline_per_experiment(tmp_path):
    """toy's table tests every method against rvpo (as the Makefile and the notebook do); other
    experiments against gdpo."""
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False)
    rep = build_report("toy", tmp_path, tmp_path, snapshot=None)
    assert set(rep.table.method[rep.table.test == "baseline"]) == {"rvpo"}
    assert (tmp_path / "tables" / "toy.md").read_text().startswith("# toy: results against rvpo")
    from rvpo_repro.analysis.report import default_baseline

    assert default_baseline("toy") == "rvpo" and default_baseline("rubric_toy") == "gdpo"


def test_no_runs_at_all_fails_clearly(tmp_path, capsys):
    assert (
        report.main(["--experiment", "missing", "--results-dir", str(tmp_path), "--out", str(tmp_path)]) == 1
    )
    assert "no finished runs" in capsys.readouterr().err


def test_no_experiment_and_no_runs_is_one_line_naming_what_to_run(tmp_path, capsys):
    assert report.main(["--results-dir", str(tmp_path), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make reproduce" in err and "usage" not in err


def test_without_per_example_scores_falls_back_to_seeds(tmp_path):
    write_runs(tmp_path, "toy", seeds=(0, 1, 2), with_examples=False, with_history=False)
    rep = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    rows = rep.table[rep.table.method != "gdpo"]
    assert set(rows.test) == {"Welch (seeds)"} and rows.p.notna().all() and rows.p_examples.isna().all()
    assert all(m.startswith("t over seeds") for m in rep.table.ci_method) and rep.table.examples.isna().all()


def test_method_label_is_absolute_and_names_every_set_option():
    assert method_label(aggregator_cfg("gdpo")) == "gdpo"
    assert method_label({"name": "gdpo", "reduce": "mean"}) == "gdpo (mean)"
    assert method_label({"name": "gdpo", "reduce": "sum", "use_item_weights": False}) == "gdpo"
    assert method_label(aggregator_cfg("rvpo", 1.0)) == "rvpo (k=1)"
    assert method_label(aggregator_cfg("rvpo", 2.0, "linear")) == "rvpo (k 0.5→2)"
    assert method_label({"name": "rvpo", "risk": 1.0, "use_item_weights": True}) == "rvpo (k=1, item weights)"
    assert (
        method_label({"name": "variance_penalty", "beta": 0.1, "eps": None}) == "variance_penalty (beta=0.1)"
    )
    assert method_label({"name": "hard_min"}) == "hard_min"
    assert method_label({"name": "grpo", "scale": "group"}) == "grpo"  # conf/aggregator/grpo.yaml
    assert method_label({"name": "grpo", "scale": "batch"}) == "grpo (scale=batch)"


def test_hierarchical_mean_ci_covers_the_mean_and_widens_with_seed_spread():
    rng = np.random.default_rng(0)
    tight = rng.normal(0.5, 0.1, (3, 200))
    spread = tight + np.array([[-0.2], [0.0], [0.2]])
    lo, hi = hierarchical_mean_ci(tight, n_resamples=2000, seed=0)
    lo2, hi2 = hierarchical_mean_ci(spread, n_resamples=2000, seed=0)
    assert lo < tight.mean() < hi and (hi2 - lo2) > 3 * (hi - lo)
    assert not math.isnan(lo)


def test_wandb_is_skipped_unless_online(tmp_path, monkeypatch):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0,), with_history=False, logger_mode="online")
    runs = load_runs(tmp_path, "toy")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert log_table(runs, pd.DataFrame()) is False


def test_wandb_table_logged_when_online(tmp_path, monkeypatch):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0,), with_history=False, logger_mode="online")
    runs = load_runs(tmp_path, "toy")
    calls = {}

    class FakeRun:
        def log(self, data):
            calls["log"] = data

        def finish(self):
            calls["finished"] = True

    class FakeWandb:
        @staticmethod
        def init(**kwargs):
            calls["init"] = kwargs
            return FakeRun()

        class Table:
            def __init__(self, dataframe):
                self.dataframe = dataframe

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    table = pd.DataFrame({"method": ["gdpo"], "p": [np.nan]})
    assert log_table(runs, table) is True
    assert calls["init"]["project"] == "rvpo-repro" and calls["init"]["job_type"] == "report"
    logged = calls["log"]["report/toy"].dataframe
    assert logged.p.tolist() == [None] and calls["finished"]


def test_a_seed_key_fixed_in_some_runs_is_a_setting_not_a_seed(tmp_path):
    """`task.data_seed: 0` in every run equals the seed only in seed 0's: it is a setting, and runs
    that differ in it are never pooled under one label."""
    from rvpo_repro.analysis.runs import ConfigConflictError, load_runs, seed_followers

    for data_seed, seeds in ((0, (0, 1)), (7, (2, 3))):
        task = {"name": "toy_constraints", "data_seed": data_seed}
        write_runs(tmp_path, "toy", ["rvpo"], seeds=seeds, with_history=False, extra_config={"task": task})
    recs = [load_record(d) for d in sorted((tmp_path / "runs" / "toy").iterdir())]
    assert seed_followers(recs) == set()
    assert seed_followers(recs[:1]) == {("task", "data_seed")}  # one run: it equals its seed
    with pytest.raises(ConfigConflictError, match="task.data_seed: 0 -> 7"):
        load_runs(tmp_path, "toy")


def test_every_panel_has_a_y_label_and_every_figure_the_same_font_sizes(tmp_path, monkeypatch):
    from rvpo_repro.analysis import figures as figs

    seen = []
    monkeypatch.setattr(figs, "save_figure", lambda fig, path, **kw: seen.append((Path(path).name, fig)))
    write_runs(tmp_path, "toy", seeds=(0, 1))
    build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    assert {"final_scores.png", "curves_channels.png"} <= {name for name, _ in seen}
    for name, fig in seen:
        assert fig._suptitle.get_fontsize() == figs.FONT["suptitle"], name
        for ax in (a for a in fig.axes if a.get_visible()):
            assert ax.get_ylabel(), (name, ax.get_title())
            assert (
                ax.title.get_fontsize() == figs.FONT["title"]
                and ax.yaxis.label.get_fontsize() == figs.FONT["label"]
            )
            assert {t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()} <= {
                figs.FONT["tick"]
            }
