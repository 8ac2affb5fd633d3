"""Judge faults: a cache row is read as a fresh reply is, an unreadable cache is set aside in one
line, and a key a server quotes back never reaches the cache, the logs or the results."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.judge_server import directive  # noqa: E402

from rvpo_repro.judges import JudgeCache, JudgeRequest  # noqa: E402
from rvpo_repro.judges.openai_judge import OpenAIJudge  # noqa: E402

pytestmark = pytest.mark.faults
SECRET = "sk-test-QUOTED-3b9d1e07c5a24f68"


def judge(srv, cache: JudgeCache, **kw) -> OpenAIJudge:
    opts = dict(model="judge-test", base_url=srv.base_url, api_key_env="RVPO_TEST_NO_SUCH_KEY", timeout_s=5.0,
                max_retries=1, reask_limit=1, backoff_base_s=0.01, backoff_max_s=0.02)  # fmt: skip
    return OpenAIJudge(**(opts | kw), cache=cache)


def req(text: str, **script) -> JudgeRequest:
    return JudgeRequest.from_messages([{"role": "user", "content": f"{text} {directive(**script)}"}])


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute("SELECT key, raw, value FROM judgments ORDER BY key").fetchall()


def _set(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(sql)
    con.close()


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("""UPDATE judgments SET value = '"no"'""", "a string where the verdict is a boolean"),
        ("UPDATE judgments SET value = 'true'", "a value its reply does not give"),
        ("UPDATE judgments SET raw = NULL", "no reply text to read"),
        ("""UPDATE judgments SET raw = 'criteria met: yes'""", "a reply the parser rejects"),
    ],
    ids=["string-no", "flipped", "no-raw", "unparsable-raw"],
)
def test_a_cached_verdict_is_read_as_a_fresh_one(srv, tmp_path, caplog, sql, why):
    path = tmp_path / "judge.sqlite"
    requests = [req("one", verdict=False), req("two", verdict=False)]
    first = judge(srv, JudgeCache(path)).grade(requests)
    assert [r.value for r in first] == [False, False] and srv.total == 2
    _set(path, sql)
    second = judge(srv, JudgeCache(path))
    with caplog.at_level(logging.WARNING, logger="rvpo_repro.judges"):
        results = second.grade(requests)
    assert [r.value for r in results] == [False, False], why  # never a met item
    assert second.stats.cache_hits == 0 and srv.total == 4  # both asked again
    assert [json.loads(v) for _, _, v in _rows(path)] == [False, False]  # and the rows rewritten
    lines = [r.getMessage() for r in caplog.records if "asked again" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0] and "2 rows" in lines[0]


def test_a_valid_cached_verdict_is_still_served(srv, tmp_path):
    path = tmp_path / "judge.sqlite"
    judge(srv, JudgeCache(path)).grade([req("kept", verdict=True)])
    again = judge(srv, JudgeCache(path))
    assert [r.value for r in again.grade([req("kept", verdict=True)])] == [True]
    assert again.stats.cache_hits == 1 and srv.total == 1


def _full_cache(path: Path, n: int = 3000) -> None:
    cache = JudgeCache(path)
    cache.put_many((f"key-{i:05d}", '{"criteria_met": true}' + "x" * 200, True) for i in range(n))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"this is not an SQLite file at all\n" * 40),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(p.read_bytes()[:100]),
        lambda p: p.write_bytes(p.read_bytes()[:4096] + b"\x00\xff" * 8192 + p.read_bytes()[20480:]),
    ],
    ids=["garbage", "truncated-half", "truncated-header", "garbage-pages"],
)
def test_an_unreadable_cache_is_named_set_aside_and_started_afresh(srv, tmp_path, caplog, damage):
    path = tmp_path / "judge.sqlite"
    _full_cache(path)
    damage(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="rvpo_repro.judges"):
        cache = JudgeCache(path)
        results = judge(srv, cache).grade([req("after", verdict=True)])
    assert [r.value for r in results] == [True] and srv.total == 1  # judged, not read from the damage
    assert len(cache) == 1  # a fresh cache in its place, and used
    aside = list(tmp_path.glob("judge.sqlite.unreadable-*"))
    assert [p.name for p in aside] == [cache.set_aside.name] and aside[0].read_bytes() == damaged  # kept
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0] and aside[0].name in lines[0] and "\n" not in lines[0]


def test_a_cache_damaged_while_open_is_set_aside_at_the_next_read(srv, tmp_path, caplog):
    path = tmp_path / "judge.sqlite"
    cache = JudgeCache(path)
    judge(srv, cache).grade([req("before", verdict=True)])
    path.write_bytes(b"overwritten by something else" * 100)
    with caplog.at_level(logging.WARNING, logger="rvpo_repro.judges"):
        results = judge(srv, cache).grade([req("before", verdict=True)])
    assert [r.value for r in results] == [True] and srv.total == 2
    assert cache.set_aside is not None and cache.set_aside.exists() and len(cache) == 1


def test_a_key_quoted_back_by_the_server_is_redacted_before_cache_and_logs(
    srv, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("RVPO_TEST_QUOTED_KEY", SECRET)
    path = tmp_path / "judge.sqlite"
    j = judge(srv, JudgeCache(path), api_key_env="RVPO_TEST_QUOTED_KEY")
    requests = [req("quoted", verdict=True, then="okecho"), req("refused", script=["401echo"])]
    with caplog.at_level(logging.DEBUG):
        results = j.grade(requests)
    assert srv.logic.last_authorization == f"Bearer {SECRET}"  # the key did go out
    assert results[0].value is True and "Bearer <redacted>" in results[0].raw
    assert results[1].value is None and "Bearer <redacted>" in results[1].error
    cached = _rows(path)
    assert len(cached) == 1 and "<redacted>" in cached[0][1]
    again = judge(srv, JudgeCache(path), api_key_env="RVPO_TEST_QUOTED_KEY")
    assert again.grade(requests[:1])[0].value is True and again.stats.cache_hits == 1  # still usable
    texts = {
        "results": repr(results),
        "logs": caplog.text + "".join(repr(r.args) for r in caplog.records),
        "cache": b"".join(p.read_bytes() for p in tmp_path.iterdir()).decode("latin-1"),
    }
    for where, text in texts.items():
        assert SECRET not in text, f"the key reached {where}"
