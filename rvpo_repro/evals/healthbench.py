"""HealthBench (simple-evals `healthbench_eval.py`): loader, grader prompt, rubric scoring, aggregation.

Semantics follow simple-evals' healthbench_eval.py (`BASE_URL`'s data): one judge call per rubric item;
an example scores sum(points of met items) / sum(points of items with points > 0), unclipped; per
rubric tag (axis:, level:, cluster:) the same formula over the items carrying the tag; per example
tag (theme:) the overall score of those examples; each metric aggregates to its mean clipped to
[0, 1] with a bootstrap std of clipped means (seeded here, unseeded upstream).

Missing verdicts (a `met` entry of None: the judge gave no usable answer). Upstream retries until
it gets a boolean, so it never sees one. Here a score that would sum over an item without a
verdict is undefined: the example's overall score is None as soon as one of its items is missing,
and a tag score is None when one of *that tag's* items is missing. Undefined scores are left out
of the aggregate and counted in its `n_missing`; a missing verdict is never read as "not met".
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from rvpo_repro.evals.base import EvalResult, metric
from rvpo_repro.evals.healthbench_grader import (
    BUILTIN_TEMPLATE,
    GraderTemplate,
    grader_messages,
    parse_upstream_verdict,
)
from rvpo_repro.io import download_once
from rvpo_repro.judges.base import JudgeRequest

BASE_URL = "https://openaipublic.blob.core.windows.net/simple-evals/healthbench"
FILES = {
    "main": "2025-05-07-06-14-12_oss_eval.jsonl",  # 5000 examples
    "hard": "hard_2025-05-08-21-00-10.jsonl",  # 1000
    "consensus": "consensus_2025-05-09-20-00-46.jsonl",  # 3671
}
URLS = {name: f"{BASE_URL}/{file}" for name, file in FILES.items()}
THEMES = (
    "emergency_referrals",
    "communication",
    "hedging",
    "complex_responses",
    "health_data_tasks",
    "global_health",
    "context_seeking",
)
AXES = ("accuracy", "completeness", "communication_quality", "context_awareness", "instruction_following")
LEVELS = ("example", "cluster")
ROLES = ("system", "developer", "user", "assistant")
RUBRIC_TAG_PREFIXES = ("axis:", "level:", "cluster:")  # per-item tags with their own metric
EXAMPLE_TAG_PREFIXES = ("theme:", "physician_agreed_category:")  # per-example tags
REQUIRED_FIELDS = ("prompt", "rubrics", "example_tags", "prompt_id", "ideal_completions_data", "canary")


class HealthBenchFormatError(ValueError):
    """A HealthBench file does not follow the schema; the message names file, line and field."""


# --------------------------------------------------------------------------- loading


def _fetch(url: str, cache_dir: str | Path | None, timeout: float) -> Path:
    """The local copy of `url`: `cache_dir/<basename>`, downloaded once (a fresh temporary
    directory when `cache_dir` is None)."""
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="healthbench-"))
    try:
        return download_once(url, folder / url.rstrip("/").rsplit("/", 1)[-1], timeout=timeout)
    except ConnectionError as err:
        raise ConnectionError(f"HealthBench: {err}, or pass its local path as the source") from err


def load_healthbench(
    source: str | Path = "main",
    *,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    timeout: float = 60.0,
) -> list[dict]:
    """Validated HealthBench records, in file order.

    `source`: a subset name ("main", "hard", "consensus": downloaded from the simple-evals blob
    store, cached under `cache_dir` when given), an http(s) URL, or a local JSONL path.
    `limit`: keep the first `limit` records (all are still read, none validated past the limit).
    """
    text = str(source)
    if text in URLS or text.startswith(("http://", "https://")):
        path = _fetch(URLS.get(text, text), cache_dir, timeout)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"HealthBench source {text!r}: no such file, and not one of {sorted(URLS)} or a URL"
            )
    return parse_lines(path.read_text(encoding="utf-8").splitlines(), str(path), limit=limit)


def parse_lines(lines: Sequence[str], name: str = "<healthbench>", limit: int | None = None) -> list[dict]:
    """Parse and validate JSONL lines (blank lines skipped); errors name `name`, line and field."""
    records: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if limit is not None and len(records) >= limit:
            break
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise HealthBenchFormatError(
                f"{where}: not valid JSON ({err.msg} at column {err.colno})"
            ) from err
        validate_record(rec, where)
        if (pid := rec["prompt_id"]) in seen:
            _fail(where, "prompt_id", f"{pid!r} already used on line {seen[pid]}")
        seen[pid] = lineno
        records.append(rec)
    return records


def _fail(where: str, field: str, msg: str) -> NoReturn:
    raise HealthBenchFormatError(f"{where}: field `{field}`: {msg}")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_prompt(prompt: Any, where: str) -> None:
    if not isinstance(prompt, list) or not prompt:
        _fail(where, "prompt", f"expected a non-empty list of messages, got {prompt!r:.80}")
    for i, msg in enumerate(prompt):
        f = f"prompt[{i}]"
        if not isinstance(msg, dict):
            _fail(where, f, f"expected an object {{role, content}}, got {type(msg).__name__}")
        if msg.get("role") not in ROLES:
            _fail(where, f"{f}.role", f"expected one of {list(ROLES)}, got {msg.get('role')!r}")
        if not isinstance(msg.get("content"), str):
            _fail(where, f"{f}.content", f"expected a string, got {type(msg.get('content')).__name__}")
    if (last := prompt[-1]["role"]) != "user":
        _fail(where, f"prompt[{len(prompt) - 1}].role", f"the last turn must be 'user', got {last!r}")


def _check_rubric_item(item: Any, where: str, f: str) -> None:
    if not isinstance(item, dict):
        _fail(where, f, f"expected an object {{criterion, points, tags}}, got {type(item).__name__}")
    if not isinstance(item.get("criterion"), str) or not item["criterion"].strip():
        _fail(where, f"{f}.criterion", f"expected a non-empty string, got {item.get('criterion')!r:.80}")
    if not _is_number(item.get("points")):
        _fail(where, f"{f}.points", f"expected a finite number, got {item.get('points')!r}")
    tags = item.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        _fail(where, f"{f}.tags", f"expected a list of strings, got {tags!r:.80}")
    if len(set(tags)) != len(tags):
        _fail(where, f"{f}.tags", f"repeated tag in {tags}")
    axes = [t.split(":", 1)[1] for t in tags if t.startswith("axis:")]
    if len(axes) != 1 or axes[0] not in AXES:
        _fail(where, f"{f}.tags", f"expected exactly one axis:<name> with name in {list(AXES)}, got {tags}")
    levels = [t.split(":", 1)[1] for t in tags if t.startswith("level:")]
    if len(levels) != 1 or levels[0] not in LEVELS:
        _fail(where, f"{f}.tags", f"expected exactly one of level:example / level:cluster, got {tags}")
    clusters = [t for t in tags if t.startswith("cluster:")]
    if levels[0] == "cluster" and len(clusters) != 1:
        _fail(where, f"{f}.tags", f"a level:cluster item needs exactly one cluster:<id> tag, got {tags}")


def validate_record(rec: Any, where: str) -> None:
    """Raise HealthBenchFormatError (naming `where` and the field) unless `rec` has the real schema."""
    if not isinstance(rec, dict):
        _fail(where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    for key in REQUIRED_FIELDS:
        if key not in rec:
            _fail(where, key, f"missing (a record needs {list(REQUIRED_FIELDS)})")
    _check_prompt(rec["prompt"], where)
    rubrics = rec["rubrics"]
    if not isinstance(rubrics, list) or not rubrics:
        _fail(where, "rubrics", f"expected a non-empty list, got {rubrics!r:.80}")
    for i, item in enumerate(rubrics):
        _check_rubric_item(item, where, f"rubrics[{i}]")
    tags = rec["example_tags"]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        _fail(where, "example_tags", f"expected a list of strings, got {tags!r:.80}")
    themes = [t.split(":", 1)[1] for t in tags if t.startswith("theme:")]
    if len(themes) != 1 or themes[0] not in THEMES:
        _fail(where, "example_tags", f"expected exactly one theme:<name> in {list(THEMES)}, got {tags}")
    if not isinstance(rec["prompt_id"], str) or not rec["prompt_id"]:
        _fail(where, "prompt_id", f"expected a non-empty string, got {rec['prompt_id']!r}")
    if (ideal := rec["ideal_completions_data"]) is not None and not isinstance(ideal, dict):
        _fail(where, "ideal_completions_data", f"expected null or an object, got {ideal!r:.80}")
    if not isinstance(rec["canary"], str):
        _fail(where, "canary", f"expected a string, got {type(rec['canary']).__name__}")


def theme(example: dict) -> str:
    """The example's theme name (the part after `theme:`)."""
    return next(t.split(":", 1)[1] for t in example["example_tags"] if t.startswith("theme:"))


