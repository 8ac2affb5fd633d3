"""GPQA-Diamond: simple-evals' Random(0) permutations, prompt, answer regex and scoring."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from rvpo_repro.evals import gpqa
from rvpo_repro.evals.base import column_mean
from rvpo_repro.evals.synthetic_benchmarks import GPQA_COLUMNS, write_gpqa_fixture

# Obtained once by running `r = random.Random(0); [r.sample(range(4), 4) for _ in range(3)]`
# (CPython 3.11+); with choices [correct, inc1, inc2, inc3] the correct one lands at C, D, C.
FIRST_PERMUTATIONS = [[3, 1, 0, 2], [3, 1, 2, 0], [2, 3, 0, 1]]
FIRST_ANSWERS = ["C", "D", "C"]


@pytest.fixture
def csv_path(tmp_path):
    return write_gpqa_fixture(tmp_path / "gpqa_diamond.csv", n=4, seed=0)


def _reference(path, n_repeats, seed=0, num_examples=None):
    """Straightforward reading of the documented procedure (pandas, as simple-evals reads it)."""
    rows = [row.to_dict() for _, row in pd.read_csv(path).iterrows()]
    rng = random.Random(seed)
    if num_examples:
        rows = rng.sample(rows, num_examples)
    out = []
    for row in rows * n_repeats:
        perm = rng.sample(range(4), 4)
        original = [
            row["Correct Answer"],
            row["Incorrect Answer 1"],
            row["Incorrect Answer 2"],
            row["Incorrect Answer 3"],
        ]
        choices = [original[i] for i in perm]
        out.append((row["Record ID"], perm, choices, "ABCD"[choices.index(row["Correct Answer"])]))
    return out


def test_first_permutations_pinned(csv_path):
    examples = gpqa.load_gpqa(csv_path)
    assert [e["permutation"] for e in examples[:3]] == FIRST_PERMUTATIONS
    assert [e["answer"] for e in examples[:3]] == FIRST_ANSWERS


@pytest.mark.parametrize("n_repeats", [1, 3])
def test_permutations_match_reference(csv_path, n_repeats):
    examples = gpqa.load_gpqa(csv_path, n_repeats=n_repeats)
    got = [(e["record_id"], e["permutation"], e["choices"], e["answer"]) for e in examples]
    assert got == _reference(csv_path, n_repeats)
    ids = [e["record_id"] for e in examples]
    assert ids == ids[:4] * n_repeats  # the whole list repeated, not each row in place
    assert len({e["id"] for e in examples}) == 4 * n_repeats


def test_num_examples_subsamples_with_the_same_generator(tmp_path):
    path = write_gpqa_fixture(tmp_path / "g.csv", n=6, seed=1)
    examples = gpqa.load_gpqa(path, num_examples=3)
    assert [(e["record_id"], e["permutation"], e["choices"], e["answer"]) for e in examples] == _reference(
        path, 1, num_examples=3
    )
    with pytest.raises(ValueError, match="n_repeats == 1"):
        gpqa.load_gpqa(path, n_repeats=2, num_examples=3)


def test_example_fields_and_prompt(csv_path):
    ex = gpqa.load_gpqa(csv_path)[0]
    row = pd.read_csv(csv_path).iloc[0]
    assert ex["record_id"] == row["Record ID"] and ex["domain"] == row["High-level domain"]
    assert ex["subdomain"] == row["Subdomain"] and ex["id"] == f"{row['Record ID']}#0"
    assert ex["choices"]["ABCD".index(ex["answer"])] == row["Correct Answer"]
    (msg,) = ex["prompt"]
    assert msg["role"] == "user" and msg["content"] == gpqa.gpqa_prompt(row["Question"], ex["choices"])
    assert "\n" in row["Question"] and row["Question"] in msg["content"]  # multi-line cell survives


def test_prompt_text_exact():
    expected = (
        "Answer the following multiple choice question. The last line of your response should be of "
        "the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think "
        "step by step before answering.\n\nWhat is 1+1?\n\nA) 1\nB) 2\nC) 3\nD) 4"
    )
    assert gpqa.gpqa_prompt("What is 1+1?", ["1", "2", "3", "4"]) == expected
    with pytest.raises(ValueError):
        gpqa.gpqa_prompt("q", ["1", "2"])


@pytest.mark.parametrize(
    "text, extracted",
    [
        ("Reasoning...\nAnswer: B", "B"),
        ("answer: C", "C"),  # (?i): the keyword is case-insensitive
        ("ANSWER:D", "D"),
        ("Answer: $A$", "A"),
        ("Answer : B", "B"),
        ("Answer:\tD", "D"),
        ("Answer: b", "b"),  # returned as matched; it then fails against "B"
        ("Answer: A. On reflection, Answer: B", "A"),  # first match wins
        ("The answer is B.", None),
        ("Answer: E", None),
        ("Answer:\nB", None),  # only spaces and tabs between ':' and the letter
        ("Final Answer: $\\boxed{C}$", None),
        ("", None),
    ],
)
def test_extract_answer(text, extracted):
    assert gpqa.extract_answer(text) == extracted


def test_score_example():
    assert gpqa.score_example("Answer: B", "B") == 1.0
    assert gpqa.score_example("Answer: b", "B") == 0.0
    assert gpqa.score_example("Answer: A", "B") == 0.0
    assert gpqa.score_example("no letter here", "B") == 0.0


def test_evaluate_metrics_and_rows(csv_path):
    examples = gpqa.load_gpqa(csv_path, n_repeats=2)
    outputs = [f"Answer: {e['answer']}" if i % 2 == 0 else "Answer: a" for i, e in enumerate(examples)]
    result = gpqa.evaluate(examples, outputs)
    metrics, rows = result.metrics, result.examples
    acc = metrics["gpqa/accuracy"]
    assert acc["value"] == 0.5 and acc["n"] == 8 and acc["n_questions"] == 4
    # rows 0..3 then 4..7 are the same questions; question k has scores (even k) -> 1, 0 or 0, 1
    per_question = [(rows[k]["correct"] + rows[k + 4]["correct"]) / 2 for k in range(4)]
    assert per_question == [1.0, 0.0, 1.0, 0.0]
    assert acc["stderr"] == pytest.approx((1 / 3) ** 0.5 / 2)  # sample std of (1, 0, 1, 0) / sqrt(4)
    domains = {e["domain"] for e in examples}
    assert {f"gpqa/domain:{d}" for d in domains} | {"gpqa/accuracy"} == metrics.keys()
    assert rows[1]["extracted"] == "a" and rows[1]["correct"] == 0.0
    assert set(rows[0]) == {"id", "record_id", "domain", "answer", "extracted", "correct"} | {
        f"domain:{d}" for d in domains
    }
    assert result.primary == "gpqa/accuracy" and result.columns["gpqa/accuracy"] == "correct"
    with pytest.raises(ValueError, match="8 examples but 1 outputs"):
        gpqa.evaluate(examples, ["x"])


def test_every_metric_is_the_mean_of_its_declared_column(csv_path):
    examples = gpqa.load_gpqa(csv_path, n_repeats=2)
    outputs = [f"Answer: {e['answer']}" if i % 3 else "Answer: Z" for i, e in enumerate(examples)]
    result = gpqa.evaluate(examples, outputs)
    assert set(result.columns) == set(result.metrics)
    for name, column in result.columns.items():
        assert column_mean(result.examples, column) == pytest.approx(result.metrics[name]["value"]), name
    domain = next(n for n in result.columns if "domain:" in n)
    assert column_mean(result.examples, result.columns[domain]) != column_mean(result.examples, "correct")


def test_fixture_has_real_columns(csv_path):
    df = pd.read_csv(csv_path)
    assert list(df.columns) == GPQA_COLUMNS
    for col in [
        "Record ID",
        "High-level domain",
        "Subdomain",
        "Question",
        "Correct Answer",
        "Incorrect Answer 3",
    ]:
        assert col in df.columns
    assert write_gpqa_fixture(csv_path.with_name("b.csv"), n=4, seed=0).read_text() == csv_path.read_text()


def test_loader_errors(tmp_path, csv_path):
    df = pd.read_csv(csv_path)
    df.drop(columns=["Incorrect Answer 2"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(gpqa.GPQAFormatError, match=r"a.csv: missing columns \['Incorrect Answer 2'\]"):
        gpqa.load_gpqa(tmp_path / "a.csv")
    df.loc[2, "Correct Answer"] = ""
    df.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(gpqa.GPQAFormatError, match=r"b.csv: data row 3 .*column 'Correct Answer' is empty"):
        gpqa.load_gpqa(tmp_path / "b.csv")
    with pytest.raises(FileNotFoundError, match="no such file"):
        gpqa.load_gpqa(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="n_repeats"):
        gpqa.load_gpqa(csv_path, n_repeats=0)


def test_hub_offline_error_hides_token(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_do_not_print")
    with pytest.raises(ConnectionError, match="offline") as err:  # conftest sets HF_HUB_OFFLINE=1
        gpqa.load_gpqa("hub")
    assert "hf_secret" not in str(err.value) and err.value.__cause__ is None


def test_hub_gated_error(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    class Gated(GatedRepoError):
        def __init__(self):
            Exception.__init__(self, "403 gated: token hf_secret_do_not_print")

    seen = {}

    def fake_download(repo_id, filename, repo_type, token):
        seen.update(repo_id=repo_id, filename=filename, repo_type=repo_type, token=token)
        raise Gated()

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_do_not_print")
    with pytest.raises(PermissionError, match="gated dataset Idavidrein/gpqa") as err:
        gpqa.load_gpqa("Idavidrein/gpqa")
    assert "hf_secret" not in str(err.value) and err.value.__cause__ is None
    assert seen == {
        "repo_id": "Idavidrein/gpqa",
        "filename": "gpqa_diamond.csv",
        "repo_type": "dataset",
        "token": "hf_secret_do_not_print",
    }


def _train(capsys, monkeypatch, tmp_path, *overrides: str) -> tuple[object, str]:
    import importlib

    from rvpo_repro.train import main

    job = importlib.import_module("rvpo_repro.run.job")  # the module (the package exports a `job` too)

    def started(cfg):
        raise SystemExit("started")  # where a run joins its ranks: the preflight let it through

    monkeypatch.setattr(job, "join_ranks", started)  # the first step after the plan; no weights yet
    where = [f"paths.root_dir={tmp_path}", "logger=disabled", "experiment=rubric_science"]
    try:
        main([*where, *overrides])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


GATED = (
    "rvpo-train: task.gpqa_source=hub: GPQA-Diamond comes from the gated dataset Idavidrein/gpqa: accept "
    "its terms on https://huggingface.co/datasets/Idavidrein/gpqa and set HF_TOKEN to a token of that "
    "account, or set the source to a local gpqa_diamond.csv\n"
)


def test_a_gpqa_run_without_token_or_local_copy_stops_at_its_plan(capsys, monkeypatch, tmp_path, csv_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert _train(capsys, monkeypatch, tmp_path) == (2, GATED)
    assert not (tmp_path / "results").exists()
    monkeypatch.setenv("HF_TOKEN", "hf_secret_do_not_print")
    assert _train(capsys, monkeypatch, tmp_path)[0] == "started"
    monkeypatch.delenv("HF_TOKEN")
    assert _train(capsys, monkeypatch, tmp_path, f"task.gpqa_source={csv_path}")[0] == "started"
    code, err = _train(capsys, monkeypatch, tmp_path, f"task.gpqa_source={tmp_path / 'none.csv'}")
    assert (code, err) == (
        2,
        f"rvpo-train: task.gpqa_source={tmp_path / 'none.csv'}: GPQA source "
        f"'{tmp_path / 'none.csv'}': no such file, and not one of {list(gpqa.HUB_ALIASES)}\n",
    )
    assert _train(capsys, monkeypatch, tmp_path, "task.gpqa_source=fixture")[0] == "started"
    no_gpqa = _train(capsys, monkeypatch, tmp_path, "task.evals=[healthbench]")
    assert no_gpqa[0] == "started"  # a run that does not evaluate GPQA needs no token
