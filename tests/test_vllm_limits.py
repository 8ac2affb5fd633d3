"""vLLM engines that cannot start say so in one line, before a run starts where the suite can tell
(head size, KV cache larger than the free memory on CPU), else when the engine fails.

The real engines run in tests/engines; here vLLM's CPU build is pretended (`vllm_on_cpu`), so these
run in `make test`'s venv, which has no vLLM.
"""

from __future__ import annotations

import pytest

from rvpo_repro import generation
from rvpo_repro.config import ConfigError, compose, validate
from rvpo_repro.generation import raised_in_vllm, vllm_memory_problem, vllm_start_error

GIB = 2**30


@pytest.fixture
def cpu_vllm(monkeypatch):
    monkeypatch.setattr(generation, "vllm_on_cpu", lambda: True)


def test_a_kv_cache_larger_than_the_free_memory_is_refused_with_the_numbers(cpu_vllm):
    problem = vllm_memory_problem({"VLLM_CPU_KVCACHE_SPACE": "64"}, free_bytes=20 * GIB)
    assert problem and "VLLM_CPU_KVCACHE_SPACE=64 GiB" in problem and "20.0 GiB free" in problem
    assert vllm_memory_problem({"VLLM_CPU_KVCACHE_SPACE": "4"}, free_bytes=20 * GIB) is None
    assert vllm_memory_problem({}, free_bytes=1) is None  # unset: vLLM sizes the cache itself
    assert "whole number of GiB" in vllm_memory_problem({"VLLM_CPU_KVCACHE_SPACE": "4G"}, free_bytes=1)


def test_only_vllms_cpu_build_is_checked(monkeypatch):
    monkeypatch.setattr(generation, "vllm_on_cpu", lambda: False)  # a GPU vLLM: its own limits
    assert vllm_memory_problem({"VLLM_CPU_KVCACHE_SPACE": "10000"}, free_bytes=GIB) is None


@pytest.mark.parametrize(
    "overrides", [["trainer.use_vllm=true"], ["eval.backend=vllm"]], ids=["use_vllm", "eval_backend"]
)
def test_a_run_that_uses_vllm_fails_validation_before_anything_starts(cpu_vllm, monkeypatch, overrides):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "100000")  # 100 TB: more than any machine here
    with pytest.raises(ConfigError, match=rf"{overrides[0]}: VLLM_CPU_KVCACHE_SPACE=100000 GiB"):
        validate(compose(["experiment=toy_smoke", *overrides]), construct_trl=False)
    validate(compose(["experiment=toy_smoke"]), construct_trl=False)  # no vLLM: no check


def test_the_default_tiny_model_is_refused_for_vllm_and_the_smoke_model_is_not(cpu_vllm):
    with pytest.raises(ConfigError, match=r"trainer.use_vllm=true with model=tiny: .*head_dim .* 16"):
        validate(
            compose(["experiment=toy_smoke", "model=tiny", "trainer.use_vllm=true"]), construct_trl=False
        )
    validate(compose(["experiment=toy_smoke", "trainer.use_vllm=true"]), construct_trl=False)


def test_a_failed_engine_start_becomes_one_line_with_what_to_change():
    generic = RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
    msg = str(vllm_start_error(generic, "/m"))
    assert msg.startswith("vLLM cannot start for /m: Engine core initialization failed") and "\n" not in msg
    assert "log above names the cause" in msg
    oom = str(vllm_start_error(ValueError("not enough memory\nfor the cache"), "/m"))
    assert "VLLM_CPU_KVCACHE_SPACE" in oom and "\n" not in oom
    assert "eval.backend=hf" in str(vllm_start_error(OSError("other"), "/m"))


def test_raised_in_vllm_reads_where_the_exception_came_from(tmp_path):
    fake = tmp_path / "vllm" / "engine.py"
    fake.parent.mkdir()
    fake.write_text("def start():\n    raise RuntimeError('engine')\n")
    namespace: dict = {}
    exec(compile(fake.read_text(), str(fake), "exec"), namespace)
    with pytest.raises(RuntimeError) as from_vllm:
        namespace["start"]()
    assert raised_in_vllm(from_vllm.value)
    with pytest.raises(RuntimeError) as elsewhere:
        raise RuntimeError("trainer")
    assert not raised_in_vllm(elsewhere.value)


def test_an_engine_given_no_kv_cache_is_told_to_get_one_not_to_lower_it():
    exc = RuntimeError("No available memory for the cache blocks. Try increasing `gpu_memory_utilization`")
    msg = str(vllm_start_error(exc, "/m"))
    assert "give vLLM a KV cache (VLLM_CPU_KVCACHE_SPACE=1" in msg and "lower the KV cache" not in msg


def test_an_evaluation_engine_takes_what_is_free_on_the_gpu(monkeypatch):
    """The job's training process keeps its CUDA context while a fresh process evaluates: vLLM's
    default 0.9 share would be refused where less is free."""
    import torch

    from rvpo_repro.generation import memory_share

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (30e9, 80e9))
    assert memory_share() == {"gpu_memory_utilization": 0.325}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (79e9, 80e9))
    assert memory_share() == {"gpu_memory_utilization": 0.9}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert memory_share() == {}
