"""Judge throughput against the scripted OpenAI-compatible server (tests/helpers/judge_server.py).

The server runs in a subprocess on loopback with 50 ms latency per request. Measured:
  1. 2,000 distinct requests at max_concurrency 16 (ideal 2000 * 0.05 / 16 = 6.25 s; target
     within 1.25x), with the SQLite cache on (writes included); median of --repeats runs;
  2. the saturation rate at concurrency 64 (CPU-bound: server and client share the machine),
     for the judge and, as the baseline, a plain loop over the openai client's AsyncOpenAI
     (`chat.completions.create` under a semaphore); median of --repeats runs each, interleaved;
  3. a second pass over the requests of (1) by a new judge instance on the same cache file:
     its time as a fraction of the first pass, and the server requests it made (should be 0).
CPU milliseconds per request (client process and server process) are printed beside the wall
times: on a shared machine they are the steadier figure.
Run: python benchmarks/bench_judge.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.judge_server import spawn_server  # noqa: E402

from rvpo_repro.judges import JudgeCache, JudgeRequest  # noqa: E402
from rvpo_repro.judges.openai_judge import OpenAIJudge  # noqa: E402

N, LATENCY, CONC, SAT_CONC = 2000, 0.05, 16, 64
# A grader-sized prompt (~0.6 kB), made distinct per request.
PROMPT = (
    "Your job is to look at a conversation and a rubric item, and score the last turn.\n\n"
    "# Conversation\nuser: I have had a mild headache for two days. What should I do?\n\n"
    "assistant: Rest, drink water, and consider an over-the-counter pain reliever. See a doctor "
    "if it worsens or comes with fever, stiff neck or vision changes.\n\n"
    "# Rubric item\n[5] Advises seeking care for red-flag symptoms ({i}).\n\n"
    'Return a json object with "explanation" and "criteria_met".'
)


def requests(tag: str) -> list[JudgeRequest]:
    return [
        JudgeRequest.from_messages([{"role": "user", "content": PROMPT.format(i=f"{tag}-{i}")}])
        for i in range(N)
    ]


def judge(base_url: str, concurrency: int, cache: JudgeCache | None = None) -> OpenAIJudge:
    return OpenAIJudge(
        model="bench-judge",
        base_url=base_url,
        api_key_env="RVPO_BENCH_NO_KEY",
        temperature=0.5,
        max_concurrency=concurrency,
        timeout_s=30.0,
        cache=cache,
    )


async def plain_loop(base_url: str, reqs: list[JudgeRequest], concurrency: int) -> float:
    """The baseline: the openai client as documented, no judge machinery."""
    start = time.perf_counter()
    async with openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=30.0) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(r: JudgeRequest) -> str | None:
            async with sem:
                resp = await client.chat.completions.create(
                    model="bench-judge", messages=r.to_messages(), temperature=0.5
                )
            return resp.choices[0].message.content

        await asyncio.gather(*(one(r) for r in reqs))
    return time.perf_counter() - start


class Meter:
    """Wall time, this process's CPU time and the server's CPU time of one run."""

    def __init__(self, server_stats):
        self.server_stats = server_stats

    def __enter__(self) -> Meter:
        self.server0, self.cpu0 = self.server_stats()["cpu_s"], time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0
        self.server_cpu = self.server_stats()["cpu_s"] - self.server0

    def per_request(self) -> str:
        return (
            f"CPU per request: client {self.cpu / N * 1e3:.2f} ms, server {self.server_cpu / N * 1e3:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"python {platform.python_version()}, openai {openai.__version__}, {os.cpu_count()} CPUs, load {load:.1f}"
    )
    print(
        f"server: tests/helpers/judge_server.py subprocess, {LATENCY * 1000:.0f} ms latency, {N} requests a pass"
    )
    with spawn_server(LATENCY) as (url, server_stats, reset), tempfile.TemporaryDirectory() as tmp:
        judge(url, 4).grade(requests("warmup")[:8])  # imports and first connections

        # 1. concurrency 16; the first run fills the cache that pass 3 reads, later runs use fresh content
        cache_path = Path(tmp) / "bench.sqlite"
        reqs = requests("pass")
        firsts, missing = [], 0
        for rep in range(args.repeats):
            cache = JudgeCache(cache_path if rep == 0 else Path(tmp) / f"other{rep}.sqlite")
            batch = reqs if rep == 0 else requests(f"c16-{rep}")
            with Meter(server_stats) as m:
                missing += sum(r.missing for r in judge(url, CONC, cache).grade(batch))
            firsts.append(m)
        ideal = N * LATENCY / CONC
        walls = [m.wall for m in firsts]
        t16 = statistics.median(walls)
        print(
            f"judge, concurrency {CONC}: median {t16:.2f} s for {N} requests "
            f"(runs {', '.join(f'{w:.2f}' for w in walls)} s); ideal {ideal:.2f} s, "
            f"ratio {t16 / ideal:.2f}x (target <= 1.25x); missing {missing}"
        )
        print(f"  {firsts[0].per_request()}")

        # 2. saturation at concurrency 64: the plain openai loop (baseline) and the judge, interleaved
        judge_runs, plain_runs = [], []
        for rep in range(args.repeats):
            batch = requests(f"sat{rep}")
            with Meter(server_stats) as m:
                asyncio.run(plain_loop(url, batch, SAT_CONC))
            plain_runs.append(m)
            with Meter(server_stats) as m:
                judge(url, SAT_CONC).grade(batch)
            judge_runs.append(m)
        tj = statistics.median(m.wall for m in judge_runs)
        tp = statistics.median(m.wall for m in plain_runs)
        print(
            f"saturation, concurrency {SAT_CONC} (median of {args.repeats}): judge {N / tj:.0f} req/s, "
            f"plain openai loop {N / tp:.0f} req/s; judge/plain = {tp / tj:.2f}x"
        )
        print(
            f"  runs (req/s): judge {[round(N / m.wall) for m in judge_runs]}, "
            f"plain {[round(N / m.wall) for m in plain_runs]}"
        )
        print(f"  judge {judge_runs[-1].per_request()}")
        print(f"  plain {plain_runs[-1].per_request()}")

        # 3. the requests of run 1 again, by a new judge instance on the same cache file
        reset()
        second = judge(url, CONC, JudgeCache(cache_path))
        with Meter(server_stats) as m:
            missing2 = sum(r.missing for r in second.grade(reqs))
        sent = server_stats()["total"]
        print(
            f"second pass from the cache (new judge instance): {m.wall:.3f} s = {m.wall / walls[0]:.3f} "
            f"of the first pass; {second.stats.cache_hits} cache hits, {sent} server requests, missing {missing2}"
        )


if __name__ == "__main__":
    main()
