"""Credit profiles (rvpo_repro.analysis.credit) against groups computed by hand with numpy.

The two reference groups (G = 8 rollouts, K = 5 binary items; rows = rollouts, columns = items,
item 0 the hard one):

    MEETS (rollout 0 alone meets the hard item and every easy item; easy item j is missed by rollout j):
        r0 1 1 1 1 1     r1 0 0 1 1 1     r2 0 1 0 1 1     r3 0 1 1 0 1     r4 0 1 1 1 0     r5-r7 0 1 1 1 1
    SLIPS (as MEETS, but rollout 0 misses easy item 1, which every other rollout meets):
        r0 1 0 1 1 1     r1 0 1 1 1 1     r2 0 1 0 1 1     r3 0 1 1 0 1     r4 0 1 1 1 0     r5-r7 0 1 1 1 1

Rollout 0's z-scores (Bessel std + 1e-4): MEETS hard 2.47, easy 0.35 each -> 0.78 under gdpo (mean),
0.55 under rvpo (k=1); SLIPS hard 2.47, slipped -2.47, easy 0.35 x 3 -> +0.21, -1.03, -2.47 (hard min).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rvpo_repro.analysis import credit, page

EPS = 1e-4
MEETS = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 1, 0, 1, 1], [0, 1, 1, 0, 1], [0, 1, 1, 1, 0],
                  [0, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 1, 1, 1, 1]], dtype=float)  # fmt: skip
SLIPS = MEETS.copy()
SLIPS[:, 1] = 1.0
SLIPS[0, 1] = 0.0
CONFIGS = ["gdpo", "gdpo_mean", "grpo", "rvpo", "rvpo_annealed", "rvpo_k5", "hard_min", "variance_penalty"]


def z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0, ddof=1) + EPS)


def softmin(row: np.ndarray, k: float) -> float:
    return float(-np.log(np.mean(np.exp(-k * row))) / k)


def by_hand(x: np.ndarray) -> dict[str, float]:
    """Rollout 0's advantage per (config, phase), from the methods' formulas."""
    zr = z(x)[0]
    s = x.sum(1)
    return {
        ("gdpo", ""): zr.sum(),
        ("gdpo_mean", ""): zr.mean(),
        ("grpo", ""): (s[0] - s.mean()) / (s.std(ddof=1) + EPS),
        ("rvpo", ""): softmin(zr, 1.0),
        ("rvpo_annealed", "start"): softmin(zr, 0.5),
        ("rvpo_annealed", "end"): softmin(zr, 2.0),
        ("rvpo_k5", ""): softmin(zr, 5.0),
        ("hard_min", ""): zr.min(),
        ("variance_penalty", ""): zr.mean() - 0.5 * zr.var(),
    }


@pytest.fixture(scope="module")
def df():
    return credit.profiles(credit.methods(CONFIGS))


def test_the_groups_are_the_stated_ones():
    assert np.array_equal(credit.meets(8, 5, 1).numpy(), MEETS)
    assert np.array_equal(credit.slips(8, 5, 1).numpy(), SLIPS)
    mis = credit.misses(8, 5, 3).numpy()
    assert mis[:, 0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0] and np.array_equal(mis[:, 1:], MEETS[:, 1:])
    # past G - 1 easy channels the missers wrap round: channel 8 is missed by rollout 1 again
    assert credit.meets(8, 9, 1).numpy()[:, 8].tolist() == [1, 0, 1, 1, 1, 1, 1, 1]


def test_the_stated_values():
    meets, slips = by_hand(MEETS), by_hand(SLIPS)
    assert round(meets["gdpo_mean", ""], 2) == 0.78 and round(meets["rvpo", ""], 2) == 0.55
    assert round(slips["gdpo_mean", ""], 2) == 0.21 and round(slips["rvpo", ""], 2) == -1.03
    assert round(slips["hard_min", ""], 2) == -2.47


@pytest.mark.parametrize("group,x", [("meets", MEETS), ("slips", SLIPS)])
def test_reference_groups_match_the_hand_computation(df, group, x):
    ref = credit.reference_groups(df).set_index("config")
    for (config, phase), want in by_hand(x).items():
        got = df[(df.quantity == f"{group}_vs_m") & (df.x == 1) & (df.config == config) & (df.phase == phase)]
        assert len(got) == 1, (config, phase)
        assert got.advantage.iloc[0] == pytest.approx(want, abs=1e-9), (config, phase)
    rv = ref.loc["rvpo"]
    assert rv[group] == pytest.approx(by_hand(x)["rvpo", ""], abs=1e-9)


def test_profile_over_m_and_k_matches_the_hand_computation(df):
    for m in range(1, 8):
        x = MEETS.copy()
        x[:, 0] = 0.0
        x[:m, 0] = 1.0
        miss = x.copy()
        miss[:, 0] = 0.0
        miss[1 : m + 1, 0] = 1.0
        for group, rows in (("meets", x), ("misses", miss)):
            got = df[(df.quantity == f"{group}_vs_m") & (df.x == m)].set_index(["config", "phase"]).advantage
            for key, want in by_hand(rows).items():
                assert got[key] == pytest.approx(want, abs=1e-9), (group, m, key)
    # K = 17 channels: the 16 easy ones each missed by one of rollouts 1..7, in turn
    x = np.ones((8, 17))
    x[1:, 0] = 0.0
    for j in range(1, 17):
        x[1 + (j - 1) % 7, j] = 0.0
    got = df[(df.quantity == "meets_vs_K") & (df.x == 17)].set_index(["config", "phase"]).advantage
    for key, want in by_hand(x).items():
        assert got[key] == pytest.approx(want, abs=1e-9), key


def test_risk_axis_is_rvpo_at_each_k_and_the_other_methods_as_configured(df):
    zr = z(SLIPS)[0]
    t = df[df.quantity == "slips_vs_risk"]
    curve = t[t.phase == credit.RISK_CURVE].set_index("x").advantage
    assert sorted(curve.index) == sorted(credit.RISKS)
    assert curve[0.0] == pytest.approx(zr.mean(), abs=1e-9)  # k = 0 is the mean
    for k in credit.RISKS[1:]:
        assert curve[k] == pytest.approx(softmin(zr, k), abs=1e-9), k
    assert curve.is_monotonic_decreasing  # a slip weighs more as k grows
    end = t[(t.config == "rvpo_annealed") & (t.phase == "end")]
    assert end.x.tolist() == [2.0] and end.advantage.iloc[0] == pytest.approx(softmin(zr, 2.0), abs=1e-9)
    hard = t[t.config == "hard_min"]
    assert hard.k.tolist() == [math.inf] and hard.advantage.iloc[0] == pytest.approx(zr.min(), abs=1e-9)


def test_build_writes_table_figures_and_the_page_section(tmp_path):
    bench = tmp_path / "report" / "benchmark" / "index.html"
    bench.parent.mkdir(parents=True)
    bench.write_text("<html><body><h1>b</h1><h3>Command</h3><pre>x</pre></body></html>", encoding="utf-8")
    paths = credit.build(tmp_path, configs=["gdpo_mean", "rvpo"])
    md = paths["md"].read_text(encoding="utf-8")
    assert (
        "| gdpo_mean | gdpo (mean) | +0.78 | +0.21 |" in md and "| rvpo | rvpo (k=1) | +0.55 | -1.03 |" in md
    )
    figs = sorted(p.name for p in (tmp_path / "figures" / "credit").glob("*.png"))
    assert figs == sorted(f"{q}.png" for q in credit.QUANTITIES)
    text = bench.read_text(encoding="utf-8")
    assert text.index("<!-- credit -->") < text.index("<h3>Command</h3>")
    assert "../../figures/credit/slips_vs_m.png" in text and "<td>-1.03</td>" in text
    credit.build(tmp_path, configs=["hard_min"])  # a rebuild replaces the section, never adds one
    text = bench.read_text(encoding="utf-8")
    assert text.count("<!-- credit -->") == 1 and "<td>-2.47</td>" in text and "<td>-1.03</td>" not in text


def test_put_section_without_a_command_goes_before_the_body_end(tmp_path):
    p = tmp_path / "x.html"
    p.write_text("<html><body><p>a</p></body></html>", encoding="utf-8")
    page.put_section(p, "s", "<p>b</p>")
    assert (
        p.read_text(encoding="utf-8")
        == "<html><body><p>a</p><!-- s -->\n<p>b</p>\n<!-- /s -->\n</body></html>"
    )


@pytest.mark.parametrize("argv,needle", [(["--G", "1"], "--G 1"), (["--aggregators", "gdpo,nope"], "nope")])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    assert credit.main(["--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err and err.startswith("rvpo-credit: ")


def test_committed_table_is_what_the_code_computes_now():
    """results/tables/credit.{csv,md} (and the figures beside them) are rebuilt by `make credit`;
    a change to an aggregator or to the groups that leaves them stale fails here."""
    root = Path(__file__).resolve().parents[1] / "results" / "tables"
    df = credit.profiles(credit.methods())
    assert (root / "credit.md").read_text(encoding="utf-8") == credit.to_markdown(
        df, credit.GROUP_SIZE, credit.CHANNELS
    )
    assert (root / "credit.csv").read_text(encoding="utf-8") == credit.table_csv(df)
