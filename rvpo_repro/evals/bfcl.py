"""BFCL (Berkeley Function Calling Leaderboard) single-turn AST evaluation.

data (a directory, a pinned bfcl-eval release of `RELEASES` fetched once, or the files of the
installed `bfcl-eval` wheel; the package is never imported) -> `bfcl_messages` (ToolRL prompt) -> policy output -> a parser of `bfcl_parsing` (ToolRL's handler
rules by default) -> `ast_check` (BFCL's checker semantics, see `bfcl_checker`) -> `score` (per category + summary).

Files: `BFCL_v4_<category>.json` or `BFCL_v3_<category>.json` (JSON Lines despite the name) and
`possible_answer/<same name>`; irrelevance/relevance categories have no possible answers. v3 names
three categories differently (`V3_NAMES`); entries carry the v4 name either way.
Multi-turn, agentic and format-sensitivity categories are out of scope.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import math
import os
import random
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvpo_repro.evals.base import EvalResult, mean_metric, metric
from rvpo_repro.evals.bfcl_checker import ast_check, is_no_call, language
from rvpo_repro.evals.bfcl_parsing import PARSERS
from rvpo_repro.io import download_once, read_jsonl

__all__ = [
    "CATEGORIES", "RELEASES", "available_categories", "bfcl_messages", "data_dir", "describe_data",
    "load_bfcl", "package_data_dir", "release_data_dir", "sample_entries", "score",
]  # fmt: skip

NON_LIVE = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
            "parallel_multiple", "irrelevance")  # fmt: skip
LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
        "live_relevance")  # fmt: skip
CATEGORIES = NON_LIVE + LIVE
NO_ANSWER = ("irrelevance", "live_irrelevance", "live_relevance")  # scored on "some call or not"
_FILE = re.compile(r"^BFCL_v(\d+)_(.+)\.json$")
V3_NAMES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}


@dataclass(frozen=True)
class Release:
    """A bfcl-eval wheel on PyPI whose packaged data is scored, pinned by the wheel's sha256."""

    version: str
    url: str
    sha256: str


# "v3": the last bfcl-eval release that ships BFCL v3 data (2025.8.25 is the first with v4 file
# names; every release from 2025.6.8, the first, to 2025.8.6.2 ships v3). The paper reports BFCL-v3.
# URL and sha256 of the wheel as PyPI serves it (`pip download --no-deps bfcl-eval==2025.8.6.2`).
RELEASES = {
    "v3": Release(
        "2025.8.6.2",
        "https://files.pythonhosted.org/packages/78/69/a27e690eb35ffcea268ead96d657dd8ca759543aa0d6abad951ef3d31dee/"
        "bfcl_eval-2025.8.6.2-py3-none-any.whl",
        "fdb996ac963ed1c6fce1eb4884053aae4a6de282fb931665a46dbeed204a228d",
    )
}


# ---- data ----
def package_data_dir() -> Path:
    """`bfcl_eval/data` of the installed bfcl-eval wheel, located without importing the package."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "bfcl-eval is not installed: `pip install --no-deps bfcl-eval==2026.3.23` (its data only "
            "is used), or pass a directory holding BFCL_v4_*.json and possible_answer/"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"bfcl-eval is installed but has no data directory at {data}")
    return data


def release_data_dir(name: str, cache_dir: str | Path) -> Path:
    """`bfcl_eval/data` of the release `RELEASES[name]`: its wheel downloaded once into
    `cache_dir/bfcl/` (sha256-checked) and its data unpacked beside it (atomically, once)."""
    rel = RELEASES[name]
    folder = Path(cache_dir) / "bfcl"
    root = folder / f"bfcl_eval-{rel.version}"
    if not root.is_dir():
        wheel = download_once(rel.url, folder / rel.url.rsplit("/", 1)[-1], digest=f"sha256:{rel.sha256}")
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{root.name}."))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp, [m for m in zf.namelist() if m.startswith("bfcl_eval/data/")])
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the wheel beside it
        try:
            os.replace(tmp, root)
        except OSError:  # another process unpacked it first
            if not root.is_dir():
                raise
    return root / "bfcl_eval" / "data"


def data_dir(source: str | Path | None, cache_dir: str | Path = ".cache") -> Path:
    """The directory `source` names: a release of `RELEASES` ("v3"), None for the installed
    package's data, else a directory path."""
    if source is None:
        return package_data_dir()
    return release_data_dir(str(source), cache_dir) if str(source) in RELEASES else Path(source)


