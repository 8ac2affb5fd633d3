"""`hf` back end: a local transformers causal LM, batched generation through its chat template.

`model` is a hub id or local directory, or "tiny": the suite's offline random-weight model
(`rvpo_repro.models.ensure_tiny_model(TinyModelConfig(), cache_dir)`), whose replies are noise, so
its verdicts come out missing; that exercises the plumbing, not the grading. Generation reuses
`rvpo_repro.generation.generate_hf` (left padding, seeded, greedy at temperature 0). Replies that
do not parse are generated again with the next seed up to `reask_limit` times, only when
sampling (at temperature 0 a re-ask would repeat the same text). Token counts are the prompt's
and the reply's token lengths. Generation runs in a worker thread, so `agrade` does not block an
event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rvpo_repro.judges.base import DEFAULTS, Judge, JudgeRequest, JudgeStats, Reply, option
from rvpo_repro.judges.registry import cache_from_config, register_judge

TINY = "tiny"
MAX_TOKENS = 256  # the reply budget when judge.max_tokens is None


@register_judge("hf")
class HFJudge(Judge):
    def __init__(
        self,
        *,
        model: str,
        model_path: str | None = None,
        temperature: float = DEFAULTS.temperature,
        max_tokens: int | None = DEFAULTS.max_tokens,
        batch_size: int = DEFAULTS.batch_size,
        reask_limit: int = DEFAULTS.reask_limit,
        seed: int = DEFAULTS.seed,
        device: str | None = DEFAULTS.device,
        dtype: str = DEFAULTS.dtype,
        cache=None,
    ):
        path = model_path or model
        if not path:
            raise ValueError("judge backend 'hf' needs judge.model (a hub id, a directory, or 'tiny')")
        model_id = Path(path).name if model == TINY else model  # the tiny build's digest names its weights
        super().__init__(
            model=model,
            temperature=temperature,
            max_tokens=max_tokens or MAX_TOKENS,
            reask_limit=reask_limit,
            cache=cache,
            model_id=model_id,
        )
        self.model_path = path
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = device
        self.dtype = dtype
        self._loaded: tuple[Any, Any] | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any, cache_dir: str | None = None) -> HFJudge:
        model = option(cfg, "model")
        path = None
        if model == TINY:
            from rvpo_repro.models import ensure_tiny_model
            from rvpo_repro.schemas import TinyModelConfig

            path = str(ensure_tiny_model(TinyModelConfig(), cache_dir or ".cache"))
        names = ("temperature", "max_tokens", "batch_size", "reask_limit", "seed", "device", "dtype")
        settings = {name: option(cfg, name) for name in names}
        return cls(model=model, model_path=path, **settings, cache=cache_from_config(cfg))

    def _load(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._loaded is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
                tok = AutoTokenizer.from_pretrained(self.model_path)
                if tok.pad_token is None:
                    tok.pad_token = tok.eos_token
                lm = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype))
                self._loaded = (lm.to(device).eval(), tok)
            return self._loaded

    def close(self) -> None:
        self._loaded = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_load_lock", None)
        state["_loaded"] = None  # reloaded on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._load_lock = threading.Lock()

    def _asks(self) -> int:
        return self.reask_limit + 1 if self.temperature > 0 else 1  # greedy would repeat itself

    async def _send(self, requests: Sequence[JudgeRequest], ask: int, stats: JudgeStats):
        texts = await asyncio.to_thread(self._generate, requests, self.seed + ask, stats)
        for i, text in enumerate(texts):
            yield i, Reply(text)

    def _generate(self, requests: Sequence[JudgeRequest], seed: int, stats: JudgeStats) -> list[str]:
        from rvpo_repro.generation import GenerationSettings, generate_hf

        lm, tok = self._load()
        prompts = [r.to_messages() for r in requests]
        settings = GenerationSettings(
            max_new_tokens=int(self.max_tokens),
            temperature=self.temperature,
            batch_size=self.batch_size,
            seed=seed,
        )
        texts = [group[0] for group in generate_hf(lm, tok, prompts, settings)]
        # Count from the rendered text: apply_chat_template(tokenize=True) returns a dict in transformers 5.
        rendered = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        stats.prompt_tokens += sum(len(ids) for ids in tok(rendered, add_special_tokens=False)["input_ids"])
        stats.completion_tokens += sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
        return texts

    def __repr__(self) -> str:
        return (
            f"HFJudge(model={self.model!r}, path={self.model_path!r}, temperature={self.temperature}, "
            f"batch_size={self.batch_size})"
        )
