"""The judge interface: requests, results, usage counters and the grading loop every back end shares.

`Judge.grade(requests, parse)` returns one `JudgeResult` per request, in order. The shared loop
deduplicates identical requests (each is judged once per call), serves what it can from the
on-disk cache (a row counts only when `parse` of its stored reply gives its stored value, as a
fresh reply is read), asks the back end for the rest, reads each reply with `parse`, asks again those
whose reply `parse` rejects (up to `reask_limit` times; `ask_until_parsed`), caches the successes,
counts usage and logs one INFO line per call. Reply texts pass through `_redact` as they arrive,
so a key a server quotes back is never parsed, cached, logged or recorded.

A result's `value` is what `parse` returned, or None when the judge gave no usable answer
(missing): after the back end's own transport retries and the re-asks here. None is never turned
into 0 or 1; scoring code decides what a missing verdict means.

Writing a back end (see scripted.py for the smallest one):
  - `@register_judge("<name>")` on a `Judge` subclass;
  - `from_config(cls, cfg, cache_dir)`: read settings with `option(cfg, name)`, whose defaults are
    the `JudgeConfig` schema's (the one place judge defaults live);
  - the replies, either `_reply(request, ask) -> str` (one text at a time: rule-based or scripted
    judges) or `_send(requests, ask, stats)`, an async generator yielding `(index, Reply)` as
    replies arrive (batched or concurrent back ends; a `Reply` carrying an `error` is recorded as
    missing without a re-ask, as transport failures are retried by the back end itself).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from rvpo_repro.judges.cache import JudgeCache
from rvpo_repro.judges.parsing import parse_criteria_met
from rvpo_repro.schemas import JudgeConfig

log = logging.getLogger("rvpo_repro.judges")

Parse = Callable[[str], Any]
PROGRESS_MIN = 256  # show a progress bar when at least this many requests go out
DEFAULTS = JudgeConfig()  # every judge setting's default, from the schema
_SCHEMA = object()


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: a chat as a tuple of (role, content) pairs; hashable, so duplicates collapse."""

    messages: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("JudgeRequest needs at least one message")
        for i, pair in enumerate(self.messages):
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise TypeError(
                    f"JudgeRequest message {i} must be a (role, content) pair of str, got {pair!r}"
                )

    @classmethod
    def from_messages(cls, messages: Iterable[dict]) -> JudgeRequest:
        """From OpenAI-style [{"role": ..., "content": ...}, ...]."""
        return cls(tuple((str(m["role"]), str(m["content"])) for m in messages))

    def to_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class JudgeResult:
    """value: the parsed verdict, None = missing; raw: the last reply text; attempts: model calls made."""

    value: Any = None
    raw: str | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass
class JudgeStats:
    """Usage counters; `judge.stats` accumulates them over the judge's life."""

    grade_calls: int = 0
    requests: int = 0  # requests passed to grade, duplicates included
    unique: int = 0  # distinct requests among them
    cache_hits: int = 0
    sent: int = 0  # model calls: HTTP attempts or generated sequences, retries and re-asks included
    retries: int = 0  # transport-level repeats (timeouts, 429, 5xx, connection errors)
    reasks: int = 0  # repeats because the reply did not parse
    failures: int = 0  # unique requests whose result is missing
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, other: JudgeStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def option(cfg: Any, name: str, default: Any = _SCHEMA) -> Any:
    """`cfg.name`, or its default when the config (dataclass, DictConfig, namespace) has no such
    field or holds None there; the default is the `JudgeConfig` schema's unless one is given."""
    if default is _SCHEMA:
        default = getattr(DEFAULTS, name)  # an unknown setting name fails here
    value = getattr(cfg, name, default)
    return default if value is None and default is not None else value


@dataclass(frozen=True)
class Reply:
    """A back end's answer to one request: the reply text, or an `error` when its transport gave
    up (then recorded as missing, not re-asked); `attempts`: model calls made, retries included."""

    text: str | None
    error: str | None = None
    attempts: int = 1


def parse_name(parse: Parse) -> str:
    """Stable name of a parse function, part of the cache key (use named functions, not lambdas)."""
    name = getattr(parse, "cache_name", None) or getattr(parse, "__qualname__", None)
    return f"{getattr(parse, '__module__', '?')}.{name or type(parse).__qualname__}"


def run_sync(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="judge") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


