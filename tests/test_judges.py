"""Judges against a real OpenAI-compatible HTTP server on loopback (tests/helpers/judge_server.py).

The server scripts each request's fate from its content (see judge_server's docstring): verdicts,
429/5xx, timeouts, malformed replies. Every grade call runs under `bounded`, so a hang fails the
test instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.judge_server import directive

from rvpo_repro.config import validate
from rvpo_repro.judges import (
    JUDGES,
    JudgeCache,
    JudgeRequest,
    JudgeResult,
    make_judge,
    parse_criteria_met,
    register_judge,
)
from rvpo_repro.judges.base import Judge, option
from rvpo_repro.judges.hf_judge import HFJudge
from rvpo_repro.judges.openai_judge import OpenAIJudge
from rvpo_repro.schemas import JudgeConfig

LIMIT_S = 20.0  # no single grade call in this file may take longer
SECRET = "sk-test-LEAKCHECK-8f3a9c2e71d04b56"


def bounded(fn, limit: float = LIMIT_S):
    """Run fn() in a daemon thread; fail (instead of hanging) when it takes longer than `limit`."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"judge call did not finish within {limit} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def judge_for(srv, **kw) -> OpenAIJudge:
    opts = dict(model="judge-test", base_url=srv.base_url, api_key_env="RVPO_TEST_NO_SUCH_KEY")
    opts |= dict(timeout_s=2.0, max_retries=3, reask_limit=2, backoff_base_s=0.01, backoff_max_s=0.05)
    return OpenAIJudge(**(opts | kw))


def req(text: str, **script) -> JudgeRequest:
    content = f"{text} {directive(**script)}" if script else text
    return JudgeRequest.from_messages([{"role": "user", "content": content}])


# ------------------------------------------------------------------ parsing and types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"explanation": "ok", "criteria_met": true}', True),
        ('```json\n{"explanation": "no", "criteria_met": false}\n```', False),
        ('Sure.\n```json\n{"explanation": "x", "criteria_met": true}\n```\nHope that helps.', True),
        ('My grading: {"explanation": "has {braces} inside", "criteria_met": false} -- end', False),
        ('```\n{"criteria_met": true, "explanation": "unlabelled fence"}\n```', True),
    ],
)
def test_parse_criteria_met_accepts(text, expected):
    assert parse_criteria_met(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The criterion is met.",
        '{"explanation": "x", "criteria_met": "true"}',
        '{"explanation": "x", "criteria_met": 1}',
        '{"explanation": "x", "criteria_met": null}',
        '{"explanation": "x"}',
        '{"explanation": "x", "criteria_met": tru',
        '{"criteria_met": true} and also {"criteria_met": false}',
    ],
)
def test_parse_criteria_met_rejects(text):
    with pytest.raises(ValueError):
        parse_criteria_met(text)


def test_request_is_hashable_and_round_trips():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    a, b = JudgeRequest.from_messages(msgs), JudgeRequest.from_messages(msgs)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.to_messages() == msgs
    with pytest.raises(AttributeError):
        a.messages = ()
    with pytest.raises(ValueError):
        JudgeRequest(())
    with pytest.raises(TypeError):
        JudgeRequest((("user", 3),))


# ------------------------------------------------------------------ openai back end


def test_verdicts_follow_the_script(srv):
    reqs = [req(f"item {i}", verdict=i % 3 == 0) for i in range(12)]
    reqs += [req(f"fenced {i}", verdict=i % 2 == 0, script=["fence"]) for i in range(4)]
    judge = judge_for(srv)
    results = bounded(lambda: judge.grade(reqs))
    assert [r.value for r in results] == [i % 3 == 0 for i in range(12)] + [True, False, True, False]
    assert all(r.error is None and r.attempts == 1 and not r.cached for r in results)
    assert all(json.loads(r.raw)["criteria_met"] == r.value for r in results[:12])
    assert srv.total == 16
    s = judge.stats
    assert (s.requests, s.unique, s.sent, s.retries, s.reasks, s.failures) == (16, 16, 16, 0, 0, 0)
    assert s.prompt_tokens > 0 and s.completion_tokens > 0


