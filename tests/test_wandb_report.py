"""`rvpo-report --wandb-report --dry-run`: the W&B Report spec, checked against the keys a real training
run logs (the committed snapshot's log_history.jsonl is real RVPOTrainer output; the slow test trains)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.toy_runs import toy_smoke_overrides

from rvpo_repro.analysis.report import build_report
from rvpo_repro.run.record import load_log_history, load_record

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "results" / "snapshot" / "runs" / "toy"


def check_spec(spec: dict, logged: set[str], run_records: list) -> None:
    train_keys = {"train/" + k for k in logged}  # transformers' WandbCallback prefixes training logs
    lines = [p for p in spec["panels"] if p["type"] == "line"]
    assert {p["title"].split(" ")[0] for p in lines} >= {
        "Per-channel",
        "Bottleneck:",
        "All",
        "Risk",
        "SoftMin",
    }
    for p in lines:
        assert p["x"] == "train/global_step" and set(p["y"]) <= train_keys, (
            p["title"],
            set(p["y"]) - train_keys,
        )
        if p.get("metric_regex"):
            assert any(re.fullmatch(p["metric_regex"], k) for k in train_keys), p["metric_regex"]
        assert p["y"] or p.get("metric_regex")
    wanted = {"train/channels/bottleneck", "train/channels/all_constraints", "train/aggregator/risk"}
    assert wanted <= {k for p in lines for k in p["y"]}
    assert any(k.startswith("train/channels/") and k.endswith("/satisfied") for p in lines for k in p["y"])
    assert any(k.startswith("train/aggregator/weight/") for p in lines for k in p["y"])
    (bar,) = [p for p in spec["panels"] if p["type"] == "bar"]
    summary = {"eval/" + m for r in run_records for m in r.metrics}  # pipeline.save_result's summary keys
    assert bar["metrics"] and set(bar["metrics"]) <= summary
    rs = spec["runset"]
    for r in run_records:  # the filter and grouping name config keys every run has
        assert r.config["experiment_name"] == rs["filters"]["config.experiment_name"]
        assert r.config["aggregator"]["name"]
    assert (
        rs["groupby"] == ["aggregator.name"]
        and rs["filter_expr"] == f"Config('experiment_name') = '{r.experiment}'"
    )
    assert "p (Holm)" in spec["results_table_md"] and "95% CI" in spec["results_table_md"]


@pytest.mark.skipif(
    not (SNAPSHOT.is_dir() and any(SNAPSHOT.glob("*rvpo*"))), reason="no committed toy snapshot"
)
def test_dry_run_spec_matches_keys_the_trainer_logged(tmp_path):
    shutil.copytree(SNAPSHOT, tmp_path / "runs" / "toy")
    rep = build_report("toy", tmp_path, tmp_path, wandb=True, dry_run=True, baseline="gdpo", snapshot=None)
    assert rep.wandb_spec == tmp_path / "report" / "toy" / "wandb_report.json" and rep.wandb_url is None
    spec = json.loads(rep.wandb_spec.read_text())
    dirs = sorted(p.parent for p in (tmp_path / "runs" / "toy").glob("*/result.json"))
    logged = {k for d in dirs for row in load_log_history(d) for k in row}
    check_spec(spec, logged, [load_record(d) for d in dirs])


@pytest.mark.slow
def test_dry_run_spec_against_a_fresh_training_run(tmp_path, cache_dir):
    overrides = toy_smoke_overrides(tmp_path, cache_dir, "aggregator=rvpo", "trainer.max_steps=2")
    cmd = [sys.executable, "-m", "rvpo_repro.train", *overrides]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=900)
    results = tmp_path / "results"
    rep = build_report("toy_smoke", results, tmp_path, wandb=True, dry_run=True, snapshot=None)
    dirs = sorted(p.parent for p in (results / "runs" / "toy_smoke").glob("*/result.json"))
    logged = {k for d in dirs for row in load_log_history(d) for k in row}
    check_spec(json.loads(rep.wandb_spec.read_text()), logged, [load_record(d) for d in dirs])
