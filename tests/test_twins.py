"""CPU twins of the paper cells (rvpo_repro.sweep.twins): composed from the sweeps themselves, every
cell's twin differs from its cell in size only. The twins that `cover` picks run as processes in
tests/engines/test_twins.py."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rvpo_repro.config import compose, validate
from rvpo_repro.sweep import twins as tw

# What a twin may change: the model's size (the tiny random model in the same model group), the
# data (fixtures in the real schemas), steps, batch, token lengths and evaluation sets, and where
# the judge and grader are served. Anything else differing is a twin that is not one.
SIZE = (
    "model.source", "model.name", "model.tiny.", "model.num_gpus", "model.per_device_train_batch_size",
    "model.gradient_accumulation_steps", "trainer.generation_batch_size", "trainer.max_steps",
    "trainer.save_steps", "trainer.max_completion_length", "trainer.validation_prompts",
    "eval.max_new_tokens", "task.source", "task.healthbench_source", "task.gpqa_source",
    "task.grader_template", "task.max_channels", "task.gpqa_n_repeats", "task.fixture_examples",
    "task.fixture_short_prompt", "task.bfcl_per_category",
)  # fmt: skip
SERVICES = ("judge.base_url", "judge.model", "judge.max_tokens", "judge.cache_path",
            "eval_judge.base_url", "eval_judge.model", "eval_judge.max_tokens", "eval_judge.cache_path")  # fmt: skip
# What must never change: the code path a cell takes on GPUs.
PATH = ("model.accelerate", "model.dtype", "model.gradient_checkpointing", "model.attn_implementation",
        "model.vllm_gpu_memory_utilization", "trainer.use_vllm", "trainer.vllm_mode", "trainer.num_generations",
        "trainer.eval_checkpoints", "trainer.beta", "trainer.loss_type", "eval.backend", "aggregator",
        "judge.backend", "eval_judge.backend", "task.name", "task.evals")  # fmt: skip


def flat(cfg) -> dict[str, object]:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix.rstrip(".")] = node

    data = OmegaConf.to_container(cfg, resolve=False)
    data.pop("hydra", None)
    walk(data, "")
    return out


def _unique_cells():
    seen = {}
    for sweep in tw.available_sweeps():
        for cell, cfg in tw.cells(sweep):
            key = (sweep, tuple(o for o in cell if not o.startswith("seed=")))
            seen.setdefault(key, (sweep, cell, cfg))
    return list(seen.values())


CELLS = _unique_cells()


@pytest.mark.parametrize("sweep,cell,cfg", CELLS, ids=[f"{s}:{' '.join(c)}" for s, c, _ in CELLS])
def test_every_cell_has_a_twin_that_differs_in_size_only(sweep, cell, cfg):
    twin = tw.twin(sweep, cell, cfg)
    got = compose([f"+sweeps={sweep}", *cell, *twin.overrides])
    a, b = flat(cfg), flat(got)
    changed = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
    beyond = [k for k in changed if not k.startswith(SIZE + SERVICES)]
    assert beyond == [], f"{twin.name} changes more than size: {beyond}"
    for key in changed:
        assert not key.startswith(PATH), key
    assert b["model.source"] == "tiny" and b["model.num_gpus"] == tw.TWIN_GPUS
    assert b["model.accelerate"] == a["model.accelerate"] and b["eval.backend"] == a["eval.backend"]
    assert b["trainer.max_steps"] == tw.STEPS and b["trainer.save_steps"] == tw.SAVE_STEPS
    validate(got, construct_trl=True)  # TRL's own checks of the shrunk batch (G divides it)
    if a.get("eval_judge.backend") == "openai":
        assert any("grader" in d for d in twin.differences)


def test_the_cover_runs_every_sweep_strategy_and_task():
    all_twins = tw.twins()
    chosen = tw.cover(all_twins)
    assert {t.sweep for t in chosen} == set(tw.available_sweeps())
    assert {t.strategy for t in chosen} == {t.strategy for t in all_twins} >= {"ddp", "zero2", "zero3"}
    assert (
        {t.task for t in chosen} == {t.task for t in all_twins} >= {"rar_medicine", "rar_science", "toolrl"}
    )
    assert len(chosen) <= len(tw.available_sweeps()) + 1


def test_a_cell_without_a_cpu_counterpart_is_named():
    sweep, cell, cfg = CELLS[0]
    odd = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    odd.task.name = "secret_task"
    with pytest.raises(tw.NoTwin, match="task secret_task has no fixture"):
        tw.twin(sweep, cell, odd)
    sleepy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(sleepy, False)
    sleepy.model.vllm_enable_sleep_mode = True
    with pytest.raises(tw.NoTwin, match="vllm_enable_sleep_mode has no CPU counterpart"):
        tw.twin(sweep, cell, sleepy)


def test_the_twin_command_is_the_sweeps_own_launch():
    sweep, cell, cfg = CELLS[0]
    cmd = tw.twin(sweep, cell, cfg).command()
    assert cmd[1:4] == ["-m", "rvpo_repro.sweep", sweep] and cmd[4] == "--"
    assert cmd[5 : 5 + len(cell)] == cell
