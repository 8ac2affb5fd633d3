"""Generation for evaluation, behind one interface with two back ends.

    hf    transformers `generate`, batched; works on CPU
    vllm  vLLM's offline `LLM.generate`; needs the `gpu` extra and a CUDA device
    auto  vllm when both are present, else hf

Training generation is TRL's own (`trainer.use_vllm` switches it to vLLM on GPU).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rvpo_repro import progress

Messages = list[dict[str, str]]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1  # completions per prompt
    batch_size: int = 64  # prompts per forward batch (hf)
    seed: int = 0

    @classmethod
    def of_run(cls, cfg: Any) -> GenerationSettings:
        """The settings of a composed run config: its `eval` group, with the completion cap of
        training when `eval.max_new_tokens` is unset and the task's samples per prompt."""
        e = cfg.eval
        return cls(
            max_new_tokens=e.max_new_tokens or cfg.trainer.max_completion_length,
            temperature=e.temperature,
            top_p=e.top_p,
            num_samples=getattr(cfg.get("task"), "eval_samples", 1),
            batch_size=e.batch_size,
            seed=e.seed,
        )


def generate_hf(
    model: Any, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    """Sample `s.num_samples` completions per chat prompt with `model.generate`; greedy at temperature 0."""
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    tokenizer.padding_side = "left"
    sampling = s.temperature > 0
    out: list[list[str]] = []
    device = next(model.parameters()).device
    model.eval()
    bar = progress.bar(total=len(texts), desc="generate", unit="prompt")
    with bar, torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(s.seed)
        for start in range(0, len(texts), s.batch_size):
            batch = tokenizer(texts[start : start + s.batch_size], return_tensors="pt", padding=True).to(
                device
            )
            with torch.inference_mode():
                ids = model.generate(
                    **batch,
                    max_new_tokens=s.max_new_tokens,
                    do_sample=sampling,
                    temperature=s.temperature if sampling else None,
                    top_p=s.top_p if sampling else None,
                    top_k=None,
                    num_return_sequences=s.num_samples,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(new[i : i + s.num_samples] for i in range(0, len(new), s.num_samples))
            bar.update(len(new) // s.num_samples)
    return out


def generate_vllm(
    model_path: str, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, seed=s.seed)
    params = SamplingParams(
        n=s.num_samples, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=s.seed
    )
    results = llm.chat(prompts, params, use_tqdm=True)
    return [[o.text for o in r.outputs] for r in results]


def vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


BACKENDS: dict[str, Callable[..., list[list[str]]]] = {"hf": generate_hf, "vllm": generate_vllm}


def pick_backend(name: str) -> str:
    if name == "auto":
        return "vllm" if vllm_usable() else "hf"
    if name not in BACKENDS:
        raise ValueError(
            f"unknown generation backend {name!r}; expected one of {sorted(BACKENDS) + ['auto']}"
        )
    if name == "vllm" and not vllm_usable():
        raise RuntimeError(
            "generation backend 'vllm' needs the `gpu` extra (pip install -e '.[gpu]') and a GPU"
        )
    return name


def generate(
    backend: str, model: Any, model_path: str, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    """Generate with the chosen back end; `model` serves hf, `model_path` serves vllm."""
    name = pick_backend(backend)
    if name == "vllm":
        return generate_vllm(model_path, tokenizer, prompts, s)
    return generate_hf(model, tokenizer, prompts, s)