class Judge(ABC):
    """Base of every back end; see the module docstring for what the shared loop does."""

    backend: ClassVar[str] = "?"

    def __init__(
        self,
        *,
        model: str,
        temperature: float = DEFAULTS.temperature,
        max_tokens: int | None = DEFAULTS.max_tokens,
        reask_limit: int = DEFAULTS.reask_limit,
        cache: JudgeCache | None = None,
        model_id: str | None = None,
    ):
        if reask_limit < 0:
            raise ValueError(f"reask_limit must be >= 0, got {reask_limit}")
        self.model = model
        self.model_id = model_id or model  # what identifies the weights in the cache key
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.reask_limit = int(reask_limit)
        # the system turn graders put before their prompt (HealthBench); None = none. Set from
        # the config by `make_judge`; requests carry it themselves, so it is part of the cache key.
        self.system_message: str | None = DEFAULTS.system_message
        self.cache = cache
        self.stats = JudgeStats()
        self.first_error: str | None = None  # why the judge's first missing verdict is missing
        self._stats_lock = threading.Lock()

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> Judge:
        """Build the back end from a `JudgeConfig` (optional fields read with defaults)."""

    def _reply(self, request: JudgeRequest, ask: int) -> str:
        """One reply text for `request` (`ask`: 0, then 1, 2 ... on re-asks); or override `_send`."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _reply nor _send")

    async def _send(
        self, requests: Sequence[JudgeRequest], ask: int, stats: JudgeStats
    ) -> AsyncIterator[tuple[int, Reply]]:
        """`(index into requests, Reply)` for every request, in any order (as replies arrive)."""
        for i, request in enumerate(requests):
            yield i, Reply(self._reply(request, ask))

    def _asks(self) -> int:
        """How many times a request may be asked in all (1 + re-asks of malformed replies)."""
        return self.reask_limit + 1

    def _redact(self, text: str) -> str:
        """Scrub secrets from an error text (back ends holding a key override this)."""
        return text

    async def _judge_many(
        self, requests: Sequence[JudgeRequest], parse: Parse, stats: JudgeStats, tick: Callable[[], None]
    ) -> list[JudgeResult]:
        """Judge distinct, uncached requests; one result each, in order; call `tick()` per result."""
        return await self.ask_until_parsed(requests, parse, stats, tick, self._send)

    async def ask_until_parsed(
        self,
        requests: Sequence[JudgeRequest],
        parse: Parse,
        stats: JudgeStats,
        tick: Callable[[], None],
        send: Callable[[Sequence[JudgeRequest], int, JudgeStats], AsyncIterator[tuple[int, Reply]]],
    ) -> list[JudgeResult]:
        """The one re-ask loop: send every request, read each reply with `parse`, send again those
        it rejects (ValueError or None) in the next round, up to `_asks()` rounds; what is left
        is missing (value None, the last reply and why in `error`), never 0 or 1."""
        n = len(requests)
        results: list[JudgeResult | None] = [None] * n
        attempts, last = [0] * n, [Reply(None)] * n
        errors: list[str | None] = [None] * n
        pending = list(range(n))
        for ask in range(self._asks()):
            if not pending:
                break
            if ask:
                stats.reasks += len(pending)
            seen, still = 0, []
            async with contextlib.aclosing(send([requests[i] for i in pending], ask, stats)) as replies:
                async for j, reply in replies:
                    i, seen = pending[j], seen + 1
                    if reply.text is not None:  # a server may quote the key back: never cached or logged
                        reply = Reply(self._redact(reply.text), reply.error, reply.attempts)
                    attempts[i] += reply.attempts
                    stats.sent += reply.attempts
                    last[i] = reply
                    if reply.error is not None:  # the transport gave up: missing, not re-asked
                        results[i] = JudgeResult(None, reply.text, self._redact(reply.error), attempts[i])
                        tick()
                        continue
                    try:
                        value = parse(reply.text if reply.text is not None else "")
                        why = "parse returned None"
                    except ValueError as exc:
                        value, why = None, str(exc)
                    if value is None:
                        errors[i] = self._redact(f"malformed judge reply after {ask + 1} asks: {why}")
                        still.append(i)
                        continue
                    results[i] = JudgeResult(value=value, raw=reply.text, attempts=attempts[i])
                    tick()
            if seen != len(pending):
                raise RuntimeError(f"judge back end {self.backend!r} replied {seen} times to {len(pending)}")
            pending = sorted(still)
        for i in pending:
            results[i] = JudgeResult(None, last[i].text, errors[i], attempts[i])
            tick()
        return results

    # ------------------------------------------------------------------ shared loop

    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def cache_key(self, request: JudgeRequest, parse: Parse) -> str:
        payload = {
            "backend": self.backend,
            "model": self.model_id,
            "messages": request.messages,
            "sampling": self.sampling(),
            "parse": parse_name(parse),
        }
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def grade(self, requests: Sequence[JudgeRequest], parse: Parse = parse_criteria_met) -> list[JudgeResult]:
        """Judge every request (sync; safe to call from a thread whose event loop is running)."""
        requests = list(requests)
        return run_sync(lambda: self.agrade(requests, parse))

    async def agrade(
        self, requests: Sequence[JudgeRequest], parse: Parse = parse_criteria_met
    ) -> list[JudgeResult]:
        start = time.perf_counter()
        stats = JudgeStats(grade_calls=1, requests=len(requests))
        index: dict[JudgeRequest, int] = {}
        order = [index.setdefault(req, len(index)) for req in requests]
        unique = list(index)
        stats.unique = len(unique)
        results: list[JudgeResult | None] = [None] * len(unique)
        keys = [self.cache_key(req, parse) for req in unique] if self.cache is not None else []
        if self.cache is not None and unique:
            hits = await asyncio.to_thread(self.cache.get_many, keys)
            rejected = []
            for i, key in enumerate(keys):
                if key not in hits:
                    continue
                raw, stored = hits[key]
                value = self._cached_verdict(raw, stored, parse)
                if value is None:
                    rejected.append(stored)
                    continue
                results[i] = JudgeResult(value=value, raw=raw, attempts=0, cached=True)
                stats.cache_hits += 1
            if rejected:
                log.warning(
                    "judge cache %s: %d rows hold a verdict their reply does not parse to (first: %r); "
                    "asked again",
                    self.cache.path,
                    len(rejected),
                    rejected[0],
                )
        todo = [i for i, r in enumerate(results) if r is None]
        try:
            if todo:
                fresh = await self._with_progress(todo, unique, parse, stats)
                for i, res in zip(todo, fresh, strict=True):
                    results[i] = res
        finally:
            stats.failures = sum(r is not None and r.missing for r in results)
            stats.seconds = time.perf_counter() - start
            with self._stats_lock:
                self.stats.add(stats)
                if self.first_error is None and stats.failures:
                    self.first_error = next(r.error for r in results if r is not None and r.missing)
        if self.cache is not None and todo:
            rows = [(keys[i], results[i].raw, results[i].value) for i in todo if not results[i].missing]
            await asyncio.to_thread(self.cache.put_many, rows)
        self._log(stats, results)
        return [results[i] for i in order]

    @staticmethod
    def _cached_verdict(raw: str | None, value: Any, parse: Parse) -> Any:
        """A cached row's verdict, read as a fresh reply is: `parse` of its stored reply text, which
        must give the stored value (compared as JSON, as it was stored). Else None (no usable text,
        or a value edited or written by other code, such as "no" for a boolean): asked again."""
        try:
            fresh = parse(raw if raw is not None else "")
            same = fresh is not None and json.dumps(fresh, sort_keys=True) == json.dumps(
                value, sort_keys=True
            )
        except (TypeError, ValueError):
            return None
        return fresh if same else None

    async def _with_progress(self, todo, unique, parse, stats) -> list[JudgeResult]:
        from rvpo_repro import progress

        with progress.bar(
            total=len(todo), desc=f"judge[{self.backend}]", unit="req", disable=len(todo) < PROGRESS_MIN
        ) as bar:
            out = await self._judge_many([unique[i] for i in todo], parse, stats, lambda: bar.update(1))
        if len(out) != len(todo):
            raise RuntimeError(f"judge back end {self.backend!r} returned {len(out)} results for {len(todo)}")
        return out

    def _log(self, stats: JudgeStats, results: Sequence[JudgeResult | None]) -> None:
        log.info(
            "judge %s/%s: %d requests (%d unique), %d cache hits, %d sent, %d retries, %d re-asks, "
            "%d missing, tokens %d prompt + %d completion, %.2f s",
            self.backend,
            self.model,
            stats.requests,
            stats.unique,
            stats.cache_hits,
            stats.sent,
            stats.retries,
            stats.reasks,
            stats.failures,
            stats.prompt_tokens,
            stats.completion_tokens,
            stats.seconds,
        )
        if stats.failures:
            first = next(r for r in results if r is not None and r.missing)
            log.warning(
                "judge %s: %d verdicts missing; first error: %s", self.backend, stats.failures, first.error
            )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_stats_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stats_lock = threading.Lock()

    def close(self) -> None:  # noqa: B027  (an optional hook; most back ends hold nothing)
        """Release resources (models, connections); the judge is unusable afterwards."""

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        return f"{type(self).__name__}(model={self.model!r}, temperature={self.temperature}, cache={cache})"
