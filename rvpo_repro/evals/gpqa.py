"""GPQA-Diamond as simple-evals' `gpqa_eval.py` (openai/simple-evals) runs it, on `HUB_FILE` of `HUB_REPO`.

The CSV's rows are repeated `n_repeats` times as a whole (`rows * n_repeats`, as upstream), then
each copy, in that order, draws `rng.sample(range(4), 4)` from one `random.Random(seed)` (seed 0
upstream); the choices [correct, incorrect 1, 2, 3] are reordered by it and the answer letter is
the position of the correct text. Scoring takes the first match of simple-evals' regex and
compares the group, as matched, with the uppercase answer letter (so "Answer: b" scores 0).

One deliberate difference: cells are read as text without NaN conversion (upstream's
`pandas.read_csv` would turn a literal "None" or "NA" answer into NaN and show it as "nan").
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rvpo_repro.evals.base import EvalResult, mean_stderr, metric

HUB_REPO = "Idavidrein/gpqa"
HUB_FILE = "gpqa_diamond.csv"
HUB_ALIASES = ("hub", "diamond", HUB_REPO)
ANSWER_PATTERN = r"(?i)Answer[ \t]*:[ \t]*\$?([A-D])\$?"
PROMPT_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by "
    "step before answering.\n\n{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)
CHOICE_COLUMNS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
REQUIRED_COLUMNS = ("Record ID", "Question", *CHOICE_COLUMNS, "High-level domain", "Subdomain")


class GPQAFormatError(ValueError):
    """The GPQA CSV does not have the expected columns or values; names file, row and column."""


def gpqa_prompt(question: str, choices: Sequence[str]) -> str:
    """simple-evals' multiple-choice prompt for `question` and four `choices` in A-D order."""
    if len(choices) != 4:
        raise ValueError(f"GPQA needs exactly 4 choices, got {len(choices)}")
    a, b, c, d = choices
    return PROMPT_TEMPLATE.format(Question=question, A=a, B=b, C=c, D=d)


def extract_answer(text: str) -> str | None:
    """The letter after the first "Answer:" (case-insensitive pattern), as matched; None if none."""
    match = re.search(ANSWER_PATTERN, text)
    return match.group(1) if match else None


def score_example(text: str, answer: str) -> float:
    """1.0 iff the extracted letter equals `answer` exactly (a lowercase letter does not)."""
    return 1.0 if extract_answer(text) == answer else 0.0


def access_error(source: str | Path) -> str | None:
    """Why `source` cannot be read, known before anything starts (one line), or None: the gated hub
    file needs HF_TOKEN in the environment (read nowhere else), a local path must exist."""
    text = str(source)
    if text in HUB_ALIASES:
        if os.environ.get("HF_TOKEN"):
            return None
        return (
            f"GPQA-Diamond comes from the gated dataset {HUB_REPO}: accept its terms on "
            f"https://huggingface.co/datasets/{HUB_REPO} and set HF_TOKEN to a token of that account, "
            f"or set the source to a local {HUB_FILE}"
        )
    return (
        None
        if Path(text).is_file()
        else f"GPQA source {text!r}: no such file, and not one of {list(HUB_ALIASES)}"
    )