# --------------------------------------------------------------------------- grader prompt

GRADER_TEMPLATE = BUILTIN_TEMPLATE  # the suite's own wording; simple-evals' via load_grader_template


def grader_prompt(conversation: str, rubric_item: str, template: str = BUILTIN_TEMPLATE) -> str:
    """The grader's user message for one rendered conversation and rubric item (upstream's two
    replacements, conversation first)."""
    return template.replace("<<conversation>>", conversation).replace("<<rubric_item>>", rubric_item)


def policy_messages(example: dict) -> list[dict]:
    """The policy's prompt: the record's messages as they are (the sampler adds its system message)."""
    return [dict(m) for m in example["prompt"]]


def judge_requests(
    example: dict, reply: str, template: GraderTemplate | str = BUILTIN_TEMPLATE, system: str | None = None
) -> list[JudgeRequest]:
    """One JudgeRequest per rubric item, in rubric order (`grader_messages`: the reply appended as
    an assistant turn; `system` prepended when given, as simple-evals' sampler does)."""
    return [
        JudgeRequest.from_messages(grader_messages(example["prompt"], reply, item, template, system=system))
        for item in example["rubrics"]
    ]


# --------------------------------------------------------------------------- scoring


def _check_met(rubrics: Sequence[dict], met: Sequence[bool | None]) -> None:
    if len(rubrics) != len(met):
        raise ValueError(f"{len(rubrics)} rubric items but {len(met)} verdicts")
    for i, m in enumerate(met):
        if m is not None and not isinstance(m, bool | np.bool_):
            raise TypeError(f"verdict {i} must be True, False or None (missing), got {m!r}")


