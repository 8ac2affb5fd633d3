from __future__ import annotations

import hashlib
import time

import pytest
import torch
from omegaconf import OmegaConf

from rvpo_repro.models import (
    build_tiny_model,
    ensure_tiny_model,
    load_model,
    load_tokenizer,
    resolve_model_path,
    tiny_model_id,
)
from rvpo_repro.schemas import ModelConfig, TinyModelConfig


def _digests(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    start = time.perf_counter()
    a = build_tiny_model(TinyModelConfig(seed=3), tmp_path / "a")
    assert time.perf_counter() - start < 60  # "seconds", with a wide margin for a loaded CI machine
    b = build_tiny_model(TinyModelConfig(seed=3), tmp_path / "b")
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(_digests(a))
    assert _digests(a) == _digests(b)


def test_other_seed_other_weights_same_tokenizer(tmp_path):
    a = _digests(build_tiny_model(TinyModelConfig(seed=0), tmp_path / "a"))
    b = _digests(build_tiny_model(TinyModelConfig(seed=1), tmp_path / "b"))
    assert a["model.safetensors"] != b["model.safetensors"]
    assert a["tokenizer.json"] == b["tokenizer.json"]


def test_build_leaves_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(TinyModelConfig(seed=0), tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_round_trip_chat_template_and_generate(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Write a line about the river."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<|im_start|>user\nWrite a line about the river.<|im_end|>\n<|im_start|>assistant\n"
    # Byte-level BPE: any text round-trips, digits and unicode included.
    sample = "Rivers 42 – naïve ✓"
    assert tok.decode(tok(sample)["input_ids"]) == sample

    batch = tok([text, text + "Hi"], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=8, do_sample=True)
    assert out.shape[0] == 2 and out.shape[1] > batch["input_ids"].shape[1]

    # save_pretrained / from_pretrained keeps the weights exactly.
    model2_dir = tiny_model_dir.parent / "roundtrip"
    model.save_pretrained(model2_dir)
    model2 = AutoModelForCausalLM.from_pretrained(model2_dir)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), model2.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


def test_ensure_caches_by_config(cache_dir):
    cfg = TinyModelConfig(seed=0)
    first = ensure_tiny_model(cfg, cache_dir)
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(cfg, cache_dir) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert tiny_model_id(TinyModelConfig(seed=1)) != tiny_model_id(cfg)
    assert tiny_model_id(TinyModelConfig(hidden_size=32)) != tiny_model_id(cfg)


def _model_cfg(**kw):
    return OmegaConf.structured(ModelConfig(**kw))


def test_loaders_for_both_sources(cache_dir, tiny_model_dir):
    tiny = _model_cfg(name="tiny", source="tiny")
    assert resolve_model_path(tiny, cache_dir) == str(tiny_model_dir)
    local = _model_cfg(name="local", source="pretrained", path=str(tiny_model_dir))
    model = load_model(local, cache_dir)
    tok = load_tokenizer(local, cache_dir)
    assert model.dtype == torch.float32 and tok.padding_side == "left"


def test_pretrained_hub_id_offline_error_names_model(cache_dir):
    cfg = _model_cfg(name="qwen2.5-7b", source="pretrained", path="Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(OSError, match=r"qwen2\.5-7b.*Qwen/Qwen2\.5-7B-Instruct"):
        load_tokenizer(cfg, cache_dir)


def test_pretrained_without_path_is_an_error(cache_dir):
    with pytest.raises(ValueError, match="needs `path`"):
        resolve_model_path(_model_cfg(name="x", source="pretrained"), cache_dir)