def test_httpx_transport_gives_the_same_verdicts(srv):
    reqs = [req(f"transport {i}", verdict=i % 2 == 0, script=["500"]) for i in range(4)]
    judge = judge_for(srv, transport="httpx")
    assert [r.value for r in bounded(lambda: judge.grade(reqs))] == [True, False, True, False]
    assert judge.stats.retries == 4


def test_transient_errors_are_retried_and_counted(srv):
    reqs = [
        req("flaky a", verdict=True, script=["429", "500", "503"]),
        req("flaky b", verdict=False, script=["500"]),
        req("bad body", verdict=True, script=["badbody"]),
        req("steady", verdict=True),
    ]
    judge = judge_for(srv, max_retries=3)
    results = bounded(lambda: judge.grade(reqs))
    assert [r.value for r in results] == [True, False, True, True]
    assert [r.attempts for r in results] == [4, 2, 2, 1]
    assert judge.stats.retries == 3 + 1 + 1 and judge.stats.sent == 9 and srv.total == 9


def test_retries_exhausted_or_client_error_is_missing(srv):
    reqs = [req("down", script=["500"] * 9), req("bad request", script=["400"])]
    judge = judge_for(srv, max_retries=2)
    down, bad = bounded(lambda: judge.grade(reqs))
    assert down.value is None and down.attempts == 3 and "HTTP 500" in down.error and "gave up" in down.error
    assert bad.value is None and bad.attempts == 1 and "HTTP 400" in bad.error  # not retried
    assert judge.stats.failures == 2 and judge.stats.retries == 2


def test_unreachable_server_is_missing_not_hanging():
    with socket.socket() as sock:  # a port that nobody listens on once this socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = OpenAIJudge(
        model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key_env="RVPO_TEST_NO_SUCH_KEY", timeout_s=1.0
    )
    judge.max_retries, judge.backoff_base_s, judge.backoff_max_s = 2, 0.01, 0.02
    (result,) = bounded(lambda: judge.grade([req("nobody home")]))
    assert result.value is None and result.attempts == 3 and "connect" in result.error.lower()


def test_malformed_replies_are_reasked_then_missing(srv):
    fixed = req("fixed", verdict=False, script=["malformed", "stringbool"])
    empty = req("empty", verdict=True, script=["empty"])
    hopeless = req("hopeless", verdict=True, then="malformed")
    judge = judge_for(srv, reask_limit=2)
    r_fixed, r_empty, r_hopeless = bounded(lambda: judge.grade([fixed, empty, hopeless]))
    assert r_fixed.value is False and r_fixed.attempts == 3 and r_fixed.error is None
    assert r_empty.value is True and r_empty.attempts == 2
    assert r_hopeless.value is None and r_hopeless.missing  # missing, never 0 or 1
    assert r_hopeless.attempts == 3 and "malformed" in r_hopeless.error and "criteria_met" in r_hopeless.error
    assert r_hopeless.raw.startswith("I believe")
    assert judge.stats.reasks == 2 + 1 + 2 and judge.stats.failures == 1


def test_timeouts_are_retried_then_missing(srv):
    slow_once = req("slow once", verdict=True, script=["sleep"], sleep_s=3.0)
    always_slow = req("always slow", verdict=True, then="sleep", sleep_s=3.0)
    judge = judge_for(srv, timeout_s=0.3, max_retries=1)
    start = time.perf_counter()
    once, never = bounded(lambda: judge.grade([slow_once, always_slow]))
    elapsed = time.perf_counter() - start
    assert once.value is True and once.attempts == 2
    assert never.value is None and never.attempts == 2 and "timed out" in never.error
    assert elapsed < 2.0, "two 0.3 s attempts plus a short backoff, not the server's 3 s"