def _download() -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    token = os.environ.get("HF_TOKEN") or None  # never logged or put in a message
    try:
        return Path(hf_hub_download(HUB_REPO, HUB_FILE, repo_type="dataset", token=token))
    except (GatedRepoError, RepositoryNotFoundError) as err:
        raise PermissionError(
            f"no access to the gated dataset {HUB_REPO} ({type(err).__name__}): accept its terms on the "
            f"hub and set HF_TOKEN to a token of that account"
            + ("" if token else " (HF_TOKEN is not set)")
            + f", or pass a local {HUB_FILE} path"
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise ConnectionError(
            f"could not fetch {HUB_REPO}/{HUB_FILE} ({type(err).__name__}): offline and not in the hub "
            f"cache. Download it elsewhere and pass its local path as the source"
        ) from None
    except HfHubHTTPError as err:
        raise ConnectionError(
            f"could not fetch {HUB_REPO}/{HUB_FILE}: HTTP error {getattr(err.response, 'status_code', '?')}"
        ) from None


def read_rows(path: str | Path) -> list[dict]:
    """CSV rows as text dicts, checked for the columns the eval uses (errors name file, row, column)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if missing := [c for c in REQUIRED_COLUMNS if c not in header]:
            raise GPQAFormatError(f"{path}: missing columns {missing}; header is {header}")
        rows = []
        for i, row in enumerate(reader, start=1):
            for col in REQUIRED_COLUMNS:
                if row[col] is None or not row[col].strip():
                    raise GPQAFormatError(
                        f"{path}: data row {i} (ending on line {reader.line_num}): column {col!r} is empty"
                    )
            rows.append(row)
    if not rows:
        raise GPQAFormatError(f"{path}: no data rows")
    return rows


def load_gpqa(
    source: str | Path = "hub", n_repeats: int = 1, seed: int = 0, num_examples: int | None = None
) -> list[dict]:
    """Examples in simple-evals' order: all rows, repeated `n_repeats` times as a whole.

    `source`: a local CSV path, or "hub" / "diamond" / "Idavidrein/gpqa" for the gated hub file
    (token from HF_TOKEN). `num_examples` subsamples first with the same generator, as upstream
    (only with n_repeats == 1). Each example: {"id", "prompt" (one user message), "answer"
    (letter), "choices" (A-D order), "permutation", "record_id", "domain", "subdomain", "repeat"}.
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    if str(source) in HUB_ALIASES:
        path = _download()
    elif Path(source).is_file():
        path = Path(source)
    else:
        raise FileNotFoundError(access_error(source))
    rows = read_rows(path)
    rng = random.Random(seed)
    if num_examples is not None:
        if n_repeats != 1:
            raise ValueError("num_examples needs n_repeats == 1 (as in simple-evals)")
        rows = rng.sample(rows, num_examples)
    examples = []
    for k, row in enumerate(rows * n_repeats):
        permutation = rng.sample(range(4), 4)
        choices = [row[CHOICE_COLUMNS[i]] for i in permutation]
        answer = "ABCD"[choices.index(row["Correct Answer"])]  # first equal text, as upstream
        repeat = k // len(rows)
        examples.append(
            {
                "id": f"{row['Record ID']}#{repeat}",
                "prompt": [{"role": "user", "content": gpqa_prompt(row["Question"], choices)}],
                "answer": answer,
                "choices": choices,
                "permutation": permutation,
                "record_id": row["Record ID"],
                "domain": row["High-level domain"],
                "subdomain": row["Subdomain"],
                "repeat": repeat,
            }
        )
    return examples


def _accuracy(rows: list[dict]) -> dict:
    """Accuracy over rows; stderr over questions (repeats of one record averaged first)."""
    by_record: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_record[r["record_id"]].append(r["correct"])
    _, stderr = mean_stderr([sum(v) / len(v) for v in by_record.values()])
    value, _ = mean_stderr([r["correct"] for r in rows])
    return metric(value, stderr, len(rows), n_questions=len(by_record))


def evaluate(examples: Sequence[dict], outputs: Sequence[str], *, prefix: str = "gpqa") -> EvalResult:
    """Score one output per example. Metrics: `<prefix>/accuracy` (primary) and
    `<prefix>/domain:<name>`, each {"value", "stderr", "n", "n_questions"}; the stderr treats the
    repeats of one question as one cluster (the plain binomial stderr when n_repeats == 1).

    Rows, one per example: {"id", "record_id", "domain", "answer", "extracted", "correct" (1.0 or
    0.0), "domain:<name>" (`correct` for the example's own domain, else None)}. Columns: accuracy
    -> `correct`, domain:<name> -> `domain:<name>`."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    if not examples:
        raise ValueError("no examples to evaluate")
    domains = sorted({ex["domain"] for ex in examples})
    rows = []
    for ex, text in zip(examples, outputs, strict=True):
        extracted = extract_answer(text)
        correct = 1.0 if extracted == ex["answer"] else 0.0
        row = {
            "id": ex["id"],
            "record_id": ex["record_id"],
            "domain": ex["domain"],
            "answer": ex["answer"],
            "extracted": extracted,
            "correct": correct,
        }
        rows.append(row | {f"domain:{d}": correct if d == ex["domain"] else None for d in domains})

    def name(key: str) -> str:
        return f"{prefix}/{key}" if prefix else key

    metrics, columns = {name("accuracy"): _accuracy(rows)}, {name("accuracy"): "correct"}
    for domain in domains:
        metrics[name(f"domain:{domain}")] = _accuracy([r for r in rows if r["domain"] == domain])
        columns[name(f"domain:{domain}")] = f"domain:{domain}"
    return EvalResult(metrics, rows, columns, primary=name("accuracy"))
