"""The judge interface: requests, results, usage counters and the grading loop every back end shares.

`Judge.grade(requests, parse)` returns one `JudgeResult` per request, in order. The shared loop
deduplicates identical requests (each is judged once per call), serves what it can from the
on-disk cache, hands the rest to the back end's `_judge_many`, caches the successes, counts usage
and logs one INFO line per call. Back ends implement `_judge_many` and `from_config` only.

A result's `value` is what `parse` returned, or None when the judge gave no usable answer
(missing): after retries on transport errors and re-asks on malformed replies. None is never
turned into 0 or 1 here; scoring code decides what a missing verdict means.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from rvpo_repro.judges.cache import JudgeCache
from rvpo_repro.judges.parsing import parse_criteria_met

log = logging.getLogger("rvpo_repro.judges")

Parse = Callable[[str], Any]
PROGRESS_MIN = 256  # show a progress bar when at least this many requests go out


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


def option(cfg: Any, name: str, default: Any) -> Any:
    """`cfg.name`, or `default` when the config (dataclass or DictConfig) has no such field."""
    value = getattr(cfg, name, default)
    return default if value is None and default is not None else value


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
        temperature: float = 0.0,
        max_tokens: int | None = None,
        reask_limit: int = 3,
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
        self.cache = cache
        self.stats = JudgeStats()
        self._stats_lock = threading.Lock()

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> Judge:
        """Build the back end from a `JudgeConfig` (optional fields read with defaults)."""

    @abstractmethod
    async def _judge_many(
        self, requests: Sequence[JudgeRequest], parse: Parse, stats: JudgeStats, tick: Callable[[], None]
    ) -> list[JudgeResult]:
        """Judge distinct, uncached requests; one result each, in order; call `tick()` per result."""

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
            for i, key in enumerate(keys):
                if key in hits:
                    raw, value = hits[key]
                    results[i] = JudgeResult(value=value, raw=raw, attempts=0, cached=True)
            stats.cache_hits = len(hits)
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
        if self.cache is not None and todo:
            rows = [(keys[i], results[i].raw, results[i].value) for i in todo if not results[i].missing]
            await asyncio.to_thread(self.cache.put_many, rows)
        self._log(stats, results)
        return [results[i] for i in order]

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