def _files(source: str | Path | None, cache_dir: str | Path = ".cache") -> tuple[Path, dict[str, Path]]:
    root = data_dir(source, cache_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"BFCL source {str(root)!r} is not a directory (nor one of {sorted(RELEASES)} or null)"
        )
    found: dict[str, tuple[int, Path]] = {}
    for path in root.iterdir():
        m = _FILE.match(path.name)
        version, cat = (int(m.group(1)), m.group(2)) if m else (0, "")
        cat = V3_NAMES.get(cat, cat) if version == 3 else cat
        if cat in CATEGORIES and version > found.get(cat, (-1, None))[0]:
            found[cat] = (version, path)  # the newest version wins
    return root, {c: found[c][1] for c in CATEGORIES if c in found}


def describe_data(source: str | Path | None, cache_dir: str | Path = ".cache") -> str:
    """What a run scores on, for its record: "BFCL v3 (bfcl-eval 2025.8.6.2)", "BFCL v4 (bfcl-eval
    2026.3.23, installed)" or "BFCL v4 (<directory>)"; the version is the newest file name's."""
    _, files = _files(source, cache_dir)
    versions = {int(_FILE.match(p.name).group(1)) for p in files.values()}
    label = "BFCL " + "/".join(f"v{v}" for v in sorted(versions))
    if source is None:
        return f"{label} (bfcl-eval {importlib.metadata.version('bfcl-eval')}, installed)"
    return (
        f"{label} (bfcl-eval {RELEASES[str(source)].version})"
        if str(source) in RELEASES
        else f"{label} ({source})"
    )


def available_categories(source: str | Path | None = None, cache_dir: str | Path = ".cache") -> list[str]:
    """Supported single-turn categories with a question file in `source`, in leaderboard order."""
    return list(_files(source, cache_dir)[1])


def load_bfcl(
    source: str | Path | None = None,
    categories: Sequence[str] | None = None,
    cache_dir: str | Path = ".cache",
) -> list[dict]:
    """Entries {id, category, question, function, ground_truth} of the chosen categories.

    `source`: a directory holding the question files and `possible_answer/`, a name of `RELEASES`
    (fetched into `cache_dir`), or None for the data of the installed bfcl-eval package.
    `categories`: names without the version prefix, v4's (default: all available). `ground_truth` is None for irrelevance/relevance categories. Malformed files
    raise ValueError naming file and line; a question without a possible answer names its id.
    """
    root, files = _files(source, cache_dir)
    chosen = list(files) if categories is None else list(categories)
    unknown = [c for c in chosen if c not in files]
    if unknown:
        raise ValueError(f"BFCL categories {unknown} not found in {root}; available: {list(files)}")
    entries = []
    for cat in chosen:
        questions = read_jsonl(files[cat], ("id", "question", "function"))
        answers: dict[str, Any] = {}
        if cat not in NO_ANSWER:
            answer_path = root / "possible_answer" / files[cat].name
            if not answer_path.is_file():
                raise FileNotFoundError(
                    f"BFCL category {cat!r} needs possible answers: {answer_path} missing"
                )
            answers = {a["id"]: a["ground_truth"] for a in read_jsonl(answer_path, ("id", "ground_truth"))}
        for q in questions:
            if cat not in NO_ANSWER and q["id"] not in answers:
                raise ValueError(
                    f"{files[cat]}: question {q['id']!r} has no possible answer in {answer_path}"
                )
            entries.append(
                {
                    "id": q["id"],
                    "category": cat,
                    "question": q["question"],
                    "function": q["function"],
                    "ground_truth": answers.get(q["id"]),
                }
            )
    return entries


def sample_entries(entries: Sequence[dict], n_per_category: int | None, seed: int) -> list[dict]:
    """At most `n_per_category` entries of each category, drawn with `random.Random(f"{seed}:{cat}")`.

    The draw of a category does not depend on the other categories present; the result keeps the
    input order. `n_per_category=None` keeps everything.
    """
    if n_per_category is None:
        return list(entries)
    by_cat: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        by_cat.setdefault(e["category"], []).append(i)
    keep: set[int] = set()
    for cat, idx in by_cat.items():
        keep.update(
            idx if len(idx) <= n_per_category else random.Random(f"{seed}:{cat}").sample(idx, n_per_category)
        )
    return [e for i, e in enumerate(entries) if i in keep]


