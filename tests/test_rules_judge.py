"""The rules judge: criteria checked on the text, both request formats, seeded failures, the shared loop."""

from __future__ import annotations

import pytest

from rvpo_repro.evals import healthbench
from rvpo_repro.judges import make_judge
from rvpo_repro.judges.rules import RulesJudge, check, split_request
from rvpo_repro.schemas import JudgeConfig
from rvpo_repro.tasks.rubric import item_request


@pytest.mark.parametrize(
    "criterion, text, met",
    [
        ("The response contains the letter 'q'.", "A quiet sea", True),
        ("The response contains the letter 'q'.", "A calm sea", False),
        ("The response contains the word 'the'.", "There is the moon", True),
        ("The response contains the word 'the'.", "There is a moon", False),  # 'There' is not 'the'
        ("The response contains a digit.", "3 lakes", True),
        ("The response contains a digit.", "three lakes", False),
        ("The response contains a comma.", "rain, then sun", True),
        ("The response starts with a capital letter.", "  Rain falls", True),
        ("The response starts with a capital letter.", "rain falls", False),
        ("The response ends with a period.", "Rain falls. ", True),
        ("The response ends with a period.", "Rain falls", False),
        ("The response is at most 3 words long.", "one two three", True),
        ("The response is at most 3 words long.", "one two three four", False),
        ("The response is at least 2 words long.", "one", False),
        ("Pitfall Criteria: The response contains the letter 'z'.", "zebra", True),  # the thing happened
        ("[-3] The response contains the letter 'z'.", "a cat", False),
    ],
)
def test_rules(criterion, text, met):
    assert check(text, criterion) is met


def test_unknown_criterion_is_an_error_naming_it():
    with pytest.raises(ValueError, match="explains the mechanism"):
        check("text", "The response explains the mechanism.")


def test_both_request_formats_split_into_response_and_criterion():
    req = item_request("Write a line about the sea.", "The sea, 3 ships.", "The response contains a digit.")
    assert split_request(req) == ("The sea, 3 ships.", "The response contains a digit.")
    example = {
        "prompt": [{"role": "user", "content": "Write a line about the sea."}],
        "rubrics": [{"criterion": "The response contains a comma.", "points": 2, "tags": []}],
    }
    (req,) = healthbench.judge_requests(example, "The sea, 3 ships.")
    assert split_request(req) == ("The sea, 3 ships.", "[2] The response contains a comma.")


def test_verdicts_through_the_shared_loop_and_cache(tmp_path):
    cfg = JudgeConfig(backend="rules", cache_path=str(tmp_path / "j.sqlite"))
    judge = make_judge(cfg)
    assert isinstance(judge, RulesJudge)
    reqs = [
        item_request("q", "The sea.", "The response ends with a period."),
        item_request("q", "The sea", "The response ends with a period."),
    ]
    assert [r.value for r in judge.grade(reqs)] == [True, False]
    again = make_judge(cfg).grade(reqs)
    assert [r.value for r in again] == [True, False] and all(r.cached for r in again)


def test_failures_are_seeded_per_request_and_counted_missing():
    reqs = [item_request("q", f"reply {i}", "The response contains a digit.") for i in range(2000)]
    a = RulesJudge(failure_rate=0.2, seed=1).grade(reqs)
    b = RulesJudge(failure_rate=0.2, seed=1).grade(list(reversed(reqs)))[::-1]
    missing = [r.missing for r in a]
    assert missing == [r.missing for r in b]  # order of arrival does not matter
    assert 0.15 < sum(missing) / len(reqs) < 0.25
    assert all(r.value is True for r, m in zip(a, missing, strict=True) if not m)  # "reply i" has a digit
    other_seed = [r.missing for r in RulesJudge(failure_rate=0.2, seed=2).grade(reqs)]
    assert other_seed != missing
    # re-asks draw a fresh coin: 0.2 ** 3 of verdicts stay missing
    judge = RulesJudge(failure_rate=0.2, seed=1, reask_limit=2)
    res = judge.grade(reqs)
    assert sum(r.missing for r in res) < 0.03 * len(reqs) and judge.stats.reasks > 0.15 * len(reqs)
