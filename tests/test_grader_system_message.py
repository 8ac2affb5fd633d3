"""`eval_judge.system_message` reaches the HealthBench grader over HTTP, and the record states the
message actually sent (a loopback OpenAI-compatible server, tests/judge_server.py)."""

from __future__ import annotations

import json

import pytest

try:  # the scripted server's home moves to tests/helpers/
    from helpers.judge_server import ScriptedChatServer, request_key
except ImportError:
    from judge_server import ScriptedChatServer, request_key

from rvpo_repro.config import compose
from rvpo_repro.evals import healthbench, healthbench_grader
from rvpo_repro.judges import make_judge
from rvpo_repro.judges.scripted import ScriptedJudge
from rvpo_repro.run.task import eval_judge
from rvpo_repro.tasks import get_task
from rvpo_repro.tasks.rubric import RubricTaskConfig

CUSTOM = "You grade clinical answers for a hospital audit; be exacting."


def _task(tmp_path, grader):
    cfg = RubricTaskConfig(
        source="fixture", evals=["healthbench"], healthbench_source="fixture", grader_template="builtin"
    )
    return get_task(cfg, judge=ScriptedJudge(), cache_dir=str(tmp_path), eval_judge=grader)


@pytest.mark.parametrize("system", [CUSTOM, None], ids=["custom", "none"])
def test_configured_system_message_is_sent_and_recorded(tmp_path, monkeypatch, system):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedChatServer() as srv:
        overrides = [
            "eval_judge.model=grader-under-test",
            f"eval_judge.base_url={srv.base_url}",
            "eval_judge.cache_path=null",
            "eval_judge.max_retries=0",
            f"eval_judge.system_message={json.dumps(system) if system else 'null'}",
            f"paths.cache_dir={tmp_path}",
        ]
        cfg = compose(overrides)
        grader = eval_judge(cfg)  # as the run builds it (lazily)
        assert grader is not None
        task = _task(tmp_path, grader)
        data = task.build(tokenizer=None, seed=0)
        replies = [f"reply {i}" for i in range(len(data.eval_dataset))]
        result = task.evaluate(data.eval_dataset, [[r] for r in replies], tokenizer=None)
        received = set(srv.logic.attempts)
    examples = [json.loads(s) for s in data.eval_dataset["example_json"]]
    template = healthbench_grader.load_grader_template("builtin", str(tmp_path))
    expected = {
        request_key(req.to_messages())
        for ex, reply in zip(examples, replies, strict=True)
        for req in healthbench.judge_requests(ex, reply, template, system)
    }
    assert received == expected  # exactly these message lists went over the wire
    info = result.metrics["healthbench/score"]["grader"]
    assert info["system_message"] == system and info["model"] == "grader-under-test"
    assert not info["comparable"]  # not simple-evals' message (nor model)


def test_simple_evals_default_is_what_the_config_says():
    judge = make_judge(compose(["eval_judge.base_url=http://127.0.0.1:9/v1"]).eval_judge)
    assert judge.system_message == "You are a helpful assistant."  # conf/eval_judge/simple_evals.yaml
    other = make_judge(
        compose(["eval_judge.base_url=http://127.0.0.1:9/v1", "eval_judge.system_message=x"]).eval_judge
    )
    assert other.system_message == "x"