# ---- prompt ----
# The layout mirrors ToolRL's RLLA-4k instruction (data-formats.md, RLLA-4k): a system message with
# the role, the tool list (one JSON per line), the steps and the <think>/<tool_call>/<response>
# output format; the wording is ours.
_SYSTEM = """You are an assistant that solves the user's task, calling tools when they help.

**Tools you may call**
{tools}

**How to answer**
1. Reason about the task inside <think> </think>.
2. To call tools, write one JSON object per line inside <tool_call> </tool_call>, each with the
   keys "name" (a tool above) and "parameters" (a dictionary of argument values). Several calls may
   go in the same block.
3. To talk to the user, write inside <response> </response>. If no tool fits the task, do not call
   any: say so in the response.

**Output format**
<think> your reasoning </think>
<tool_call>
{{"name": "tool name", "parameters": {{"argument": "value", "...": "..."}}}}
{{"name": "...", "parameters": {{"...": "..."}}}}
</tool_call>
<response> your reply to the user </response>"""

_HINT = {
    "python": " Note that the provided function is in Python 3 syntax.",
    "java": " Note that the provided function is in Java 8 SDK syntax.",
    "javascript": " Note that the provided function is in JavaScript syntax.",
}


def _prompt_functions(functions: list[dict], category: str) -> list[dict]:
    """Function docs as BFCL shows them to a model: a language hint; Java/JS params typed "string"."""
    lang, out = language(category), copy.deepcopy(functions)
    name = {"java": "Java", "javascript": "JavaScript"}.get(lang)
    for fn in out:
        fn["description"] = fn.get("description", "") + _HINT[lang]
        if lang == "python":
            continue
        for spec in fn["parameters"]["properties"].values():
            t = spec.get("type")
            spec["description"] = spec.get("description", "") + (
                f" This parameter can be of any type of {name} object in string representation."
                if t == "any"
                else f" This is {name} {t} type parameter in string representation."
            )
            if t in ("Array", "ArrayList", "array") and "items" in spec:
                spec["description"] += f" The list elements are of type {spec.pop('items')['type']};"
                spec["description"] += " they are not in string representation."
            if lang == "javascript" and t == "dict" and "properties" in spec:
                spec["description"] += " The dictionary entries have the following schema; they are not in"
                spec["description"] += f" string representation. {json.dumps(spec.pop('properties'))}"
            spec["type"] = "string"
    return out


def bfcl_messages(entry: dict) -> list[dict]:
    """Chat messages prompting the policy in the ToolRL format: our system message, then the turns
    of the entry's first question (its own leading system turn, if any, is appended to ours)."""
    tools = "\n".join(
        json.dumps(f, ensure_ascii=False) for f in _prompt_functions(entry["function"], entry["category"])
    )
    system = _SYSTEM.format(tools=tools or "(none)")
    turns = [dict(m) for m in entry["question"][0]]
    if turns and turns[0]["role"] == "system":
        system += "\n\n" + turns.pop(0)["content"]
    return [{"role": "system", "content": system}, *turns]


# ---- scoring ----
SIMPLE = ("simple_python", "simple_java", "simple_javascript")
# Summary metrics as trees: a list is the unweighted mean of its present members, a tuple of
# categories one pool (count-weighted). BFCL v3 leaderboard's non-live, live and overall.
NON_LIVE_TREE: list = [list(SIMPLE), "multiple", "parallel", "parallel_multiple", "irrelevance"]
SUMMARY_TREES: dict[str, list | tuple] = {
    "non_live": NON_LIVE_TREE,
    "live": LIVE,
    "overall": [NON_LIVE_TREE, LIVE],
}


def _mean_of(parts: Sequence[dict]) -> dict:
    """Unweighted mean of metrics; stderr propagated as for independent means (None if any is)."""
    k = len(parts)
    ses = [p["stderr"] for p in parts]
    se = None if None in ses else math.sqrt(sum(s * s for s in ses)) / k
    return metric(sum(p["value"] for p in parts) / k, se, sum(p["n"] for p in parts))