def _ratio(rubrics: Sequence[dict], met: Sequence[bool | None]) -> tuple[float | None, bool]:
    """(score, missing): score None when the positive total is 0 or a verdict is missing."""
    if any(m is None for m in met):
        return None, True
    total = sum(item["points"] for item in rubrics if item["points"] > 0)
    if total <= 0:
        return None, False
    return sum(item["points"] for item, m in zip(rubrics, met, strict=True) if m) / total, False


def score_example(rubrics: Sequence[dict], met: Sequence[bool | None]) -> float | None:
    """sum(points of met items) / sum(positive points); unclipped (may be negative).

    None when the positive total is 0, or when any verdict is None (missing; see module doc)."""
    _check_met(rubrics, met)
    return _ratio(rubrics, met)[0]


def _by_tag(rubrics: Sequence[dict], met: Sequence[bool | None]) -> dict[str, tuple[float | None, bool]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(rubrics):
        for tag in item["tags"]:
            groups[tag].append(i)
    return {tag: _ratio([rubrics[i] for i in idx], [met[i] for i in idx]) for tag, idx in groups.items()}


def tag_scores(rubrics: Sequence[dict], met: Sequence[bool | None]) -> dict[str, float | None]:
    """Per rubric tag (axis:, level:, cluster:), the `score_example` formula over that tag's items.

    None for a tag whose items have no positive points (upstream leaves such a tag out of its
    metrics) or include a missing verdict."""
    _check_met(rubrics, met)
    return {tag: score for tag, (score, _) in _by_tag(rubrics, met).items()}


def aggregate(example_scores: Sequence[float | None], seed: int = 0, n_bootstrap: int = 1000) -> dict:
    """simple-evals' clipped statistics over defined scores (None values excluded, counted).

    Returns {"score": mean clipped to [0, 1], "n_samples", "bootstrap_std": population std of
    `n_bootstrap` resampled means, each clipped to [0, 1] (numpy Generator seeded by `seed`),
    "n_missing"}. With no defined scores, `score` and `bootstrap_std` are None."""
    values = np.asarray([s for s in example_scores if s is not None], dtype=float)
    out = {"score": None, "n_samples": int(values.size), "bootstrap_std": None}
    out["n_missing"] = len(example_scores) - int(values.size)
    if values.size == 0:
        return out
    out["score"] = float(np.clip(values.mean(), 0.0, 1.0))
    rng = np.random.default_rng(seed)
    means = np.empty(n_bootstrap)
    chunk = max(1, 2_000_000 // values.size)  # bound memory at ~16 MB of indices
    for start in range(0, n_bootstrap, chunk):
        stop = min(n_bootstrap, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    out["bootstrap_std"] = float(np.std(np.clip(means, 0.0, 1.0)))
    return out


# --------------------------------------------------------------------------- evaluation


def _verdict(result: Any, where: str) -> bool | None:
    value = result.value
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else bool(value)
    raise TypeError(f"{where}: judge value must be a bool or None (missing), got {value!r}")


def _metric(scores: list[float | None], seed: int, n_bootstrap: int) -> dict | None:
    agg = aggregate(scores, seed=seed, n_bootstrap=n_bootstrap)
    keys = {"value": "score", "stderr": "bootstrap_std", "n": "n_samples", "n_missing": "n_missing"}
    return None if agg["score"] is None else {k: agg[v] for k, v in keys.items()}


def evaluate(
    examples: Sequence[dict],
    replies: Sequence[str],
    judge: Any,
    *,
    seed: int = 0,
    n_bootstrap: int = 1000,
    prefix: str = "healthbench",
    template: GraderTemplate | str = BUILTIN_TEMPLATE,
    system: str | None = None,
    parse: Any = parse_upstream_verdict,
) -> EvalResult:
    """Grade one policy reply per example with `judge` (one call per rubric item, one batch).

    Metrics, each {"value", "stderr" (bootstrap std), "n", "n_missing"}:
    `<prefix>/score` (overall), rubric tags `<prefix>/axis:<name>`, `level:<l>`, `cluster:<id>`,
    example tags `<prefix>/theme:<name>` and `physician_agreed_category:<c>`, plus
    `<prefix>/judge_missing` (verdicts the judge failed to give after its re-asks; value = count,
    n = verdicts asked) and `<prefix>/examples_unscored` (examples left out of the overall score
    because one of their verdicts is missing; value = count, n = examples): a reply that never
    parses is counted and shown, never read as "not met". The grader is `template` (simple-evals'
    via `load_grader_template("upstream")`) with `system` prepended; `parse` reads each reply.
    A metric with no defined value is left out. Rows: one per example {"id", "theme", "score",
    "n_items", "n_missing", "<rubric tag>"... (axis:, level:, cluster:), "<example tag>"...
    (theme:, physician_agreed_category:; the example's score), "criteria_met"}.

    Columns: `<prefix>/score` -> `score` (primary), each tag metric -> the column of that tag; the
    mean of a column over its defined values is the metric (before the clip to [0, 1]). The two
    counts (judge_missing, examples_unscored) have no column."""
    if len(examples) != len(replies):
        raise ValueError(f"{len(examples)} examples but {len(replies)} replies")
    requests, spans = [], []
    for example, reply in zip(examples, replies, strict=True):
        reqs = judge_requests(example, reply, template, system)
        spans.append((len(requests), len(reqs)))
        requests.extend(reqs)
    results = judge.grade(requests, parse=parse)
    if len(results) != len(requests):
        raise ValueError(f"judge returned {len(results)} results for {len(requests)} requests")

    per_metric: dict[str, list[float | None]] = defaultdict(list)
    rows = []
    for example, (start, k) in zip(examples, spans, strict=True):
        pid = example["prompt_id"]
        met = [_verdict(r, f"example {pid!r} item {j}") for j, r in enumerate(results[start : start + k])]
        rubrics = example["rubrics"]
        overall, _ = _ratio(rubrics, met)
        row = {"id": pid, "theme": theme(example), "score": overall, "n_items": k}
        row["n_missing"] = sum(m is None for m in met)
        per_metric["score"].append(overall)
        for tag in example["example_tags"]:
            if tag.startswith(EXAMPLE_TAG_PREFIXES):
                per_metric[tag].append(overall)
                row[tag] = overall
        for tag, (value, missing) in sorted(_by_tag(rubrics, met).items()):
            if not tag.startswith(RUBRIC_TAG_PREFIXES):
                continue
            row[tag] = value
            if value is not None or missing:  # zero positive points: left out, as upstream
                per_metric[tag].append(value)
        row["criteria_met"] = met
        rows.append(row)

    def name(key: str) -> str:
        return f"{prefix}/{key}" if prefix else key

    metrics, columns = {}, {}
    for key in ["score", *sorted(k for k in per_metric if k != "score")]:
        if (m := _metric(per_metric[key], seed, n_bootstrap)) is not None:
            metrics[name(key)], columns[name(key)] = m, key
    missing = sum(r["n_missing"] for r in rows)
    metrics[name("judge_missing")] = metric(missing, None, len(requests))
    unscored = sum(r["n_missing"] > 0 for r in rows)
    metrics[name("examples_unscored")] = metric(unscored, None, len(rows))
    return EvalResult(metrics, rows, columns, primary=name("score"))
