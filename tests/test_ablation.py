"""The risk ablation: settings recognised from aggregator configs, best vs final per seed, files."""

from __future__ import annotations

import math

import pytest

from rvpo_repro.aggregators import get_aggregator
from rvpo_repro.analysis import ablation
from rvpo_repro.analysis.labels import setting_label
from rvpo_repro.run.record import RunRecord, write_record


def _record(tmp_path, name, agg, seed, final, ckpts):
    rec = RunRecord(
        experiment="abl",
        run_id=name,
        config_hash=name,
        seed=seed,
        config={"aggregator": agg},
        environment={},
        started_at="",
        finished_at="",
        metrics={"s/score": {"value": final}},
        extra={"checkpoint_evals": [{"step": s, "metrics": {"s/score": v}} for s, v in ckpts]},
        primary_metric="s/score",
    )
    write_record(tmp_path / "runs" / "abl" / name, rec, [{"id": "e0"}])


@pytest.mark.parametrize(
    "agg, label, k",
    [
        ({"name": "rvpo", "risk": 0.0, "schedule": "constant"}, "rvpo (k=0)", 0.0),
        ({"name": "rvpo", "risk": 5.0}, "rvpo (k=5)", 5.0),
        ({"name": "hard_min"}, "hard min (k=∞)", math.inf),
        (
            {"name": "rvpo", "risk_start": 0.5, "risk_end": 2.0, "schedule": "linear"},
            "rvpo (k 0.5→2, linear)",
            None,
        ),
        ({"name": "variance_penalty", "beta": 0.5}, "variance penalty (β=0.5)", None),
        ({"name": "rvpo", "risk": 1.0, "saturated": "drop"}, "rvpo (k=1, saturated dropped)", None),
        ({"name": "rvpo", "risk": 1.0, "saturated": "keep"}, "rvpo (k=1)", 1.0),
    ],
)
def test_variants(agg, label, k):
    assert ablation.variant(agg)[:2] == (label, k)


def test_other_methods_are_not_ablation_settings():
    assert ablation.variant({"name": "gdpo"}) is None and ablation.variant({"name": "grpo"}) is None
    with pytest.raises(ValueError, match="not a setting of the risk ablation"):
        setting_label({"name": "gdpo"})


def test_unset_options_take_the_aggregators_own_defaults():
    """A record that leaves risk or beta unset (None) is the setting the aggregator trained with."""
    k = get_aggregator("rvpo").risk
    assert ablation.variant({"name": "rvpo", "risk": None, "schedule": "constant"}) == (
        f"rvpo (k={k:g})",
        k,
        0,
    )
    beta = get_aggregator("variance_penalty").beta
    assert ablation.variant({"name": "variance_penalty", "beta": None})[0] == f"variance penalty (β={beta:g})"


def test_best_and_final_per_setting_and_files(tmp_path):
    _record(tmp_path, "a0", {"name": "rvpo", "risk": 5.0}, 0, 0.2, [(50, 0.6), (100, 0.4)])
    _record(tmp_path, "a1", {"name": "rvpo", "risk": 5.0}, 1, 0.3, [(50, 0.5), (100, 0.7)])
    _record(tmp_path, "b0", {"name": "hard_min"}, 0, 0.9, [(50, 0.1)])  # final is the best
    _record(tmp_path, "g0", {"name": "gdpo"}, 0, 0.5, [])
    runs, metric = ablation.load(tmp_path, "abl", None)
    assert metric == "s/score" and len(runs) == 3
    tab = ablation.table(runs).set_index("setting")
    assert list(tab.index) == ["rvpo (k=5)", "hard min (k=∞)"]
    assert tab.loc["rvpo (k=5)", "best"] == pytest.approx(0.65)
    assert tab.loc["rvpo (k=5)", "final"] == pytest.approx(0.25)
    assert tab.loc["rvpo (k=5)", "best step (per seed)"] == "50 100"
    assert tab.loc["hard min (k=∞)", "best"] == pytest.approx(0.9)
    assert (
        ablation.main(["--experiment", "abl", "--results-dir", str(tmp_path), "--out", str(tmp_path / "o")])
        == 0
    )
    for f in [
        "tables/abl_ablation.csv",
        "tables/abl_ablation.md",
        "figures/abl_ablation/score_vs_k.png",
        "figures/abl_ablation/checkpoints.png",
    ]:
        assert (tmp_path / "o" / f).stat().st_size > 0


