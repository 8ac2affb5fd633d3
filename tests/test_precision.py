"""Precision: model.dtype alone sets it, and training keeps fp32 master weights.

The paper's models are bfloat16. Trained as pure bf16 weights, an AdamW step at the paper's
learning rate (1e-6) is below bf16's resolution for most weights, which then never move; with fp32
master weights under bf16 autocast (DDP) or DeepSpeed's bf16 mode (ZeRO) they move as in fp32.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from rvpo_repro.config import ConfigError, compose, conf_dir, grpo_kwargs, validate
from rvpo_repro.models import load_model, precision_args

PAPER_MODELS = ["qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b"]


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_models_train_in_bf16_mode_from_model_dtype_alone(model):
    cfg = compose([f"model={model}", "experiment=rubric_medicine"])
    assert cfg.model.dtype == "bfloat16"
    assert cfg.trainer.bf16 is True  # follows model.dtype; no experiment sets it
    kwargs = grpo_kwargs(cfg)
    assert (kwargs["bf16"], kwargs["fp16"]) == (True, False)
    accelerate = yaml.safe_load((conf_dir() / "accelerate" / f"{cfg.model.accelerate}.yaml").read_text())
    assert accelerate["mixed_precision"] == "no"  # the accelerate file does not set it a second time


def test_tiny_model_trains_in_fp32_and_a_disagreeing_trainer_bf16_is_refused():
    cfg = compose(["experiment=toy_smoke"])
    assert (grpo_kwargs(cfg)["bf16"], cfg.trainer.bf16) == (False, False)
    with pytest.raises(ConfigError, match=r"trainer.bf16=True disagrees with model.dtype=float32"):
        validate(compose(["experiment=toy_smoke", "trainer.bf16=true"]), construct_trl=False)
    with pytest.raises(ConfigError, match="model.dtype='int8'"):
        validate(compose(["experiment=toy_smoke", "model.dtype=int8"]), construct_trl=False)
    assert precision_args(compose(["model=tiny", "model.dtype=float16"]).model) == {
        "bf16": False,
        "fp16": True,
    }


def _adamw_steps(model, autocast: bool, steps: int = 10, lr: float = 1e-6) -> dict[str, torch.Tensor]:
    """Parameters after `steps` AdamW steps on a fixed LM batch; the run's compute precision
    is bf16 autocast when `autocast` (what TrainingArguments.bf16 turns on under DDP)."""
    torch.manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (4, 24))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return {n: p.detach().float().clone() for n, p in model.named_parameters()}


def test_a_step_at_the_paper_learning_rate_moves_bf16_runs_as_fp32(cache_dir):
    cfg = compose(["model=tiny", "model.dtype=bfloat16", f"paths.cache_dir={cache_dir}"])
    name = "model.layers.0.mlp.up_proj.weight"
    fp32 = load_model(compose(["model=tiny", f"paths.cache_dir={cache_dir}"]).model, cache_dir)
    start = dict(fp32.named_parameters())[name].detach().clone()

    mixed = load_model(cfg.model, cache_dir)  # the training load: fp32 master weights
    assert {p.dtype for p in mixed.parameters()} == {torch.float32}
    moved_mixed = _adamw_steps(mixed, autocast=grpo_kwargs(cfg)["bf16"])[name] - start
    moved_fp32 = _adamw_steps(fp32, autocast=False)[name] - start
    pure = load_model(cfg.model, cache_dir, training=False)  # bf16 weights, as before: updates lost
    assert {p.dtype for p in pure.parameters()} == {torch.bfloat16}
    moved_pure = _adamw_steps(pure, autocast=False)[name] - start.to(torch.bfloat16).float()

    def changed(d):
        return (d != 0).float().mean().item()

    assert changed(moved_fp32) > 0.99 and changed(moved_mixed) > 0.99
    assert changed(moved_pure) < 0.2  # measured 0.02-0.05: most of a bf16 matrix never moves
    cos = torch.nn.functional.cosine_similarity(moved_mixed.flatten(), moved_fp32.flatten(), dim=0)
    assert cos > 0.9  # the same direction as the fp32 run, not only the same share of weights


def test_the_reported_master_dtype_is_the_optimizers_copy_when_deepspeed_keeps_one():
    from types import SimpleNamespace

    from rvpo_repro.run.rank_facts import master_dtype

    module = torch.nn.Linear(2, 2).to(torch.bfloat16)
    fp32_copy = [torch.zeros(6, dtype=torch.float32)]
    zero2 = SimpleNamespace(optimizer=SimpleNamespace(single_partition_of_fp32_groups=fp32_copy))
    zero3 = SimpleNamespace(optimizer=SimpleNamespace(fp32_partitioned_groups_flat=fp32_copy))
    assert master_dtype(zero2, module) == master_dtype(zero3, module) == "float32"
    ddp = SimpleNamespace()  # no ZeRO optimizer: the module's weights are what the optimizer steps
    assert master_dtype(ddp, module) == "bfloat16"
