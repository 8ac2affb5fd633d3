"""The memory plan (rvpo_repro.sizing.memory): each rank's peak memory by component from the composed
config, held against model.gpu_memory_gb before a run or a sweep starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rvpo_repro.config import ConfigError, compose, grpo_kwargs, validate
from rvpo_repro.sizing import shapes
from rvpo_repro.sizing.memory import GB, check_memory, gpu_shortfall, plan_memory
from rvpo_repro.sizing.shapes import model_shape

ROOT = Path(__file__).resolve().parents[1]

# The paper's models: "Number of Parameters" of their hub model cards, and the card's last digit.
CARD_PARAMS = {
    "Qwen/Qwen2.5-1.5B-Instruct": (1.54e9, 0.01e9),
    "Qwen/Qwen2.5-3B-Instruct": (3.09e9, 0.01e9),
    "Qwen/Qwen2.5-7B-Instruct": (7.61e9, 0.01e9),
    "Qwen/Qwen2.5-14B-Instruct": (14.7e9, 0.1e9),
}


@pytest.mark.parametrize("hub_id", sorted(CARD_PARAMS))
def test_shipped_shapes_count_the_parameters_transformers_builds(hub_id):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = model_shape(OmegaConf.create({"source": "pretrained", "path": hub_id}))
    assert shape is not None and hub_id in shape.source
    config = Qwen2Config(**{k: getattr(shape, k) for k in shapes.SHAPE_KEYS})
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    assert shape.params == model.num_parameters()  # tied embeddings counted once, as transformers does
    card, digit = CARD_PARAMS[hub_id]
    assert abs(shape.params - card) < digit
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    assert shape.largest_layer_params == largest  # what DeepSpeed's zero3 estimator reads from a live model


def test_plan_of_a_small_config_by_hand():
    """The tiny model (vocab 512, hidden 64, MLP 128, 2 layers, 4 heads, 2 KV heads of 16, tied) under
    ZeRO-3 on 2 GPUs in bf16, checkpointed, KL on, colocated vLLM at TP 2 asleep in half of 10 GB."""
    cfg = compose(
        [
            "model=tiny", "model.num_gpus=2", "model.accelerate=zero3", "model.dtype=bfloat16",
            "model.gradient_checkpointing=true", "model.per_device_train_batch_size=4",
            "model.vllm_tensor_parallel_size=2", "model.vllm_enable_sleep_mode=true",
            "model.vllm_gpu_memory_utilization=0.5", "model.gpu_memory_gb=10",
            "trainer.beta=0.5", "trainer.max_completion_length=32", "trainer.use_vllm=true",
        ]
    )  # fmt: skip
    plan = plan_memory(cfg)
    # params: layer = q 64*64+64 + k,v 2*(64*32+32) + o 64*64 + MLP 3*64*128 + norms 2*64 = 37120;
    # 2 layers + embedding 512*64 (tied) + final norm 64 = 107072
    assert model_shape(cfg.model).params == 107072
    parts = {p.key: p for p in plan.parts}
    assert parts["policy"].training == 4 * 32768 + 18 * 107072 // 2  # DeepSpeed ZeRO-3: 4 x largest + 18P/N
    assert parts["reference"].training == 2 * 107072 / 2  # bf16, sharded over 2
    # tokens 4 x (1024 assumed prompt + 32); a layer keeps per token: norms 2*(4+2)*64 = 768,
    # attention 2*(2*64 + 2*32) + 4*4 = 400, MLP 4*2*128 = 1024 -> 2192 bytes
    assert parts["activations"].training == 2 * 4224 * 64 * 2 + 4224 * 2192
    # 128 completion tokens: fp32 weight grad 4*512*64 + fp32 hidden grad 4*128*64 + hidden 2*128*64
    # + one tile 128 x 32768 x 2
    assert parts["lm_head"].training == 131072 + 32768 + 16384 + 128 * 32768 * 2
    assert (parts["vllm"].training, parts["vllm"].generation) == (0.5 * GB, 5 * GB)
    v = plan.vllm
    assert v.weights == 107072  # bf16 weights over TP 2
    assert v.kv_per_token == 2 * 2 * 1 * 16 * 2  # K and V x layers x (2 KV heads / TP 2) x head 16 x bf16
    assert v.kv_tokens == (5 * GB - 107072 - 2 * GB) // 128
    assert plan.phase == "generation"
    assert plan.peak_gb * GB == pytest.approx(1094720 + 107072 + 5 * GB + 1.5 * GB)
    assert plan.problem is None


def test_the_tool_calling_layout_without_checkpointing_is_refused_naming_activations():
    cfg = compose(["experiment=tool_calling", "model=qwen2.5-1.5b", "model.gradient_checkpointing=false"])
    plan = plan_memory(cfg)
    assert plan.phase == "training" and plan.peak_gb > 80
    line = plan.problem
    assert "\n" not in line and line.startswith("model qwen2.5-1.5b (DDP on 4 GPU(s)): planned peak")
    assert "exceeds model.gpu_memory_gb=80" in line and "largest part is activations (all layers)" in line
    assert line.endswith(
        "change model.gradient_checkpointing=true or a smaller model.per_device_train_batch_size"
    )
    with pytest.raises(ConfigError, match="largest part is activations"):
        check_memory(cfg)


def test_rvpo_train_refuses_the_old_14b_share_in_one_line_exit_2(capsys, tmp_path, monkeypatch):
    """0.2 of 80 GB at tensor parallel 1 cannot hold Qwen2.5-14B's 29.5 GB of bf16 weights."""
    from rvpo_repro.train import main

    monkeypatch.chdir(tmp_path)  # Hydra's outputs/ of the refused job

    args = ["experiment=rubric_medicine", "model=qwen2.5-14b", "model.vllm_gpu_memory_utilization=0.2"]
    args += ["model.vllm_tensor_parallel_size=1", f"paths.root_dir={tmp_path}", "logger=disabled"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "rvpo-train: model qwen2.5-14b (ZeRO-3 on 8 GPU(s)): vLLM's share 0.2 (16.0 GB) cannot "
    )
    assert "weights (29.5 GB per rank at tensor parallel 1)" in err
    assert "raise model.vllm_gpu_memory_utilization or model.vllm_tensor_parallel_size" in err
    assert not (tmp_path / "results").exists()