def test_duplicates_in_a_batch_are_sent_once(srv):
    distinct = [req(f"dup {i}", verdict=i == 1) for i in range(3)]
    batch = [distinct[i % 3] for i in range(30)]
    judge = judge_for(srv)
    results = bounded(lambda: judge.grade(batch))
    assert srv.total == 3 and max(srv.logic.attempts.values()) == 1
    assert [r.value for r in results] == [i % 3 == 1 for i in range(30)]
    assert judge.stats.requests == 30 and judge.stats.unique == 3 and judge.stats.sent == 3


def test_concurrency_is_bounded(srv):
    srv.logic.latency = 0.05
    judge = judge_for(srv, max_concurrency=4, model="concurrency-test")
    results = bounded(lambda: judge.grade([req(f"conc {i}") for i in range(24)]))
    assert all(r.value is not None for r in results)
    assert srv.logic.max_inflight["concurrency-test"] == 4


def test_cache_serves_a_second_judge_without_requests(srv, tmp_path):
    path = tmp_path / "judge.sqlite"
    reqs = [req(f"cached {i}", verdict=i % 2 == 0) for i in range(10)] + [req("never", then="malformed")]
    first = judge_for(srv, cache=JudgeCache(path))
    r1 = bounded(lambda: first.grade(reqs))
    assert srv.total == 10 + 3  # the hopeless one: 1 ask + 2 re-asks
    srv.logic.reset()
    second = judge_for(srv, cache=JudgeCache(path))  # another instance (as another run would)
    r2 = bounded(lambda: second.grade(reqs[:10]))
    assert srv.total == 0 and second.stats.cache_hits == 10 and second.stats.sent == 0
    assert [r.value for r in r2] == [r.value for r in r1[:10]]
    assert all(r.cached and r.attempts == 0 and r.raw == a.raw for r, a in zip(r2, r1, strict=False))
    assert len(JudgeCache(path)) == 10, "missing verdicts are not cached"
    bounded(lambda: second.grade(reqs[10:]))
    assert srv.total == 3, "a failed request is asked again in a later pass"
    hotter = judge_for(srv, cache=JudgeCache(path), temperature=0.7)
    bounded(lambda: hotter.grade(reqs[:2]))
    assert hotter.stats.cache_hits == 0, "sampling settings are part of the key"


