"""The README and the manual: short front door, every quoted result checked against the committed
results it comes from, and the manual's tooling pinned where `make docs` installs it.

(Every command these pages show is checked in tests/test_cli.py; `make docs` builds the manual
strictly, so a broken link or API reference fails CI.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
SNAPSHOT_TOY = RESULTS / "snapshot" / "tables" / "toy.csv"

# The pages that quote results, and the committed files each may quote from: the tables as shown
# (md) and as computed (csv), and the snapshot's run records (per-seed values).
TABLE = RESULTS / "tables"
TABLES = {
    "toy": [
        SNAPSHOT_TOY, SNAPSHOT_TOY.with_suffix(".md"),
        *sorted((RESULTS / "snapshot" / "runs" / "toy").glob("*/result.json")),
    ],
    "rubric": [TABLE / f"rubric_toy{s}" for s in (".csv", ".md", "_ablation.csv", "_ablation.md")],
    "benchmark": [TABLE / "benchmark.csv", TABLE / "benchmark.md"],
    # the credit profiles, the 600-step comparison's channels, and the paper's own numbers beside them
    "credit": [TABLE / "credit.csv", TABLE / "rubric_toy_long_channels.csv", RESULTS / "paper_reference.yaml"],
}  # fmt: skip
QUOTING_PAGES = {
    "README.md": TABLES["toy"] + TABLES["rubric"] + TABLES["benchmark"] + TABLES["credit"],
    "results/README.md": TABLES["toy"] + TABLES["rubric"] + TABLES["benchmark"],
    "docs/guides/cpu-experiments.md": TABLES["toy"] + TABLES["rubric"],
    "docs/guides/benchmark.md": TABLES["benchmark"],
}
# A result as these pages quote it: 2 or 3 decimals, not part of a version, an id or a word.
FIGURE = re.compile(r"(?<![\w.])\d+\.\d{2,3}(?![\d.])")


def prose(markdown: str) -> str:
    """`markdown` without fenced code, inline code and link targets (commands, config values, paths)."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text).replace("−", "-")


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _numbers_in(path: Path) -> list[float]:
    if path.suffix == ".json":  # a run record: its metrics
        return [m["value"] for m in json.loads(path.read_text())["metrics"].values()]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":  # the table's rows as shown
        text = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    return [float(x) for x in NUMBER.findall(text.replace("−", "-"))]


def _shown(md: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The rows of a report's markdown table as shown, keyed by (method, metric)."""
    lines = [ln for ln in md.read_text(encoding="utf-8").splitlines() if ln.startswith("|")]
    head, _, *cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in lines]
    # not strict: a later header ("p (examples | these seeds)") holds a "|" of its own
    rows = [dict(zip(head, row, strict=False)) for row in cells]
    return {(r["method"], r["metric"]): r for r in rows}


def headline_rows() -> list[str]:
    """The README's headline table, row by row, as the committed snapshot's table shows it."""
    rows, out = _shown(SNAPSHOT_TOY.with_suffix(".md")), []
    for method in ("rvpo (k=1)", "gdpo", "grpo"):
        ac, fl = rows[method, "rewards/all_constraints"], rows[method, "rewards/fluency"]
        delta = (
            "—" if ac["Δ vs rvpo"] == "—" else f"{ac['Δ vs rvpo']} {ac['Δ 95% CI']} (p Holm {ac['p (Holm)']})"
        )
        out.append(f"| {method} | {ac['mean']} {ac['95% CI']} | {delta} | {fl['mean']} {fl['95% CI']} |")
    return out


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for must in ("make reproduce", "make test", "RVPOTrainer", "task=custom", "docs/guides/", "@article"):
        assert must in text, must


def test_the_readme_headline_table_is_the_committed_snapshots():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for row in headline_rows():
        assert row in text, f"README's headline table lacks, or misquotes, the snapshot's row:\n{row}"


@pytest.mark.parametrize("page", sorted(QUOTING_PAGES))
def test_every_figure_a_page_quotes_stands_in_a_committed_results_file(page):
    sources = QUOTING_PAGES[page]
    assert all(p.is_file() for p in sources), [str(p) for p in sources if not p.is_file()]
    values = [abs(v) for p in sources for v in _numbers_in(p)]
    stray = []
    for m in FIGURE.finditer(prose((REPO / page).read_text(encoding="utf-8"))):
        quoted, decimals = float(m.group()), len(m.group().split(".")[1])
        if not any(round(v, decimals) == quoted for v in values):
            stray.append(m.group())
    tables = sorted({str(p.relative_to(REPO)) for p in sources if p.suffix != ".json"})
    assert not stray, f"{page} quotes {stray}, found in none of {tables} (nor the snapshot's records)"


def test_a_hand_copied_figure_that_went_stale_is_caught(tmp_path):
    """The check above on a page that quotes a number no table holds."""
    page = "| gdpo | 0.725 [0.638, 0.800] |"  # the table says 0.724
    values = [abs(v) for v in _numbers_in(SNAPSHOT_TOY.with_suffix(".md"))]
    found = [m.group() for m in FIGURE.finditer(prose(page))]
    assert found == ["0.725", "0.638", "0.800"]
    assert [q for q in found if not any(round(v, 3) == float(q) for v in values)] == ["0.725"]


def test_code_and_links_are_not_read_as_figures():
    text = "k `0.001` and ```\nrun 0.123\n``` [p](a/0.456.md) v5.17.0 arXiv 2605.05750 Qwen2.5 at 0.50"
    assert [m.group() for m in FIGURE.finditer(prose(text))] == ["0.50"]


def test_the_docs_extra_and_its_lock_agree():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    lock = dict(
        line.split("==")
        for line in (REPO / "requirements" / "docs-lock.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for req in extra:
        name = re.split(r"[\[=<>]", req)[0].lower()
        assert name in {k.lower() for k in lock}, f"requirements/docs-lock.txt does not pin {name}"
        if "==" in req:
            assert lock.get(name) == req.split("==")[1], f"{req} against the lock's {name}=={lock.get(name)}"


def test_the_nav_lists_every_page_and_only_pages_that_exist():
    text = (REPO / "mkdocs.yml").read_text()
    nav = re.findall(r":\s+(\S+\.md)\s*$", text[text.index("\nnav:") :], re.M)
    for page in nav:
        assert (REPO / "docs" / page).is_file(), f"mkdocs.yml's nav names docs/{page}, which does not exist"
    pages = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert pages == set(nav), f"pages not in the nav: {sorted(pages - set(nav))}"
