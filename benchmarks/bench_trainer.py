"""Step time of RVPOTrainer against TRL's own GRPOTrainer (normalize_then_sum), and the time of the
suite's own code inside each step.

Same tiny offline model, task, batch and seeds; the trainers alternate over several rounds.
By default the learning rate is 0: every trainer then samples the same completions at every step
(the same seeds, a policy that does not move), so a step does the same work in each and the ratio
of step times is the suite's overhead alone. With a real learning rate (`--lr 5e-4`, the toy
experiment's) the trajectories part (gdpo's advantages equal TRL's normalize_then_sum to 3e-8, and
that is enough for a sampled token to differ after a few steps; rvpo trains another policy), and
the ratio then also compares different completion lengths.

Times are CPU times of the process (`time.process_time`, every thread), which other load on a
shared machine inflates far less than wall time. Printed: each trainer's median step time; per
method the median over rounds of the paired ratio method/trl (a round's two runs share the
machine's load of that moment); and, timed inside the steps, the suite's own code per step (the
aggregator, the channel weights, the per-channel metrics, the item weights: RVPOTrainer's
overrides minus the TRL code they call) as a share of the step. Targets: ratio < 1.01, suite code
< 1% of a step (the paper: under 1%).

    .venv/bin/python benchmarks/bench_trainer.py [--steps 30] [--rounds 5] [--lr 0] [--methods gdpo rvpo]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from rvpo_repro.aggregators import get_aggregator  # noqa: E402
from rvpo_repro.models import ensure_tiny_model  # noqa: E402
from rvpo_repro.rewards import expand_reward_funcs  # noqa: E402
from rvpo_repro.schemas import TinyModelConfig  # noqa: E402
from rvpo_repro.tasks.toy_constraints import ToyConstraintsConfig, ToyConstraintsTask  # noqa: E402
from rvpo_repro.trainer import RVPOTrainer  # noqa: E402


class StepTimer(TrainerCallback):
    """Each step's CPU time of this process (all its threads): unlike wall time it does not count
    the time other processes on a shared machine take the cores away."""

    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.process_time()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.process_time() - self._t)


class TimedRVPOTrainer(RVPOTrainer):
    """RVPOTrainer that adds up, per step, the time of its own code: each override's time minus
    that of the TRL method it calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.own: list[float] = []
        self._inner = 0.0

    def _calculate_rewards(self, *args):
        start = time.process_time()
        inner = GRPOTrainer._calculate_rewards
        GRPOTrainer._calculate_rewards = self._timed(inner)
        try:
            out = super()._calculate_rewards(*args)
        finally:
            GRPOTrainer._calculate_rewards = inner
        self._own_part = time.process_time() - start - self._inner
        return out

    def _generate_and_score_completions(self, inputs):
        start = time.process_time()
        inner = GRPOTrainer._generate_and_score_completions
        GRPOTrainer._generate_and_score_completions = self._timed(inner)
        try:
            out = super()._generate_and_score_completions(inputs)
        finally:
            GRPOTrainer._generate_and_score_completions = inner
        # the TRL part includes _calculate_rewards, whose own share was measured inside it
        self.own.append(time.process_time() - start - self._inner + self._own_part)
        return out

    def _timed(self, fn):
        def wrapper(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._inner = time.process_time() - t

        return wrapper


def run(
    kind: str, model_dir: str, steps: int, lr: float, workdir: str
) -> tuple[list[float], list[float], float]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    data = ToyConstraintsTask(ToyConstraintsConfig()).build(tok, seed=0)
    args = GRPOConfig(
        output_dir=workdir,
        max_steps=steps,
        per_device_train_batch_size=32,
        num_generations=8,
        max_completion_length=24,
        learning_rate=lr,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
        seed=0,
        multi_objective_aggregation="normalize_then_sum",
    )
    timer = StepTimer()
    common = dict(
        model=model_dir, processing_class=tok, args=args, train_dataset=data.train_dataset, callbacks=[timer]
    )
    if kind == "trl":
        funcs, _ = expand_reward_funcs(data.reward_funcs)
        trainer = GRPOTrainer(reward_funcs=funcs, **common)
    else:
        trainer = TimedRVPOTrainer(reward_funcs=data.reward_funcs, aggregator=get_aggregator(kind), **common)
    torch.manual_seed(0)
    trainer.train()
    own = getattr(trainer, "own", [])
    lengths = [
        h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
    ]
    return timer.times[2:], own[2:], lengths[-1]  # drop warm-up steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.0, help="0: the same completions in every trainer")
    p.add_argument("--methods", nargs="+", default=["gdpo", "rvpo"], help="aggregators run in RVPOTrainer")
    a = p.parse_args()
    kinds = ["trl", *a.methods]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(ensure_tiny_model(TinyModelConfig(), tmp))
        times: dict[str, list[float]] = {k: [] for k in kinds}
        own: dict[str, list[float]] = {k: [] for k in kinds}
        ratios: dict[str, list[float]] = {k: [] for k in a.methods}
        lengths: dict[str, set[float]] = {k: set() for k in kinds}
        for _ in range(a.rounds):
            medians = {}
            for kind in kinds:  # alternate, so drifts in machine load hit every kind
                t, o, length = run(kind, model_dir, a.steps, a.lr, f"{tmp}/{kind}")
                times[kind] += t
                own[kind] += o
                lengths[kind].add(length)
                medians[kind] = statistics.median(t)
            for kind in a.methods:
                ratios[kind].append(medians[kind] / medians["trl"])
    med = {k: statistics.median(v) for k, v in times.items()}
    same = len(set().union(*lengths.values())) == 1
    print(
        f"learning rate {a.lr:g}: mean completion length "
        + (
            "the same in every trainer"
            if same
            else f"differs: {dict((k, sorted(v)) for k, v in lengths.items())}"
        )
    )
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; tiny model, 32 completions x 24 tokens"
    )
    print(
        f"TRL GRPOTrainer normalize_then_sum: {med['trl'] * 1e3:8.1f} ms/step (median of {len(times['trl'])})"
    )
    for kind in a.methods:
        share = statistics.median(own[kind]) / med[kind]
        print(
            f"RVPOTrainer {kind:<22} {med[kind] * 1e3:8.1f} ms/step; ratio {kind}/trl "
            f"{statistics.median(ratios[kind]):.3f} (rounds {min(ratios[kind]):.3f}-{max(ratios[kind]):.3f}); "
            f"suite code {statistics.median(own[kind]) * 1e3:.2f} ms/step = {share:.2%} of a step"
        )
    print("targets: ratio < 1.01; suite code < 1% of a step")


if __name__ == "__main__":
    main()
