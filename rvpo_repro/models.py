"""Model configs -> weights and tokenizer.

Two sources, chosen by `model.source` through a registry:
    pretrained  a hub id (e.g. Qwen/Qwen2.5-7B-Instruct) or a local directory
    tiny        a small random-weight Qwen2ForCausalLM with a byte-level BPE tokenizer trained on
                text the suite ships, built offline and deterministically from a seed, saved once
                under the cache directory and reused (same config and seed -> same bytes)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rvpo_repro.schemas import ModelConfig, ModelSource, TinyModelConfig

# Bump when the tiny builder changes, so cached builds of an older recipe are not reused.
TINY_BUILDER_VERSION = 1

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]

# ChatML, as the Qwen2.5 instruct models use it (without their default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_corpus() -> str:
    return resources.files("rvpo_repro.assets").joinpath("tiny_corpus.txt").read_text(encoding="utf-8")


def tiny_model_id(cfg: TinyModelConfig) -> str:
    """Directory name of a tiny build: a digest of its shape, seed, corpus and builder version."""
    payload = json.dumps(
        {"cfg": _plain(cfg), "builder": TINY_BUILDER_VERSION, "corpus": tiny_corpus()}, sort_keys=True
    )
    return f"tiny-qwen2-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _plain(cfg: Any) -> dict:
    """A dataclass or OmegaConf node as a plain dict."""
    if is_dataclass(cfg):
        return asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def build_tiny_tokenizer(vocab_size: int):
    """Train a byte-level BPE tokenizer on the shipped corpus; returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus().splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD_TOKEN, unk_token=None, bos_token=None
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def build_tiny_model(cfg: TinyModelConfig, out_dir: str | os.PathLike) -> Path:
    """Build the tiny model and tokenizer from `cfg.seed` and save them to `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer(cfg.vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )
    # Fork the global RNG: weight init draws from it, and the caller's stream must not move.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=True
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def ensure_tiny_model(cfg: TinyModelConfig, cache_dir: str | os.PathLike) -> Path:
    """Return the cached tiny build for `cfg`, building it first (atomically) when missing."""
    final = Path(cache_dir) / "models" / tiny_model_id(cfg)
    if (final / "config.json").exists():
        return final
    if _not_rank_zero():
        return _wait_for(final / "config.json", TINY_WAIT_S)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        build_tiny_model(cfg, tmp)
        try:
            tmp.rename(final)
        except OSError:  # a concurrent job finished the same build first; its bytes are identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# Once torch.distributed is up, transformers' save_pretrained writes weights on rank 0 only: the
# other ranks of a job wait for rank 0's build rather than publish one without weights.
TINY_WAIT_S = 600.0


def _not_rank_zero() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


def _wait_for(path: Path, timeout_s: float) -> Path:
    import time

    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{path} did not appear within {timeout_s:.0f} s (rank 0 builds the tiny model)"
            )
        time.sleep(0.2)
    return path.parent


def _resolve_tiny(cfg: ModelConfig, cache_dir: str | os.PathLike) -> str:
    return str(ensure_tiny_model(cfg.tiny, cache_dir))


def _resolve_pretrained(cfg: ModelConfig, cache_dir: str | os.PathLike) -> str:
    if not cfg.path:
        raise ValueError(
            f"model '{cfg.name}': source=pretrained needs `path` (a hub id or a local directory)"
        )
    return cfg.path


MODEL_SOURCES: dict[str, Callable[[ModelConfig, Any], str]] = {
    ModelSource.tiny.value: _resolve_tiny,
    ModelSource.pretrained.value: _resolve_pretrained,
}


def resolve_model_path(cfg: ModelConfig | Any, cache_dir: str | os.PathLike) -> str:
    """Return a path or hub id that `from_pretrained` accepts for this model config."""
    source = getattr(cfg.source, "value", cfg.source)
    if source not in MODEL_SOURCES:
        raise ValueError(f"unknown model source {source!r}; expected one of {sorted(MODEL_SOURCES)}")
    return MODEL_SOURCES[source](cfg, cache_dir)


def load_tokenizer(cfg: ModelConfig | Any, cache_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg, cache_dir)
    with _offline_hint(cfg, path):
        tok = AutoTokenizer.from_pretrained(path, revision=cfg.revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


# model.dtype is the one place a run's precision is set. Training keeps fp32 master weights and
# computes in the half type: bf16 autocast under DDP, DeepSpeed's bf16 mode under ZeRO (its optimizer
# holds fp32 copies). Pure bf16 weights would lose updates: a 1e-6 AdamW step is below bf16's
# resolution for most weights, which then never move.
HALF_PRECISION_ARGS: dict[str, dict[str, bool]] = {
    "float32": {"bf16": False, "fp16": False},
    "bfloat16": {"bf16": True, "fp16": False},
    "float16": {"bf16": False, "fp16": True},
}


def precision_args(cfg: ModelConfig | Any) -> dict[str, bool]:
    """TrainingArguments' bf16/fp16 for `model.dtype` (autocast, or DeepSpeed's bf16/fp16 mode)."""
    if cfg.dtype not in HALF_PRECISION_ARGS:
        raise ValueError(f"model.dtype={cfg.dtype!r}: expected one of {sorted(HALF_PRECISION_ARGS)}")
    return dict(HALF_PRECISION_ARGS[cfg.dtype])


def load_model(cfg: ModelConfig | Any, cache_dir: str | os.PathLike, training: bool = True):
    """The policy. For training its weights are fp32 (the master copy) whatever `model.dtype`
    says, and under ZeRO-3 every rank loads it together (DeepSpeed's zero.Init shards it as it
    loads). `training=False` (evaluation) loads it in `model.dtype`, whole, in this process alone:
    one rank may call it while the others wait."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(cfg, cache_dir)
    dtype = torch.float32 if training else getattr(torch, cfg.dtype)
    kwargs: dict[str, Any] = {"revision": cfg.revision, "dtype": dtype}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    alone = contextlib.nullcontext() if training else _without_zero3_init()
    with _offline_hint(cfg, path), alone:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)


@contextlib.contextmanager
def _without_zero3_init():
    """transformers loads every model through zero.Init (a collective over all ranks) while a
    ZeRO-3 config is registered, i.e. after a ZeRO-3 trainer was built; a load by one rank alone
    would then wait for the others forever. Unregister it for the load, then restore it."""
    try:
        from transformers.integrations import deepspeed as hf_ds
    except ImportError:  # transformers without its DeepSpeed integration: nothing registered
        yield
        return
    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


class _offline_hint:
    """Re-raise a failed hub lookup with the model name, the id, and what to do offline."""

    def __init__(self, cfg: Any, path: str):
        self.cfg, self.path = cfg, path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, OSError) or Path(self.path).exists():
            return False
        raise OSError(
            f"model '{self.cfg.name}': cannot load {self.path!r}; it is neither a local directory nor in the "
            "Hugging Face cache (HF_HUB_OFFLINE="
            f"{os.environ.get('HF_HUB_OFFLINE', '0')}). Download it on a connected machine "
            "(`huggingface-cli download ...`) or set model.path to a local copy."
        ) from exc
