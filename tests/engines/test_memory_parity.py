"""The memory plan's copies of the engines' own arithmetic (rvpo_repro.sizing.memory) against the
engines themselves: DeepSpeed's ZeRO model-state estimators and its parameter count of a live model,
vLLM's KV-cache page size. The suite does not depend on DeepSpeed or vLLM, so it reproduces their
formulas; here, where both are installed, they must agree exactly."""

from __future__ import annotations

import itertools

import pytest
import torch
from omegaconf import OmegaConf

from rvpo_repro.sizing import memory, shapes

PARAMS = (107_072, 1_543_714_304, 7_615_616_512, 14_770_033_664)  # tiny, Qwen2.5 1.5B, 7B, 14B
GPUS = (1, 2, 4, 8)
HUB = sorted(shapes.shipped_shapes())


@pytest.mark.parametrize(("params", "gpus", "offload"), list(itertools.product(PARAMS, GPUS, (False, True))))
def test_zero2_estimate_is_deepspeeds(params, gpus, offload):
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    _, gpu = estimate_zero2_model_states_mem_needs(params, num_gpus_per_node=gpus, cpu_offload=offload)
    assert memory.estimate_zero2_gpu_bytes(params, gpus, offload) == gpu


@pytest.mark.parametrize(
    ("params", "gpus", "offload"),
    list(itertools.product(PARAMS, GPUS, [(False, False), (True, False), (True, True)])),
)
def test_zero3_estimate_is_deepspeeds(params, gpus, offload):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    largest = params // 10
    _, gpu, _ = estimate_zero3_model_states_mem_needs(
        params, largest, num_gpus_per_node=gpus, cpu_offload=offload[0], cpu_offload_params=offload[1]
    )
    assert memory.estimate_zero3_gpu_bytes(params, largest, gpus, *offload) == gpu


def test_deepspeed_counts_the_tiny_model_as_the_plan_does(tmp_path):
    """DeepSpeed's own count of a live model (shared embeddings once; the largest module's own
    parameters) equals the plan's count from the model group's settings."""
    from deepspeed.runtime.zero.stage3 import model_to_params
    from transformers import AutoModelForCausalLM

    from rvpo_repro.models import build_tiny_model
    from rvpo_repro.schemas import TinyModelConfig

    tiny = TinyModelConfig()
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tiny, tmp_path / "tiny"))
    shape = shapes.model_shape(OmegaConf.create({"source": "tiny", "tiny": OmegaConf.structured(tiny)}))
    assert model_to_params(model) == (shape.params, shape.largest_layer_params)


@pytest.mark.parametrize(("hub_id", "tp"), list(itertools.product(HUB, (1, 2))))
def test_kv_bytes_per_token_is_vllms_page_size(hub_id, tp):
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    shape = shapes.model_shape(OmegaConf.create({"source": "pretrained", "path": hub_id}))
    block = 16
    spec = FullAttentionSpec(
        block_size=block,
        num_kv_heads=max(1, shape.num_key_value_heads // tp),
        head_size=shape.head_dim,
        dtype=torch.bfloat16,
    )
    per_layer_per_token = spec.page_size_bytes // block
    assert shape.kv_bytes_per_token(2, tp) == shape.num_hidden_layers * per_layer_per_token