def test_the_14b_layout_holds_its_weights_a_kv_cache_and_the_zero3_states():
    cfg = compose(["experiment=rubric_medicine", "model=qwen2.5-14b"])
    m = cfg.model
    assert (m.accelerate, m.num_gpus, m.vllm_tensor_parallel_size, m.vllm_enable_sleep_mode) == (
        "zero3",
        8,
        2,
        True,
    )
    assert m.per_device_train_batch_size * m.gradient_accumulation_steps * m.num_gpus == 512
    plan = plan_memory(cfg)
    assert plan.problem is None and plan.peak_gb <= 80
    v = plan.vllm
    assert v.weights == pytest.approx(14.77e9, rel=1e-3)  # 29.5 GB of bf16 weights over 2 ranks
    assert v.kv_tokens >= v.max_model_len == 32768  # vLLM starts: one full-length sequence fits
    assert {p.key: p.training for p in plan.parts}["vllm"] == 0.5 * GB  # asleep while the policy trains
    kwargs = grpo_kwargs(cfg)  # what the run hands TRL
    assert (kwargs["vllm_tensor_parallel_size"], kwargs["vllm_enable_sleep_mode"]) == (2, True)
    assert kwargs["vllm_gpu_memory_utilization"] == m.vllm_gpu_memory_utilization


def test_tensor_parallel_must_divide_the_gpus_and_sleep_mode_needs_cuda(monkeypatch):
    cfg = compose(["experiment=rubric_medicine", "model=qwen2.5-14b", "model.vllm_tensor_parallel_size=3"])
    with pytest.raises(ConfigError, match=r"model.vllm_tensor_parallel_size=3 must divide model.num_gpus=8"):
        validate(cfg, construct_trl=False)
    monkeypatch.setattr("rvpo_repro.generation.vllm_on_cpu", lambda: True)
    cfg = compose(["experiment=rubric_medicine", "model=qwen2.5-14b"])
    with pytest.raises(ConfigError, match="sleep mode runs on CUDA only"):
        validate(cfg, construct_trl=False)


