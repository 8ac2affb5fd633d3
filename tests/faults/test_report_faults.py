"""Report-side faults: what differs is never pooled, what is missing is named, CIs keep their bounds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_report import aggregator_cfg, write_runs  # noqa: E402

from rvpo_repro.analysis import report  # noqa: E402
from rvpo_repro.analysis.report import build_report  # noqa: E402
from rvpo_repro.analysis.runs import ConfigConflictError, MissingMetricError, load_runs  # noqa: E402
from rvpo_repro.analysis.stats.paired import paired_permutation  # noqa: E402
from rvpo_repro.analysis.stats.seeds import hierarchical_bootstrap  # noqa: E402
from rvpo_repro.analysis.stats.table_rule import mean_ci  # noqa: E402
from rvpo_repro.analysis.table import BaselineError  # noqa: E402
from rvpo_repro.run.record import RESULT_FILE  # noqa: E402

pytestmark = pytest.mark.faults


def test_record_missing_a_metric_names_the_file_and_the_metric(tmp_path, capsys):
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False)
    victim = sorted((tmp_path / "runs" / "toy").glob("*rvpo-s1*"))[0] / "result.json"
    data = json.loads(victim.read_text())
    del data["metrics"]["rewards/digit"]
    victim.write_text(json.dumps(data))
    with pytest.raises(MissingMetricError, match=r"result\.json: metric 'rewards/digit' missing"):
        load_runs(tmp_path, "toy")
    assert (
        report.main(["--experiment", "toy", "--results-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    )  # a refused record: exit 2
    err = capsys.readouterr().err
    assert str(victim) in err and "rewards/digit" in err and "KeyError" not in err


def test_metric_asked_for_but_not_recorded_is_named(tmp_path):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0,), with_history=False)
    with pytest.raises(MissingMetricError, match="metric 'rewards/nope' missing from .*result.json"):
        report.build_report("toy", tmp_path, tmp_path, metric="rewards/nope", baseline="gdpo", snapshot=None)


def test_two_configs_under_one_label_are_refused_naming_both_runs(tmp_path):
    write_runs(
        tmp_path,
        "toy",
        ["gdpo", "rvpo"],
        seeds=(0,),
        with_history=False,
        extra_config={"trainer": {"max_steps": 10}},
    )
    write_runs(
        tmp_path, "toy", ["rvpo"], seeds=(0,), with_history=False, extra_config={"trainer": {"max_steps": 5}}
    )
    ids = sorted(p.name for p in (tmp_path / "runs" / "toy").glob("*rvpo*"))
    assert len(ids) == 2
    with pytest.raises(ConfigConflictError) as e:
        load_runs(tmp_path, "toy")
    assert all(i in str(e.value) for i in ids) and "trainer.max_steps" in str(e.value)
    runs = load_runs(tmp_path, "toy", split_configs=True)  # the flag: one row per config
    assert sorted(set(runs.df.method)) == ["gdpo", "rvpo", "rvpo [trainer.max_steps=5]"]


def test_seeds_of_one_config_are_one_group(tmp_path):
    write_runs(
        tmp_path, "toy", ["rvpo"], seeds=(0, 1, 2), with_history=False
    )  # task.data_seed follows the seed
    runs = load_runs(tmp_path, "toy")
    assert runs.df.config_key.nunique() == 1 and runs.df.config_hash.nunique() == 3


def test_a_seed_key_fixed_at_one_value_is_a_setting_not_the_seed(tmp_path):
    # as rvpo-train records it: task.data_seed stays 0 whatever the run's seed
    write_runs(
        tmp_path, "toy", ["rvpo"], seeds=(0, 1, 2), with_history=False, extra_config={"eval": {"seed": 0}}
    )
    assert load_runs(tmp_path, "toy").df.config_key.nunique() == 1


def test_unfinished_failed_and_missing_seeds_are_listed(tmp_path):
    write_runs(tmp_path, "toy", ["gdpo"], seeds=(0, 1, 2), with_history=False)
    write_runs(tmp_path, "toy", ["rvpo"], seeds=(0,), with_history=False)
    root = tmp_path / "runs" / "toy"
    (root / "tiny-toy_constraints-rvpo-s1-0000aaaa" / "checkpoints").mkdir(parents=True)  # killed mid-run
    (root / "tiny-toy_constraints-rvpo-s2-0000bbbb").mkdir()
    (root / "tiny-toy_constraints-rvpo-s2-0000bbbb" / "FAILED").write_text("CUDA out of memory")
    rep = report.build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None)
    md = rep.tables["md"].read_text()
    assert "unfinished: tiny-toy_constraints-rvpo-s1-0000aaaa (no result.json)" in md
    assert "failed: tiny-toy_constraints-rvpo-s2-0000bbbb (CUDA out of memory)" in md
    assert "missing seeds of tiny / toy_constraints / rvpo: 1, 2" in md
    assert "rvpo × 1 seed" in md
    assert "failed" in rep.page.read_text()


def test_ci_of_a_bounded_metric_stays_in_bounds(tmp_path):
    values = np.array([0.99, 0.80, 1.0])  # a t-interval over these seeds reaches above 1
    low, high, how = mean_ci(values, None, (0.0, 1.0), seed=0)
    assert 0.0 <= low <= high <= 1.0 and how == "t over seeds, clipped to [0, 1]"
    low, high, how = mean_ci(values, None, None, seed=0)
    assert high > 1.0 and how == "t over seeds"  # unbounded metric: untouched
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False)
    for f in (tmp_path / "runs" / "toy").glob("*/result.json"):  # a channel with a declared range
        data = json.loads(f.read_text())
        data["metrics"]["rewards/digit"] |= {"low": 0.0, "high": 1.0}
        f.write_text(json.dumps(data))
    t = report.build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None).table
    rates = t[t.metric.isin(["rewards/all_constraints", "rewards/digit", "rewards/bottleneck"])]
    assert (rates.ci_low >= 0).all() and (rates.ci_high <= 1).all()
    assert rates.ci_method.str.contains("clipped").any()  # 2 seeds: wide t-intervals were clipped, and say so
    assert (rates.ci_method.str.count("clipped") <= 1).all(), rates.ci_method.tolist()  # said once
    assert (rates.delta_ci_low.fillna(0) >= -1).all() and (rates.delta_ci_high.fillna(0) <= 1).all()


def test_a_bottleneck_row_clipped_like_its_channel_says_so_once(tmp_path):
    # no per-example scores: the values set below would disagree with them (a refused record)
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False, with_examples=False)
    # digit is every run's bottleneck, near 0: its t-interval over 2 seeds dips below 0
    for i, f in enumerate(sorted((tmp_path / "runs" / "toy").glob("*/result.json"))):
        data = json.loads(f.read_text())
        value = (0.01, 0.2)[i % 2]
        data["metrics"]["rewards/digit"] |= {"value": value, "low": 0.0, "high": 1.0}
        data["metrics"]["rewards/bottleneck"] |= {"value": value, "channel": "digit", "low": 0.0, "high": 1.0}
        f.write_text(json.dumps(data))
    t = report.build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None).table.set_index(
        ["method", "metric"]
    )
    digit, neck = t.loc[("rvpo", "rewards/digit")], t.loc[("rvpo", "rewards/bottleneck")]
    assert "same test as rewards/digit" in neck.note
    assert digit.ci_method == "t over seeds, clipped to [0, 1]" and digit.ci_low == 0.0
    assert neck.ci_low == 0.0
    assert neck.ci_method == "t over seeds of rewards/digit, rescaled, clipped to [0, 1]"


def test_baseline_naming_an_aggregator_with_variants_is_pinned(tmp_path):
    mean = {"name": "gdpo", "reduce": "mean"}
    write_runs(tmp_path, "toy", ["gdpo", mean, "rvpo"], seeds=(0, 1), with_history=False)
    t = build_report("toy", tmp_path, tmp_path, baseline="gdpo", snapshot=None).table
    assert set(t[t.test == "baseline"].method) == {"gdpo"}  # the default variant (reduce: sum)
    t = build_report("toy", tmp_path, tmp_path, baseline="gdpo (mean)", snapshot=None).table
    assert set(t[t.test == "baseline"].method) == {"gdpo (mean)"}  # an exact label wins


def test_baseline_naming_a_risk_ablation_without_default_is_an_error(tmp_path):
    write_runs(
        tmp_path,
        "toy",
        [aggregator_cfg("rvpo", 1.0), aggregator_cfg("rvpo", 5.0)],
        seeds=(0, 1),
        with_history=False,
    )
    with pytest.raises(BaselineError, match=r"'rvpo' names 2 variants here \(rvpo \(k=1\), rvpo \(k=5\)\)"):
        build_report("toy", tmp_path, tmp_path, baseline="rvpo", snapshot=None)
    t = build_report("toy", tmp_path, tmp_path, baseline="rvpo (k=1)", snapshot=None).table
    assert set(t[t.test == "baseline"].method) == {"rvpo (k=1)"}


def test_permutation_p_value_keeps_its_add_one():
    # every random sign flip gives |T*| < |T_obs| when all 40 differences are +1: hits = 0
    r = paired_permutation(np.ones(40), np.zeros(40), n_resamples=999, seed=0)
    assert r.p_value == pytest.approx(1 / (1 + 999))
    r = hierarchical_bootstrap([np.ones(20) + 0.1 * i for i in range(3)], [np.zeros(20)] * 3, n_resamples=999)
    assert r.p_value == pytest.approx(2 / (1 + 999))  # bootstrap: 2 (1 + 0) / (1 + B)


def test_snapshot_fallback_says_so(tmp_path):
    snap = write_runs(tmp_path / "snapshot", "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False)
    rep = report.build_report("toy", tmp_path / "empty", tmp_path / "out", baseline="gdpo", snapshot=snap)
    assert rep.source == snap and rep.tables["md"].is_relative_to(snap)
    assert (
        "committed snapshot" in rep.tables["md"].read_text() and "committed snapshot" in rep.page.read_text()
    )
    assert not (tmp_path / "out").exists()


def test_record_writer_and_reader_agree_on_the_failed_marker(tmp_path):
    d = tmp_path / "runs" / "toy" / "tiny-toy_constraints-gdpo-s0-12345678"
    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({"status": "failed", "reason": "TypeError in reward"}))
    from rvpo_repro.analysis.runs import run_state

    assert run_state(d) == ("failed", "TypeError in reward")
    assert RESULT_FILE == "result.json"


def _set_metric(run_dir: Path, metric: str, value) -> Path:
    f = run_dir / "result.json"
    data = json.loads(f.read_text())
    data["metrics"][metric]["value"] = value
    f.write_text(json.dumps(data))
    return f


@pytest.mark.parametrize("how_many", [1, 3])
def test_a_null_metric_keeps_its_row_and_names_the_run(tmp_path, how_many):
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1, 2), with_history=False)
    victims = sorted((tmp_path / "runs" / "toy").glob("*gdpo-s*"))[:how_many]
    for v in victims:
        _set_metric(v, "rewards/digit", None)
    rep = report.build_report("toy", tmp_path, tmp_path, baseline="rvpo", snapshot=None)
    row = rep.table.set_index(["method", "metric"]).loc[("gdpo", "rewards/digit")]
    assert row.seeds == 3 - how_many and f"no value in {how_many} of 3 runs ({victims[0].name}" in row.note
    md = rep.tables["md"].read_text()
    assert f"no value in {how_many} of 3 runs" in md and victims[0].name in rep.page.read_text()


def test_a_record_disagreeing_with_its_examples_stops_before_writing_and_names_the_file(tmp_path, capsys):
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False)
    victim = _set_metric(sorted((tmp_path / "runs" / "toy").glob("*rvpo-s1*"))[0], "rewards/digit", 0.01)
    out = tmp_path / "out"
    assert report.main(["--experiment", "toy", "--results-dir", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{victim}: metric 'rewards/digit' = 0.01 but its examples" in err and "column 'digit'" in err
    assert err.count("\n") == 1 and not out.exists()  # one line, and no table, figure or page written


def _edit(record: Path, edit) -> Path:
    data = json.loads(record.read_text())
    edit(data)
    record.write_text(json.dumps(data))
    return record


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda d: d["metrics"]["rewards/digit"].update(value="0.5"),
            "'metrics.rewards/digit.value' = '0.5' (str)",
        ),
        (
            lambda d: d["metrics"]["rewards/digit"].update(stderr=[0.1]),
            "'metrics.rewards/digit.stderr' = [0.1]",
        ),
        (
            lambda d: d["metrics"]["rewards/digit"].update(value=True),
            "'metrics.rewards/digit.value' = True (bool)",
        ),
        (lambda d: d.update(schema_version=99), "'schema_version' = 99: this reader knows version(s) 1"),
        (lambda d: d.update(schema_version="1"), "'schema_version' = '1'"),
        (
            lambda d: d.update(config_hash="0123456789ab"),
            "'config_hash' = '0123456789ab' but the recorded config",
        ),
        (lambda d: d["config"]["aggregator"].update(risk=9.0), "'config_hash' ="),
        (lambda d: d["config"]["aggregator"].update(name="gdpo"), "'config_hash' ="),
        (lambda d: d.update(run_id=d["run_id"].replace("-s1-", "-s7-")), "'run_id' ="),
    ],
    ids=[
        "value-str",
        "stderr-list",
        "value-bool",
        "schema-99",
        "schema-str",
        "hash-edited",
        "aggregator-edited",
        "aggregator-renamed",
        "run-id-edited",
    ],  # fmt: skip
)
def test_a_record_read_unfaithfully_is_refused_naming_file_and_field(tmp_path, capsys, edit, field):
    write_runs(tmp_path, "toy", ["gdpo", "rvpo"], seeds=(0, 1), with_history=False, with_examples=False)
    victim = _edit(sorted((tmp_path / "runs" / "toy").glob("*rvpo-s1*"))[0] / "result.json", edit)
    out = tmp_path / "out"
    assert report.main(["--experiment", "toy", "--results-dir", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{victim}: field {field}" in err, err
    assert err.count("\n") == 1 and not out.exists()  # one line; no table that lacks the run
    from rvpo_repro.analysis import leaderboard

    assert leaderboard.main(["--experiment", "toy", "--results-dir", str(tmp_path), "--out", str(out)]) == 2
    assert f"{victim}: field {field}" in capsys.readouterr().err


def test_untouched_records_and_their_resolved_paths_are_read(tmp_path):
    """The recorded config is resolved (`${paths.cache_dir}/judge/x` as ./.cache/judge/x) while its
    hash was taken before resolving: every record of the committed snapshot still reads."""
    from rvpo_repro.analysis.runs import read_record

    snapshot = Path(report.SNAPSHOT) / "runs"
    dirs = sorted(p for p in snapshot.glob("*/*") if (p / RESULT_FILE).is_file())
    if not dirs:
        pytest.skip("no committed snapshot")
    for d in dirs:
        assert read_record(d).run_id == d.name