def test_best_is_chosen_on_the_validation_split_when_runs_have_one(tmp_path):
    """Test values 0.6 @50, 0.4 @100; validation prefers step 100: best is 0.4, not the test peak."""
    rec = RunRecord(
        experiment="abl",
        run_id="v0",
        config_hash="v0",
        seed=0,
        config={"aggregator": {"name": "rvpo", "risk": 5.0}},
        environment={},
        started_at="",
        finished_at="",
        metrics={"s/score": {"value": 0.3}},
        extra={
            "checkpoint_evals": [
                {"step": 50, "metrics": {"s/score": 0.6}, "validation": {"validation/reward": 0.2}},
                {"step": 100, "metrics": {"s/score": 0.4}, "validation": {"validation/reward": 0.5}},
            ]
        },
        primary_metric="s/score",
    )
    write_record(tmp_path / "runs" / "abl" / "v0", rec, [{"id": "e0"}])
    _record(tmp_path, "a1", {"name": "hard_min"}, 0, 0.3, [(50, 0.6), (100, 0.4)])  # no validation split
    runs, _ = ablation.load(tmp_path, "abl", None)
    tab = ablation.table(runs).set_index("setting")
    assert tab.loc["rvpo (k=5)", "best"] == pytest.approx(0.4)
    assert tab.loc["rvpo (k=5)", "best step (per seed)"] == "100"
    assert tab.loc["rvpo (k=5)", "best selected on"] == "validation split"
    assert tab.loc["hard min (k=∞)", "best"] == pytest.approx(0.6)
    assert tab.loc["hard min (k=∞)", "best selected on"] == "test set (optimistic)"


def test_seeds_keep_the_ablation_to_its_own_sweep(tmp_path, capsys):
    for seed in range(5):  # seeds 3 and 4 of a shared setting come from another sweep (the benchmark)
        _record(tmp_path, f"a{seed}", {"name": "hard_min"}, seed, 0.1 * seed, [])
    runs, _ = ablation.load(tmp_path, "abl", None, seeds=[0, 1, 2])
    assert sorted(runs.seed) == [0, 1, 2]
    assert ablation.table(runs).set_index("setting").loc["hard min (k=∞)", "final"] == pytest.approx(0.1)
    assert len(ablation.load(tmp_path, "abl", None)[0]) == 5
    args = ["--experiment", "abl", "--results-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert ablation.main([*args, "--seeds", "0,x"]) == 2
    assert "--seeds '0,x': expected comma-separated integers" in capsys.readouterr().err


def test_a_rerun_showing_the_same_table_rewrites_none_of_its_files(tmp_path, capsys):
    _record(tmp_path, "a0", {"name": "rvpo", "risk": 5.0}, 0, 0.2, [(50, 0.6), (100, 0.4)])
    _record(tmp_path, "b0", {"name": "hard_min"}, 0, 0.9, [(50, 0.1)])
    args = ["--experiment", "abl", "--results-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert ablation.main(args) == 0
    csv = tmp_path / "o" / "tables" / "abl_ablation.csv"
    csv.write_text(csv.read_text().replace("0.6000", "0.6000001"))  # digits the table does not show
    files = {p: p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert ablation.main([*args, "--seeds", "0"]) == 0  # another command line, the same table
    assert "the same table as written; no file rewritten" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in files} == files
    _record(tmp_path, "b1", {"name": "hard_min"}, 1, 0.5, [])  # a new seed: other rows
    assert ablation.main(args) == 0
    assert "0.6000001" not in csv.read_text()
