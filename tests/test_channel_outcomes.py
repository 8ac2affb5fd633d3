"""Per-channel held-out rates over checkpoints, the early/late rule and the credit columns beside them."""

from __future__ import annotations

import json

import pytest

from rvpo_repro.analysis import channel_outcomes as co
from rvpo_repro.run.record import RunRecord, write_record

GDPO = {"name": "gdpo", "reduce": "mean"}
RVPO = {"name": "rvpo", "risk": 1.0, "schedule": "constant"}


def _record(root, name, agg, seed, ckpts):
    """ckpts: {step: {channel: rate}}; every record also carries an aggregate that is no channel."""
    rec = RunRecord(
        experiment="long", run_id=name, config_hash=name, seed=seed, config={"aggregator": agg},
        environment={}, started_at="", finished_at="", metrics={"s/score": {"value": 0.5}},
        extra={"checkpoint_evals": [
            {"step": s, "metrics": {**{f"rewards/{c}": v for c, v in rates.items()}, "rewards/bottleneck": 0.0,
                                    "s/score": s / 200 + seed / 10}}
            for s, rates in ckpts.items()]},
        primary_metric="s/score",
    )  # fmt: skip
    write_record(root / "runs" / "long" / name, rec, [{"id": "e0"}])


@pytest.fixture
def runs(tmp_path):
    # channel "easy": met early by every run; "hard": rare at step 50, learnt by gdpo (mean), not by rvpo
    _record(tmp_path, "g0", GDPO, 0, {50: {"easy": 0.8, "hard": 0.1}, 100: {"easy": 0.9, "hard": 0.5}})
    _record(tmp_path, "g1", GDPO, 1, {50: {"easy": 0.6, "hard": 0.0}, 100: {"easy": 0.7, "hard": 0.3}})
    _record(tmp_path, "r0", RVPO, 0, {50: {"easy": 0.9, "hard": 0.2}, 100: {"easy": 1.0, "hard": 0.1}})
    return tmp_path


def test_rule_pools_the_first_checkpoint_over_every_run(runs):
    rates, configs = co.checkpoint_rates(runs, "long")
    assert set(rates.channel) == {"easy", "hard"} and set(configs) == {"gdpo (mean)", "rvpo (k=1)"}
    cls = co.classify(rates)
    assert cls.loc["easy", "first_rate_pooled"] == pytest.approx((0.8 + 0.6 + 0.9) / 3)
    assert cls.loc["hard", "first_rate_pooled"] == pytest.approx(0.1)
    assert cls["class"].to_dict() == {"easy": "early", "hard": "late"}
    assert co.classify(rates, threshold=0.05)["class"].to_dict() == {"easy": "early", "hard": "early"}


def test_outcomes_per_method_and_credit_columns(runs):
    rates, configs = co.checkpoint_rates(runs, "long")
    tab = co.outcomes(rates, co.classify(rates), configs).set_index(["method", "channel"])
    g = tab.loc[("gdpo (mean)", "hard")]
    assert (g["first"], g["last"], g.gain, g.seeds) == pytest.approx((0.05, 0.4, 0.35, 2))
    assert tab.loc[("rvpo (k=1)", "late channels (mean)"), "last"] == pytest.approx(0.1)
    # the credit columns are the reference groups' values (hand-computed in tests/test_credit.py)
    assert g.credit_meets == pytest.approx(0.7778, abs=1e-3) and g.credit_slips == pytest.approx(
        0.2121, abs=1e-3
    )
    r = tab.loc[("rvpo (k=1)", "hard")]
    assert r.slips_over_meets == pytest.approx(r.credit_slips / r.credit_meets) and r.slips_over_meets < -1.8
    summ = co.summary(tab.reset_index())
    assert summ.method.tolist() == ["gdpo (mean)", "rvpo (k=1)"]  # sorted by the late channels' final rate
    assert summ.set_index("method").loc["gdpo (mean)", "late_gain"] == pytest.approx(0.35)


def test_build_writes_table_json_and_figures(runs):
    paths = co.build("long", runs, runs)
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["classes"]["hard"]["class"] == "late"
    assert doc["curves"]["gdpo (mean)"]["hard"] == {"steps": [50, 100], "mean": [0.05, 0.4],
                                                    "seeds": {"0": [0.1, 0.5], "1": [0.0, 0.3]}}  # fmt: skip
    assert doc["methods"]["rvpo (k=1)"]["late_final"] == pytest.approx(0.1)
    assert doc["primary"]["gdpo (mean)"]["s/score"] == {"steps": [50, 100], "mean": [0.3, 0.55],
                                                        "seeds": {"0": [0.25, 0.5], "1": [0.35, 0.6]}}  # fmt: skip
    md = paths["md"].read_text(encoding="utf-8")
    assert "| gdpo (mean) | 2 | 0.800 | 0.400 | +0.350 | +0.78 | +0.21 | +0.27 |" in md
    assert paths["held_out_by_channel"].is_file() and paths["profile_vs_late"].is_file()
    prov = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    assert [(r["run_id"], r["seed"]) for r in prov["runs"]] == [("g0", 0), ("g1", 1), ("r0", 0)]


def test_no_checkpoints_is_one_line_and_exit_2(tmp_path, capsys):
    assert co.main(["--experiment", "none", "--results-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "eval_checkpoints" in err


def test_benchmark_final_rates_beside_the_profiles(runs, tmp_path):
    bench = tmp_path / "benchmark.csv"
    bench.write_text(
        "task,method,seeds,channel/easy,channel/hard\n"
        "long,gdpo (mean),0 1 2,0.7,0.4\nlong,rvpo (k=1),0 1,0.9,0.1\nother,gdpo,0,0.0,0.0\n",
        encoding="utf-8",
    )
    rates, _ = co.checkpoint_rates(runs, "long")
    b = co.benchmark_summary(bench, "long", co.classify(rates)).set_index("method")
    assert b.loc["gdpo (mean)", ["seeds", "early_last", "late_last"]].tolist() == [3, 0.7, 0.4]
    assert b.loc["rvpo (k=1)", "credit_slips"] == pytest.approx(-1.0347, abs=1e-3)
    paths = co.build("long", runs, tmp_path / "out", bench, "long")
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["benchmark"]["methods"]["rvpo (k=1)"]["late_final"] == pytest.approx(0.1)
    assert "| rvpo (k=1) | 2 | 0.900 | 0.100 | +0.55 | -1.03 | -1.89 |" in paths["md"].read_text(
        encoding="utf-8"
    )
    bench.write_text("task,method,seeds,channel/easy\nlong,gdpo (mean),0,0.7\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no column \['channel/hard'\]"):
        co.benchmark_summary(bench, "long", co.classify(rates))
    bench.write_text("task,method,seeds,channel/easy,channel/hard\nlong,nope,0,0.7,0.1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'nope' matches no config"):
        co.benchmark_summary(bench, "long", co.classify(rates))