@pytest.mark.parametrize(
    ("key", "value"), [("model.vllm_tensor_parallel_size", 0), ("model.gpu_memory_gb", 0.0)]
)
def test_layout_settings_out_of_range_are_refused(key, value):
    with pytest.raises(ConfigError, match=re.escape(f"{key}={value}: must be")):
        validate(compose([f"{key}={value}"]), construct_trl=False)


def test_a_model_of_unknown_size_gets_one_line_and_no_guess(tmp_path, caplog):
    cfg = compose(["model=qwen2.5-7b", f"model.path={tmp_path}/elsewhere", "trainer.use_vllm=false"])
    plan = plan_memory(cfg)
    assert plan.parts == [] and plan.problem is None
    assert plan.lines() == [f"memory plan: {plan.unknown}"]
    assert "size unknown (no config.json at model.path=" in plan.unknown
    check_memory(cfg)  # not refused: it runs unplanned, and says so
    assert [r.getMessage() for r in caplog.records if "size unknown" in r.getMessage()] == [plan.lines()[0]]


def test_a_local_config_json_is_read(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,'
        ' "intermediate_size": 128, "vocab_size": 512, "tie_word_embeddings": true, "max_position_embeddings": 1024}'
    )
    shape = model_shape(OmegaConf.create({"source": "pretrained", "path": str(tmp_path)}))
    assert shape.params == 107072 and shape.source == str(tmp_path / "config.json")


def test_a_gpu_smaller_than_the_plan_is_named():
    assert gpu_shortfall("NVIDIA H100 80GB HBM3", int(85.0e9), 80) is None  # 79.2 GiB = 85 GB
    line = gpu_shortfall("NVIDIA A100-SXM4-40GB", int(42.4e9), 80)
    assert (
        line.startswith("GPU NVIDIA A100-SXM4-40GB has 42.4 GB, less than model.gpu_memory_gb=80")
        and "\n" not in line
    )


def test_sweeps_readme_memory_column_is_the_plan():
    """sweeps/README.md's "planned peak GB / GPU (tool / rubric)" column is each model's plan in the
    tool-calling and rubric experiments ("-": the model is not in that track)."""
    text = (ROOT / "sweeps" / "README.md").read_text()
    assert "| planned peak GB / GPU (tool / rubric) |" in text
    rows = {
        m.group(1): line for line in text.splitlines() if (m := re.match(r"\| Qwen2\.5-([\d.]+B) \|", line))
    }
    tracks = {"1.5B": ("tool_calling", None), "3B": ("tool_calling", "rubric_medicine")}
    tracks |= {"7B": (None, "rubric_medicine"), "14B": (None, "rubric_medicine")}
    assert set(rows) == set(tracks)
    for size, experiments in tracks.items():
        peaks = [
            f"{plan_memory(compose([f'experiment={e}', f'model=qwen2.5-{size.lower()}'])).peak_gb:.1f}"
            if e
            else "-"
            for e in experiments
        ]
        assert rows[size].split("|")[7].strip() == " / ".join(peaks), size


def test_a_run_starting_on_a_smaller_gpu_says_so_once(monkeypatch, caplog):
    from types import SimpleNamespace

    from rvpo_repro.run.training import warn_small_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    props = SimpleNamespace(name="NVIDIA L40S", total_memory=int(48.3e9))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    warn_small_gpu(compose(["model=qwen2.5-7b"]))
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and lines[0].startswith(
        "GPU NVIDIA L40S has 48.3 GB, less than model.gpu_memory_gb=80 "
    )
    caplog.clear()
    warn_small_gpu(compose(["model=qwen2.5-7b", "model.gpu_memory_gb=48"]))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
