"""The paper's own numbers (results/paper_reference.yaml), looked up by (track, model, variant, metric).

An entry holds `track` (the experiment family: rubric_medicine, rubric_science, tool_calling),
`model` (the model config's name: qwen2.5-7b), `variants` (method labels from
rvpo_repro.analysis.labels: `gdpo`, `gdpo (mean)`, `rvpo (k 0.5→2)`, `rvpo (k=5)`, `hard_min`),
`metrics` (`<eval>/<metric>` names), `checkpoint` (best | final), `value`, `unit` (fraction |
percent), `grade` (P primary text, S secondary summary, I derived here), `paper` and `where`.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "results" / "paper_reference.yaml"
DASH = "—"
REQUIRED = {"track", "model", "variants", "metrics", "checkpoint", "value", "grade", "paper"}


def load_reference(path: str | Path | None = DEFAULT_REFERENCE) -> dict:
    """{"papers": {...}, "entries": [...]}; empty when the file is absent. A malformed entry is an
    error naming the file, the entry's index and what it lacks."""
    import yaml

    if path is None or not Path(path).exists():
        log.warning("no paper reference file at %s: paper columns stay empty", path)
        return {"papers": {}, "entries": []}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = data.get("entries", [])
    for i, e in enumerate(entries):
        if missing := REQUIRED - e.keys():
            raise ValueError(f"{path}: entry {i} lacks {sorted(missing)}; expected keys {sorted(REQUIRED)}")
        if unknown := e.keys() - REQUIRED - {"unit", "where"}:
            raise ValueError(f"{path}: entry {i} has unknown keys {sorted(unknown)}")
        if e["grade"] not in ("P", "S", "I") or e["checkpoint"] not in ("best", "final"):
            raise ValueError(f"{path}: entry {i}: grade must be P/S/I and checkpoint best/final, got {e}")
        if e["paper"] not in data.get("papers", {}):
            raise ValueError(f"{path}: entry {i}: paper {e['paper']!r} is not listed under `papers`")
    return {"papers": data.get("papers", {}), "entries": entries}


def paper_numbers(reference: dict, track: str, model: str, variant: str, metric: str) -> dict[str, dict]:
    """{"best": entry, "final": entry} of the paper for one row of our table (either may be absent)."""
    found: dict[str, dict] = {}
    for e in reference["entries"]:
        if (e["track"], e["model"]) == (track, model) and variant in e["variants"] and metric in e["metrics"]:
            if e["checkpoint"] in found:
                raise ValueError(
                    f"two paper entries for {track}/{model}/{variant}/{metric}/{e['checkpoint']}"
                )
            found[e["checkpoint"]] = e
    return found


def has_counterpart(reference: dict, track: str) -> bool:
    return any(e["track"] == track for e in reference["entries"])


def paper_text(e: dict | None) -> str:
    if e is None:
        return DASH
    return f"{e['value']:g}{'%' if e.get('unit') == 'percent' else ''} [{e['grade']}]"
