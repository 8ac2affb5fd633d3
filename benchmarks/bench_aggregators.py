"""Milliseconds per aggregator call on CPU at the paper's rubric scale.

N = 16384 rows (1024 prompts x G = 16), K = 17 channels, 30% NaN, seeded. Prints the median over
repeats after warm-up for every registered aggregator, each beside GDPO (its time over gdpo's), and
the rvpo / gdpo ratio. Targets: rvpo
under 5 ms per call on 2 cores, within 2x of gdpo. Thread count is left to the user
(torch.set_num_threads or OMP_NUM_THREADS).

    python benchmarks/bench_aggregators.py [--prompts 1024] [--group 16] [--channels 17]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rvpo_repro.aggregators import get_aggregator

# Options that make each aggregator do its full work (rvpo annealed: the schedule is evaluated per call).
from rvpo_repro.aggregators.base import AGGREGATORS

OPTIONS = {"rvpo": {"risk_start": 0.5, "risk_end": 2.0, "schedule": "linear"}}


def make_rewards(prompts: int, group: int, channels: int, nan_frac: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(prompts * group, channels, generator=gen)
    rewards[torch.rand(rewards.shape, generator=gen) < nan_frac] = float("nan")
    return rewards


def time_calls(calls: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call, each name timed once per round, round-robin, so that load from other
    processes on a shared machine falls on every aggregator alike."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1024)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--channels", type=int, default=17)
    parser.add_argument("--nan-frac", type=float, default=0.3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rewards = make_rewards(args.prompts, args.group, args.channels, args.nan_frac, args.seed)
    n, k = rewards.shape
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"N = {n} rows ({args.prompts} prompts x G = {args.group}), K = {k} channels, {args.nan_frac:.0%} NaN"
    )
    aggs = {name: get_aggregator(name, **OPTIONS.get(name, {})) for name in sorted(AGGREGATORS)}
    calls = {name: (lambda agg=agg: agg(rewards, args.group, progress=0.3)) for name, agg in aggs.items()}
    times = time_calls(calls, args.warmup, args.repeats)
    results = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"  {name:<18} {results[name]:8.3f} ms/call  {results[name] / results['gdpo']:5.2f} x gdpo"
            f"  (median of {args.repeats}; best {min(t):.3f})"
        )
    print(
        f"  rvpo / gdpo ratio  {results['rvpo'] / results['gdpo']:8.2f}  (targets: rvpo < 5 ms, ratio <= 2)"
    )
    return results


if __name__ == "__main__":
    main()
