"""Step time of RVPOTrainer (rvpo aggregator) against TRL's own GRPOTrainer (normalize_then_sum).

Same tiny offline model, task, batch and seeds; the two trainers alternate over several rounds and
the ratio of median step times is printed (the paper reports under 1% overhead; target < 1.03).

    .venv/bin/python benchmarks/bench_trainer.py [--steps 30] [--rounds 3]
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
    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def run(kind: str, model_dir: str, steps: int, workdir: str) -> list[float]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    data = ToyConstraintsTask(ToyConstraintsConfig()).build(tok, seed=0)
    args = GRPOConfig(
        output_dir=workdir,
        max_steps=steps,
        per_device_train_batch_size=32,
        num_generations=8,
        max_completion_length=24,
        learning_rate=5e-4,
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
        trainer = RVPOTrainer(
            reward_funcs=data.reward_funcs, aggregator=get_aggregator("rvpo", risk=1.0), **common
        )
    torch.manual_seed(0)
    trainer.train()
    return timer.times[2:]  # drop warm-up steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(ensure_tiny_model(TinyModelConfig(), tmp))
        times: dict[str, list[float]] = {"trl": [], "rvpo": []}
        for _ in range(a.rounds):
            for kind in ("trl", "rvpo"):  # alternate, so drifts in machine load hit both
                times[kind] += run(kind, model_dir, a.steps, f"{tmp}/{kind}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; tiny model, 32 completions x 24 tokens"
    )
    print(
        f"TRL GRPOTrainer normalize_then_sum: {med['trl'] * 1e3:.1f} ms/step (median of {len(times['trl'])})"
    )
    print(
        f"RVPOTrainer rvpo:                   {med['rvpo'] * 1e3:.1f} ms/step (median of {len(times['rvpo'])})"
    )
    print(f"ratio rvpo/trl: {med['rvpo'] / med['trl']:.3f}  (target < 1.03)")


if __name__ == "__main__":
    main()
