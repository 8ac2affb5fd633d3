"""`openai` back end: any OpenAI-compatible chat-completions endpoint (OpenAI, a local `vllm serve`).

Requests go through the `openai` package's AsyncOpenAI with its own retries off (max_retries=0):
the retries here are the only ones, and they are counted. Per request:
  - at most `max_concurrency` requests are in flight (one asyncio.Semaphore per grade call; a
    request waiting out a backoff does not hold a slot);
  - each HTTP attempt is bounded by `timeout_s` (the client's timeout and an asyncio deadline);
  - timeouts, connection errors, 408/409/429/5xx and unreadable bodies are retried up to
    `max_retries` times with exponential backoff and equal jitter, seeded per request
    (min(backoff_max_s, backoff_base_s * 2**k), a 429's Retry-After raising it up to that cap);
    other statuses (400, 401, 404 ...) fail the request at once;
  - a reply `parse` rejects is asked again (the same messages; useful at temperature > 0, as the
    HealthBench grader's 0.5) up to `reask_limit` times, then recorded as missing.
So one request ends after at most (reask_limit + 1) * (max_retries + 1) attempts, each at most
`timeout_s`, plus backoffs: grading never hangs.

The API key is read from the environment variable named by `api_key_env` when the judge is built;
it is kept out of repr, logs, errors (scrubbed), stats and the cache, and a pickled judge re-reads
it from the environment. Without the variable a dummy key is used when `base_url` is set (local
servers need none); without both, construction fails.

The request goes out with `client.post("/chat/completions", ...)` and the JSON is read directly:
that skips the typed request/response models, which on a 2-core machine cost more CPU than the
HTTP exchange itself. aiohttp is the transport when installed (openai's DefaultAioHttpClient).
httpx's per-request INFO lines are kept at WARNING unless its logger was configured.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from rvpo_repro.judges.base import Judge, JudgeRequest, JudgeResult, JudgeStats, Parse, option
from rvpo_repro.judges.registry import cache_from_config, register_judge

RETRY_STATUSES = frozenset({408, 409, 429})
DUMMY_KEY = "EMPTY"  # what `vllm serve` documents for clients when it was started without --api-key


class ApiKey:
    """The key's value, masked in repr; pickles as the variable's name, not the value."""

    __slots__ = ("env", "_value")

    def __init__(self, env: str, value: str):
        self.env, self._value = env, value

    @classmethod
    def from_env(cls, env: str, allow_dummy: bool) -> ApiKey:
        value = os.environ.get(env, "")
        if not value:
            if not allow_dummy:
                raise ValueError(
                    f"judge backend 'openai': environment variable {env!r} (judge.api_key_env) is not set; "
                    "export the API key there, or set judge.base_url to a local server that needs no key"
                )
            value = DUMMY_KEY
        return cls(env, value)

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "<redacted>") if self._value != DUMMY_KEY else text

    def __reduce__(self):
        return (ApiKey.from_env, (self.env, True))

    def __repr__(self) -> str:
        return f"ApiKey(env={self.env!r}, value=<redacted>)"


def _http_module():
    try:
        import httpx2 as httpx
    except ImportError:  # openai < 3 builds on httpx
        import httpx
    return httpx


@register_judge("openai")
class OpenAIJudge(Judge):
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int | None = None,
        max_concurrency: int = 16,
        max_retries: int = 4,
        timeout_s: float = 60.0,
        reask_limit: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        seed: int = 0,
        transport: str = "auto",
        cache=None,
    ):
        if not model:
            raise ValueError("judge backend 'openai' needs judge.model (e.g. gpt-4.1)")
        for name, value, low in [("max_concurrency", max_concurrency, 1), ("max_retries", max_retries, 0)]:
            if value < low:
                raise ValueError(f"judge.{name} must be >= {low}, got {value}")
        if timeout_s <= 0:
            raise ValueError(f"judge.timeout_s must be > 0, got {timeout_s}")
        if transport not in {"auto", "aiohttp", "httpx"}:
            raise ValueError(f"judge transport must be auto, aiohttp or httpx, got {transport!r}")
        super().__init__(
            model=model, temperature=temperature, max_tokens=max_tokens, reask_limit=reask_limit, cache=cache
        )
        self.base_url = base_url
        self.api_key_env = api_key_env
        self._key = ApiKey.from_env(api_key_env, allow_dummy=base_url is not None)
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.timeout_s = float(timeout_s)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.seed = int(seed)
        self.transport = transport
        _quiet_transport_loggers()

    @classmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> OpenAIJudge:
        return cls(
            model=option(cfg, "model", ""),
            base_url=option(cfg, "base_url", None) or None,
            api_key_env=option(cfg, "api_key_env", "OPENAI_API_KEY"),
            temperature=option(cfg, "temperature", 0.0),
            max_tokens=option(cfg, "max_tokens", None),
            max_concurrency=option(cfg, "max_concurrency", 16),
            max_retries=option(cfg, "max_retries", 4),
            timeout_s=option(cfg, "timeout_s", 60.0),
            reask_limit=option(cfg, "reask_limit", 3),
            backoff_base_s=option(cfg, "backoff_base_s", 0.5),
            backoff_max_s=option(cfg, "backoff_max_s", 30.0),
            seed=option(cfg, "seed", 0),
            transport=option(cfg, "transport", "auto"),
            cache=cache_from_config(cfg),
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, "
            f"temperature={self.temperature}, max_concurrency={self.max_concurrency}, "
            f"cache={None if self.cache is None else str(self.cache.path)!r})"
        )

    # ------------------------------------------------------------------ requests

    def _client(self):
        """A fresh AsyncOpenAI for one grade call (its connections belong to that call's event loop)."""
        import openai

        http_client = None
        if self.transport in {"auto", "aiohttp"}:
            try:
                http_client = openai.DefaultAioHttpClient(timeout=self.timeout_s, verify=_ssl_context())
            except (RuntimeError, AttributeError):  # aiohttp is not installed
                if self.transport == "aiohttp":
                    raise
        if http_client is None:
            http_client = openai.DefaultAsyncHttpxClient(timeout=self.timeout_s, verify=_ssl_context())
        return openai.AsyncOpenAI(
            api_key=self._key.reveal(),
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout_s,
            http_client=http_client,
        )

    async def _judge_many(
        self, requests: Sequence[JudgeRequest], parse: Parse, stats: JudgeStats, tick: Callable[[], None]
    ) -> list[JudgeResult]:
        sem = asyncio.Semaphore(self.max_concurrency)
        async with self._client() as client:

            async def one(req: JudgeRequest) -> JudgeResult:
                try:
                    return await self._judge_one(client, sem, req, parse, stats)
                finally:
                    tick()

            async with asyncio.TaskGroup() as group:  # a parse bug (not ValueError) cancels the rest
                tasks = [group.create_task(one(r)) for r in requests]
            return [t.result() for t in tasks]

    async def _judge_one(
        self, client, sem, req: JudgeRequest, parse: Parse, stats: JudgeStats
    ) -> JudgeResult:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": req.to_messages(),
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = int(self.max_tokens)
        attempts, raw, error = 0, None, None
        for ask in range(self.reask_limit + 1):
            if ask:
                stats.reasks += 1
            raw, error, n = await self._complete(client, sem, body, req, ask, stats)
            attempts += n
            if error is not None:
                return JudgeResult(value=None, raw=raw, error=error, attempts=attempts)
            try:
                value = parse(raw if raw is not None else "")
            except ValueError as exc:
                error = self._key.redact(f"malformed judge reply after {ask + 1} asks: {exc}")
                continue
            if value is None:
                error = "parse returned None"
                continue
            return JudgeResult(value=value, raw=raw, attempts=attempts)
        return JudgeResult(value=None, raw=raw, error=error, attempts=attempts)

    async def _complete(self, client, sem, body, req, ask, stats) -> tuple[str | None, str | None, int]:
        """(reply text, None, attempts) or (None, error, attempts) after the retries are spent."""
        import openai

        httpx = _http_module()
        last, retry_after = "no attempt", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                stats.retries += 1
                await asyncio.sleep(self._backoff(req, ask, attempt, retry_after))
                retry_after = None
            stats.sent += 1
            try:
                async with sem:
                    async with asyncio.timeout(self.timeout_s + 1.0):
                        resp = await client.post("/chat/completions", body=body, cast_to=httpx.Response)
                data = json.loads(resp.content)
                text = data["choices"][0]["message"].get("content")
                usage = data.get("usage") or {}
                stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                stats.completion_tokens += int(usage.get("completion_tokens") or 0)
                return text, None, attempt + 1
            except (TimeoutError, openai.APITimeoutError) as exc:
                cause = exc.__cause__  # the aiohttp transport reports a refused connect as a timeout
                detail = f" ({type(cause).__name__}: {cause})" if cause is not None and str(cause) else ""
                last = self._key.redact(f"timed out (limit {self.timeout_s:g} s){detail}")
            except openai.APIStatusError as exc:
                last = self._key.redact(f"HTTP {exc.status_code}: {exc.message}")
                if not (exc.status_code in RETRY_STATUSES or exc.status_code >= 500):
                    return None, last, attempt + 1
                retry_after = _retry_after(exc.response.headers)
            except openai.APIConnectionError as exc:
                last = self._key.redact(f"connection error: {type(exc).__name__}: {exc}")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                last = f"unreadable response body ({type(exc).__name__}: {exc})"
        return (
            None,
            f"gave up after {self.max_retries + 1} attempts; last error: {last}",
            self.max_retries + 1,
        )

    def _backoff(self, req: JudgeRequest, ask: int, attempt: int, retry_after: float | None) -> float:
        """Equal-jitter exponential delay, seeded by (seed, request, ask, attempt)."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        digest = hashlib.sha256(repr(req.messages).encode()).hexdigest()[:16]
        rng = random.Random(f"{self.seed}:{digest}:{ask}:{attempt}")
        delay = cap / 2 + rng.uniform(0, cap / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay


@functools.lru_cache(maxsize=1)
def _ssl_context():
    """One TLS context per process (loading the CA bundle takes ~0.1 s; a grade call makes a client)."""
    return _http_module().create_ssl_context()


def _quiet_transport_loggers() -> None:
    """httpx logs every request at INFO (thousands a step); keep them at WARNING unless configured."""
    for name in ("httpx2", "httpx"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