def _shares(tree: list | tuple | str, counts: dict[str, int]) -> dict[str, float]:
    """category -> the weight of each of its examples in `tree`'s value (weights sum to 1 over the
    examples present): a list splits its weight equally among its present members, a pool (tuple)
    or a category over its examples."""
    if isinstance(tree, str):
        return {tree: 1.0 / counts[tree]} if counts.get(tree) else {}
    if isinstance(tree, tuple):
        n = sum(counts.get(c, 0) for c in tree)
        return {c: 1.0 / n for c in tree if counts.get(c)}
    parts = [p for p in (_shares(t, counts) for t in tree) if p]
    return {c: w / len(parts) for p in parts for c, w in p.items()}


def _metric_of(tree: list | tuple, by_cat: dict[str, list[float]], metrics: dict) -> dict | None:
    if isinstance(tree, tuple):
        pooled = [x for c in tree for x in by_cat.get(c, [])]
        return mean_metric(pooled) if pooled else None
    parts = [
        m for t in tree if (m := metrics.get(t) if isinstance(t, str) else _metric_of(t, by_cat, metrics))
    ]
    return _mean_of(parts) if parts else None


def score(
    entries: Sequence[dict], outputs: Sequence[str], parser: str = "toolrl", prefix: str = "bfcl"
) -> EvalResult:
    """Score one output per entry.

    Examples (rows): {"id", "category", "score" (1.0/0.0 from `ast_check`), "parsed" (the output
    decoded), "n_calls"}, plus one column per metric (below). Metrics, `<prefix>/<name>` ->
    {"value", "stderr", "n"}:
    - `<category>`: accuracy of that category; stderr = sample sd / sqrt(n).
    - `non_live` = mean(simple, multiple, parallel, parallel_multiple, irrelevance) over the groups
      present, unweighted, where simple = mean(simple_python, simple_java, simple_javascript)
      present (BFCL v3 leaderboard's non-live overall).
    - `live` = accuracy pooled over all live examples (count-weighted, as BFCL v3's live overall).
    - `overall` = mean(non_live, live) over the groups present, unweighted (the primary metric).
    Summary stderrs treat category accuracies as independent. Columns: metric `<prefix>/<name>`
    -> row column `<name>`, None on rows outside it; a summary's column is the example's score
    times its weight in the summary times the rows it covers, so its plain mean over those rows is
    the summary (per-example values may exceed 1). `parser`: a name of `bfcl_parsing.PARSERS`
    ("toolrl": ToolRL's BFCL handler rules; "strict"; "python": BFCL's prompting format).
    """
    if parser not in PARSERS:
        raise ValueError(f"BFCL parser {parser!r}: expected one of {sorted(PARSERS)}")
    if len(outputs) != len(entries):
        raise ValueError(f"{len(outputs)} outputs for {len(entries)} BFCL entries")
    rows = []
    for entry, out in zip(entries, outputs, strict=True):
        calls = PARSERS[parser](out)
        ok = ast_check(entry["function"], calls, entry["ground_truth"], entry["category"])
        n_calls = 0 if is_no_call(calls) else len(calls)
        row = {"id": entry["id"], "category": entry["category"], "score": float(ok)}
        rows.append({**row, "parsed": calls is not None, "n_calls": n_calls})
    by_cat: dict[str, list[float]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r["score"])
    cats = [c for c in [*CATEGORIES, *sorted(set(by_cat) - set(CATEGORIES))] if c in by_cat]
    metrics = {c: mean_metric(by_cat[c]) for c in cats}
    for r in rows:
        r.update({c: r["score"] if r["category"] == c else None for c in cats})
    counts = {c: len(v) for c, v in by_cat.items()}
    for key, tree in SUMMARY_TREES.items():
        if (m := _metric_of(tree, by_cat, metrics)) is None:
            continue
        metrics[key] = m
        shares = _shares(tree, counts)
        covered = sum(counts[c] for c in shares)
        for r in rows:
            w = shares.get(r["category"])
            r[key] = None if w is None else r["score"] * w * covered

    def name(key: str) -> str:
        return f"{prefix}/{key}" if prefix else key

    return EvalResult(
        {name(k): m for k, m in metrics.items()},
        rows,
        {name(k): k for k in metrics},
        primary=name("overall") if "overall" in metrics else None,
    )
