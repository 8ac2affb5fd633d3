"""The architecture facts a memory plan needs (rvpo_repro.sizing.memory), found for a model group:
the tiny model's own settings, a config.json in a local model directory, or the facts shipped for the
paper's hub models in rvpo_repro/assets/model_shapes.json (with the copies of config.json they were
read from). A model none of them knows has no shape: its plan says so rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SHAPES_FILE = Path(__file__).resolve().parent.parent / "assets" / "model_shapes.json"


@dataclass(frozen=True)
class ModelShape:
    """The architecture facts a memory plan needs (a Qwen2/Llama-style decoder: SwiGLU MLP, RMSNorm,
    grouped-query attention with q/k/v biases)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    source: str = ""  # where the facts were read

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def layer_params(self) -> int:
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with biases; o without
        return attention + 3 * h * self.intermediate_size + 2 * h  # gate, up, down; two norms

    @property
    def params(self) -> int:
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_hidden_layers * self.layer_params + embeddings + self.hidden_size

    @property
    def largest_layer_params(self) -> int:
        """The largest module's own parameters, as DeepSpeed's zero3 estimator counts them."""
        return max(self.vocab_size * self.hidden_size, self.hidden_size * self.intermediate_size)

    def kv_bytes_per_token(self, dtype_bytes: int, tensor_parallel: int = 1) -> int:
        """vLLM's KV cache per token on one rank: keys and values of every layer; KV heads split
        over the tensor parallel ranks (replicated when there are fewer heads than ranks)."""
        heads = max(1, self.num_key_value_heads // tensor_parallel)
        return 2 * self.num_hidden_layers * heads * self.head_dim * dtype_bytes


SHAPE_KEYS = tuple(f for f in ModelShape.__dataclass_fields__ if f != "source")


def _shape(facts: dict, source: str) -> ModelShape:
    facts = {**facts, "tie_word_embeddings": facts.get("tie_word_embeddings", False)}
    facts.setdefault("num_key_value_heads", facts["num_attention_heads"])
    return ModelShape(**{k: facts[k] for k in SHAPE_KEYS}, source=source)


@cache
def shipped_shapes() -> dict[str, dict]:
    return {k: v for k, v in json.loads(SHAPES_FILE.read_text()).items() if not k.startswith("_")}


def _tiny(model: Any) -> ModelShape | None:
    if str(model.source) != "tiny":
        return None
    t = model.tiny
    facts = {k: t[k] for k in SHAPE_KEYS if k in t}
    return _shape(
        {**facts, "tie_word_embeddings": True}, "model.tiny (rvpo_repro.models ties the embeddings)"
    )


def _local_config(model: Any) -> ModelShape | None:
    config = Path(str(model.path or "")).expanduser() / "config.json"
    if not config.is_file():
        return None
    facts = json.loads(config.read_text())
    facts = facts.get("text_config", facts)
    missing = [
        k for k in SHAPE_KEYS if k not in facts and k not in ("tie_word_embeddings", "num_key_value_heads")
    ]
    return None if missing else _shape(facts, str(config))


def shipped_shape(hub_id: str) -> ModelShape | None:
    """The shape shipped for a hub model id (the policy's model.path, the judge's model); None if none."""
    facts = shipped_shapes().get(hub_id)
    return None if facts is None else _shape(facts, f"{SHAPES_FILE.name}: {hub_id}")


def _shipped(model: Any) -> ModelShape | None:
    return shipped_shape(str(model.path or ""))


SHAPE_FINDERS: tuple[Callable[[Any], ModelShape | None], ...] = (_tiny, _local_config, _shipped)


def model_shape(model: Any) -> ModelShape | None:
    """The model group's shape from the first finder that knows it; None when none does."""
    return next((s for find in SHAPE_FINDERS if (s := find(model)) is not None), None)