def test_cache_is_safe_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    JudgeCache(path)
    code = textwrap.dedent(
        """
        import sys
        from rvpo_repro.judges.cache import JudgeCache
        cache, tag = JudgeCache(sys.argv[1]), sys.argv[2]
        for start in range(0, 300, 20):
            cache.put_many([(f"{tag}-{i}", "raw", {"i": i}) for i in range(start, start + 20)])
            cache.get_many([f"a-{i}" for i in range(50)])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), tag]) for tag in "ab"]
    assert [p.wait(timeout=LIMIT_S) for p in procs] == [0, 0]
    cache = JudgeCache(path)
    assert len(cache) == 600 and cache.get_many(["b-299"]) == {"b-299": ("raw", {"i": 299})}


def test_grade_inside_a_running_event_loop(srv):
    judge = judge_for(srv)
    reqs = [req("in loop", verdict=True)]

    async def training_step():  # a caller whose thread already runs a loop (as TRL may)
        sync = judge.grade(reqs)
        native = await judge.agrade(reqs)
        return sync, native

    sync, native = bounded(lambda: asyncio.run(training_step()))
    assert sync[0].value is True and native[0].value is True


def test_backoff_is_seeded_and_capped(srv):
    judge = judge_for(srv, backoff_base_s=0.5, backoff_max_s=4.0, seed=3)
    r = req("backoff")
    delays = [judge._backoff(r, 0, k, None) for k in range(1, 8)]
    assert delays == [judge._backoff(r, 0, k, None) for k in range(1, 8)]
    assert 0.25 <= delays[0] <= 0.5 and all(2.0 <= d <= 4.0 for d in delays[4:])
    assert judge._backoff(r, 0, 1, retry_after=2.5) == 2.5
    assert judge._backoff(r, 0, 1, retry_after=600) == 4.0
    other = judge_for(srv, backoff_base_s=0.5, backoff_max_s=4.0, seed=4)
    assert other._backoff(r, 0, 3, None) != delays[2]


def test_one_info_line_per_grade_call(srv, caplog):
    judge = judge_for(srv)
    with caplog.at_level(logging.INFO, logger="rvpo_repro.judges"):
        bounded(lambda: judge.grade([req("log a"), req("log a"), req("log b")]))
    lines = [r for r in caplog.records if r.name == "rvpo_repro.judges" and r.levelno == logging.INFO]
    assert len(lines) == 1 and "3 requests (2 unique)" in lines[0].getMessage()
    bounded(lambda: judge.grade([req("log a")]))
    assert (judge.stats.grade_calls, judge.stats.requests, judge.stats.sent) == (2, 4, 3)


def test_api_key_never_leaks(srv, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    cfg = JudgeConfig(
        backend="openai",
        model="judge-test",
        base_url=srv.base_url,
        timeout_s=0.3,
        max_retries=1,
        cache_path=str(tmp_path / "c.sqlite"),
    )
    judge = make_judge(cfg)
    judge.backoff_base_s = judge.backoff_max_s = 0.01
    reqs = [
        req("echo", script=["401echo"]),
        req("fails", then="500"),
        req("times out", then="sleep", sleep_s=2.0),
        req("junk", then="malformed"),
        req("fine", verdict=True),
    ]
    with caplog.at_level(logging.DEBUG):  # every logger, openai's and the transport's included
        results = bounded(lambda: judge.grade(reqs))
    assert srv.logic.last_authorization == f"Bearer {SECRET}", "the key is sent to the server"
    assert "Incorrect API key provided: Bearer <redacted>" in results[0].error
    assert [r.value is None for r in results] == [True, True, True, True, False]
    texts = {
        "logs": caplog.text + "".join(repr(r.args) for r in caplog.records),
        "repr": repr(judge) + str(vars(judge)),
        "results": repr(results),
        "stats": repr(judge.stats),
        "cache": (tmp_path / "c.sqlite").read_bytes().decode("latin-1"),
        "pickle": pickle.dumps(judge).decode("latin-1"),
    }
    for where, text in texts.items():
        assert SECRET not in text, f"API key leaked into {where}"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated")
    assert pickle.loads(pickle.dumps(judge))._key.reveal() == "sk-rotated", "re-read from the environment"


def test_missing_key_without_base_url_is_an_error(monkeypatch):
    monkeypatch.delenv("RVPO_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="RVPO_TEST_NO_SUCH_KEY"):
        OpenAIJudge(model="gpt-4.1", api_key_env="RVPO_TEST_NO_SUCH_KEY")
    local = OpenAIJudge(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="RVPO_TEST_NO_SUCH_KEY")
    assert local._key.reveal() == "EMPTY"


# ------------------------------------------------------------------ factory, configs, other back ends


def test_make_judge_registry_and_errors():
    assert make_judge(JudgeConfig()) is None
    with pytest.raises(ValueError, match=r"unknown judge backend 'gpt'.*'hf'.*'none'.*'openai'.*'scripted'"):
        make_judge(JudgeConfig(backend="gpt"))
    with pytest.raises(ValueError, match="already registered"):
        register_judge("openai")(type("Other", (), {}))
    assert {"openai", "hf", "scripted"} <= set(JUDGES)


@pytest.mark.parametrize("option", ["openai", "vllm_local", "hf_tiny"])
def test_judge_configs_compose_and_build(option, monkeypatch, cache_dir, compose_cfg):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    cfg = compose_cfg(f"judge={option}")
    validate(cfg)
    judge = make_judge(cfg.judge, cache_dir=cache_dir)
    assert judge.backend == cfg.judge.backend and SECRET not in repr(judge)
    if option == "openai":
        assert (judge.model, judge.temperature, judge.base_url) == ("gpt-4.1-2025-04-14", 0.5, None)
        assert str(judge.cache.path).startswith(str(cache_dir))
    if option == "vllm_local":
        assert judge.base_url == "http://127.0.0.1:8001/v1" and judge._key.reveal() == "EMPTY"
    if option == "hf_tiny":
        assert Path(judge.model_path).parent.parent == Path(cache_dir) and judge.cache is None


def test_scripted_judge_is_deterministic_and_caches(tmp_path):
    cfg = replace(JudgeConfig(backend="scripted"), cache_path=str(tmp_path / "s.sqlite"))
    reqs = [req(f"s {i}") for i in range(40)]
    a = make_judge(cfg).grade(reqs)
    b = make_judge(cfg)
    again = b.grade(reqs)
    assert [r.value for r in a] == [r.value for r in again] and {r.value for r in a} == {True, False}
    assert b.stats.cache_hits == 40 and b.stats.sent == 0
    flaky = iter(["nonsense", '{"criteria_met": true}'])
    retried = JUDGES["scripted"](lambda r: next(flaky), reask_limit=1).grade([req("x")])
    assert retried[0] == JudgeResult(value=True, raw='{"criteria_met": true}', attempts=2)


def test_hf_judge_on_the_tiny_model_records_missing(tiny_model_dir):
    judge = HFJudge(
        model="tiny", model_path=str(tiny_model_dir), temperature=1.0, max_tokens=12, reask_limit=1
    )
    reqs = [req(f"hf {i}") for i in range(3)] + [req("hf 0")]
    results = bounded(lambda: judge.grade(reqs), limit=60)
    assert len(results) == 4 and results[3] == results[0]
    for r in results:
        assert isinstance(r, JudgeResult) and isinstance(r.raw, str)
        assert (r.value is None) == (r.error is not None)
    s = judge.stats
    assert s.unique == 3 and s.sent == 3 + s.reasks and s.prompt_tokens > 0
    assert judge.model_id == Path(tiny_model_dir).name


def test_a_back_end_needs_only_from_config_and_reply():
    """The smallest back end: settings through `option` (schema defaults), one reply text per ask."""

    class Echo(Judge):
        @classmethod
        def from_config(cls, cfg, cache_dir=None):
            return cls(model=option(cfg, "model") or "echo", reask_limit=option(cfg, "reask_limit"))

        def _reply(self, request, ask):
            return request.messages[-1][1] if ask else "not json"

    judge = Echo.from_config(types.SimpleNamespace())
    assert judge.reask_limit == JudgeConfig().reask_limit and judge.temperature == JudgeConfig().temperature
    ok = JudgeRequest.from_messages([{"role": "user", "content": '{"criteria_met": true}'}])
    assert judge.grade([ok]) == [JudgeResult(value=True, raw='{"criteria_met": true}', attempts=2)]
    assert (judge.stats.sent, judge.stats.reasks, judge.stats.failures) == (2, 1, 0)
    (missing,) = Echo.from_config(types.SimpleNamespace(reask_limit=0)).grade([ok])
    assert missing.value is None and missing.attempts == 1 and "malformed" in missing.error


def test_stopping_the_server_ends_the_answers_it_still_owes(caplog, monkeypatch):
    """An answer pending at stop (the client timed out) ends with the server's loop, not as an
    asyncio "Task was destroyed" error that the garbage collector logs inside some later test."""
    import gc
    import urllib.request

    from helpers.judge_server import ScriptedChatServer

    owed = {"role": "user", "content": "owed " + directive(then="sleep", sleep_s=30.0)}
    body = json.dumps({"model": "m", "messages": [owed]}).encode()
    failures: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    with ScriptedChatServer():  # nothing owed: the stop has nothing to gather
        pass
    with ScriptedChatServer() as server:
        post = urllib.request.Request(f"{server.base_url}/chat/completions", data=body)
        with pytest.raises(TimeoutError):
            urllib.request.urlopen(post, timeout=0.5)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
    assert failures == []
