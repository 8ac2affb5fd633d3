"""The benchmark leaderboard and its interval estimates (IQM, stratified bootstrap, P(X > Y), profiles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rvpo_repro.analysis.leaderboard import ALL, build, complete_matrix, leaderboard
from rvpo_repro.analysis.stats import intervals
from rvpo_repro.config import ConfigError

SNAPSHOT = Path(__file__).parents[1] / "results" / "snapshot"


def test_iqm_and_mean_follow_their_definitions():
    x = np.arange(1.0, 9.0).reshape(4, 2)  # eight entries 1..8: the middle half is 3, 4, 5, 6
    assert intervals.iqm(x) == pytest.approx(4.5)
    assert intervals.mean_score(x) == pytest.approx(4.5)
    skewed = np.array([[0.0], [0.1], [0.2], [0.3], [100.0]])
    assert intervals.iqm(skewed) < 1.0 < intervals.mean_score(skewed)  # robust to the outlying run
    stack = np.stack([x, skewed[:4, :1].repeat(2, 1)])  # (2, runs, tasks): one value per matrix
    np.testing.assert_allclose(intervals.iqm(stack), [intervals.iqm(x), intervals.iqm(stack[1])])
    with pytest.raises(ValueError, match=r"scores of shape \(0, 1\) are invalid"):
        intervals.iqm(np.array([]))


def test_the_bootstrap_resamples_each_task_on_its_own():
    """Row sums are constant here: resampling whole rows would give one value; strata do not."""
    a = np.array([0.0, 0.25, 0.75, 1.0])
    x = np.stack([a, a[::-1]], axis=1)
    est, low, high = intervals.stratified_bootstrap_ci(x, intervals.mean_score, n_boot=500, seed=1)
    assert est == pytest.approx(x.mean()) and low < est < high
    assert intervals.stratified_bootstrap_ci(x, intervals.mean_score, n_boot=500, seed=1) == (
        est,
        low,
        high,
    )  # seeded
    const = np.full((5, 2), 0.3)
    assert intervals.stratified_bootstrap_ci(const, intervals.iqm, n_boot=200) == pytest.approx(
        (0.3, 0.3, 0.3)
    )


def test_probability_of_improvement_counts_pairs_and_ties():
    assert intervals.probability_of_improvement(
        [np.array([1.0, 2.0])], [np.array([0.0, 2.0])]
    ) == pytest.approx(0.625)
    x, y = [np.array([0.1, 0.5, 0.9]), np.array([0.2])], [np.array([0.4, 0.6]), np.array([0.2, 0.3])]
    assert intervals.probability_of_improvement(x, y) + intervals.probability_of_improvement(
        y, x
    ) == pytest.approx(1.0)
    p, low, high = intervals.probability_of_improvement_ci(x, y, n_boot=300)
    assert low <= p <= high
    with pytest.raises(ValueError, match="x has 2 tasks and y 1"):
        intervals.probability_of_improvement(x, y[:1])


def test_performance_profile_is_the_share_above_each_threshold():
    x = np.array([[0.2, 0.8], [0.5, 0.9]])
    np.testing.assert_allclose(
        intervals.performance_profile(x, np.array([0.0, 0.5, 0.85, 1.0])), [1.0, 0.5, 0.25, 0.0]
    )


def _scores():
    rows = []
    for task, shift in (("a", 0.0), ("b", 0.3)):
        for method, level in (("rvpo (k=1)", 0.6), ("gdpo", 0.4), ("new", 0.5)):
            for seed in range(4 if method != "new" or task == "a" else 2):
                rows.append({"task": task, "method": method, "aggregator": method.split()[0], "seed": seed,
                             "metric": "m", "score": level + shift + 0.01 * seed,
                             "rewards/bottleneck": level / 2})  # fmt: skip
    return pd.DataFrame(rows)


def test_leaderboard_rows_per_task_and_over_tasks():
    df = _scores()
    tab = leaderboard(df)
    assert list(dict.fromkeys(tab.task)) == ["a", "b", ALL]
    row = tab[(tab.task == "a") & (tab.method == "gdpo")].iloc[0]
    assert row["mean"] == pytest.approx(df[(df.task == "a") & (df.method == "gdpo")].score.mean())
    assert row.p_improve_vs_rvpo == 0.0 and np.isnan(row.p_improve_vs_gdpo)  # itself: no comparison
    assert row["channel/bottleneck"] == pytest.approx(0.2)
    new_all = tab[(tab.task == ALL) & (tab.method == "new")].iloc[0]
    assert new_all.seeds_in_matrix == 2 and new_all.runs == 6  # only seeds finished on both tasks pool
    assert complete_matrix(df, "new", ["a", "b"]).shape == (2, 2)
    top = tab[tab.task == ALL].iloc[0]
    assert top.method == "rvpo (k=1)" and top.p_improve_vs_gdpo == 1.0  # sorted by IQM, best first


@pytest.mark.skipif(not (SNAPSHOT / "runs" / "toy").is_dir(), reason="no committed snapshot")
def test_build_on_the_committed_toy_snapshot(tmp_path):
    paths = build(["toy"], SNAPSHOT, tmp_path, status="snapshot")
    tab = pd.read_csv(paths["csv"])
    toy = pd.read_csv(SNAPSHOT / "tables" / "toy.csv")  # the committed toy report is the snapshot's
    ref = toy[toy.metric == "rewards/all_constraints"].set_index("method")["mean"]
    for _, r in tab[tab.task == "toy"].iterrows():
        assert r["mean"] == pytest.approx(ref[r.method])
    prov = json.loads(paths["provenance"].read_text())
    assert (
        len(prov["runs"]) == len(tab[tab.task == "toy"].runs.sum() * [0]) and prov["runs"][0]["config_hash"]
    )
    assert "Aggregator benchmark" in paths["page"].read_text()
    assert json.loads(paths["wandb"].read_text())["runset"]["groupby"] == ["aggregator.name"]
    assert (tmp_path / "figures" / "benchmark" / "profiles.png").stat().st_size > 1000


@pytest.mark.skipif(not (SNAPSHOT / "runs" / "toy").is_dir(), reason="no committed snapshot")
def test_aggregators_keep_other_runs_of_the_tasks_out_of_the_ranking(tmp_path):
    everything = pd.read_csv(build(["toy"], SNAPSHOT, tmp_path / "all")["csv"])
    assert {"gdpo", "grpo"} <= set(everything.method)
    paths = build(["toy"], SNAPSHOT, tmp_path / "two", aggregators=["rvpo", "gdpo"])
    tab = pd.read_csv(paths["csv"])
    assert set(tab.method) == {"rvpo (k=1)", "gdpo"}
    prov = json.loads(paths["provenance"].read_text())["runs"]
    assert prov and all("-grpo-" not in r["run_id"] for r in prov)  # provenance lists only the ranked runs
    with pytest.raises(ConfigError, match=r"--aggregators: no aggregator config \[.no_such.\]"):
        build(["toy"], SNAPSHOT, tmp_path / "bad", aggregators=["no_such"])


@pytest.mark.skipif(not (SNAPSHOT / "runs" / "toy").is_dir(), reason="no committed snapshot")
def test_a_rerun_with_the_same_leaderboard_keeps_its_files_and_provenance(tmp_path):
    paths = build(["toy"], SNAPSHOT, tmp_path, status="snapshot")
    prov = json.loads(paths["provenance"].read_text())
    for run in prov["runs"]:  # as if the committed leaderboard came from runs at another commit
        run["git_commit"] = "f" * 40
    paths["provenance"].write_text(json.dumps(prov))
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert build(["toy"], SNAPSHOT, tmp_path, status="snapshot") == {}
    assert {p: p.read_bytes() for p in files} == files
    # other rows (a status line is not a row; one method fewer is)
    assert build(["toy"], SNAPSHOT, tmp_path, aggregators=["rvpo", "gdpo"])["md"] == paths["md"]
    assert "f" * 40 not in paths["provenance"].read_text()
