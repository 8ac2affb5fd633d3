"""Every number the credit guide (docs/guides/credit.md) and the README's credit section quote is
the committed files' number.

A quoted number carries its source in an HTML comment right after it, which Markdown does not
show: `0.78<!-- credit|gdpo_mean|meets_vs_m|1 -->`. The test looks each source up in the
committed file, rounds it to the decimals quoted and compares. In the guide, a decimal number
outside code spans and without a source is an error: nothing is typed in by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "results" / "tables"
GUIDE = ROOT / "docs" / "guides" / "credit.md"
README_SECTION = "### Why the methods differ"
TAGGED = re.compile(r"([+\-−]?\d+(?:\.\d+)?)<!-- ([^>]*?) -->")
DECIMAL = re.compile(r"(?<![\w.])[+\-−]?\d+\.\d+(?![\w.])")


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(TABLES / name)


def _one(df: pd.DataFrame, key: str, **where) -> pd.Series:
    sel = df
    for col, val in where.items():
        sel = sel[sel[col].astype(str) == str(val)]
    assert len(sel) == 1, f"{key}: {len(sel)} rows match {where}"
    return sel.iloc[0]


def lookup(key: str) -> float:
    """The committed value a source key names (see the module docstring)."""
    kind, *f = key.split("|")
    if kind == "credit":  # credit|config|quantity|x[|phase]
        df = _csv("credit.csv").assign(phase=lambda d: d.phase.fillna(""))
        df = df[df.x.astype(float) == float(f[2])]
        return float(_one(df, key, config=f[0], quantity=f[1], phase=f[3] if len(f) > 3 else "").advantage)
    if kind in ("bench", "long", "rubric"):  # bench|task|method|column, long|method|metric|column
        if kind == "bench":
            return float(_one(_csv("benchmark.csv"), key, task=f[0], method=f[1])[f[2]])
        name = {"long": "rubric_toy_long.csv", "rubric": "rubric_toy.csv"}[kind]
        return float(_one(_csv(name), key, method=f[0], metric=f[1])[f[2]])
    if kind == "chan":  # chan|key|key|...: a path into the channel outcomes' JSON
        node = json.loads((TABLES / "rubric_toy_long_channels.json").read_text(encoding="utf-8"))
        for part in f:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return float(node)
    if kind == "chanrate":  # chanrate|method|channel|first or last
        return float(_one(_csv("rubric_toy_long_channels.csv"), key, method=f[0], channel=f[1])[f[2]])
    if kind == "paper":  # paper|track|model|variant|checkpoint
        entries = yaml.safe_load((ROOT / "results" / "paper_reference.yaml").read_text(encoding="utf-8"))[
            "entries"
        ]
        hits = [e for e in entries if (e["track"], e["model"], e["checkpoint"]) == (f[0], f[1], f[3])
                and f[2] in e["variants"] and "healthbench/score" in e["metrics"]]  # fmt: skip
        assert len(hits) == 1, f"{key}: {len(hits)} paper entries"
        return float(hits[0]["value"])
    raise AssertionError(f"{key}: unknown source kind {kind!r}")


def quoted(text: str) -> list[tuple[str, str]]:
    return TAGGED.findall(text)


def untagged(text: str) -> list[str]:
    """Decimal numbers outside code and without a source comment."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = TAGGED.sub("", text)
    stray = re.findall(r"<!--|-->", text)  # a source comment that lost its number, or its opening
    return DECIMAL.findall(text) + stray


def check(text: str) -> list[str]:
    errors = []
    for number, key in quoted(text):
        value = lookup(key.strip())
        decimals = len(number.split(".")[1]) if "." in number else 0
        if round(float(number.replace("−", "-")), decimals) != round(value, decimals):
            errors.append(f"{number} quoted, {round(value, decimals)} in the files ({key})")
    return errors


def readme_section() -> str | None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    if README_SECTION not in text:
        return None
    body = text.split(README_SECTION, 1)[1]
    return re.split(r"\n#{1,3} ", body, maxsplit=1)[0]


def test_the_guide_quotes_the_committed_numbers():
    text = GUIDE.read_text(encoding="utf-8")
    assert len(quoted(text)) >= 20, "the guide should quote its numbers with their sources"
    assert check(text) == []
    assert untagged(text) == []


def test_the_readme_section_quotes_the_committed_numbers():
    section = readme_section()
    if section is None:
        pytest.skip(f"README.md has no {README_SECTION!r} section")
    assert quoted(section) and check(section) == []


def test_the_checker_catches_a_wrong_and_an_untagged_number():
    right = "0.78<!-- credit|gdpo_mean|meets_vs_m|1 --> and −1.03<!-- credit|rvpo|slips_vs_m|1 -->"
    assert check(right) == [] and untagged(right) == []
    assert check("0.79<!-- credit|gdpo_mean|meets_vs_m|1 -->") != []
    assert check("-1.03<!-- credit|rvpo|slips_vs_m|1 -->") == []
    assert untagged("rvpo gets 0.55 here, `k=0.5` in code") == ["0.55"]
    assert untagged("items is credit|gdpo_mean|meets_vs_m|1 --> here") == ["-->"]
    with pytest.raises(AssertionError, match="unknown source kind"):
        lookup("nope|x")
