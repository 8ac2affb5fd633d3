"""`toy_constraints`: the offline CPU experiment behind `make reproduce`.

Prompts ("Write a line about the river.") are generated from a data seed; train and eval use
disjoint topic words. Three rule-based channels of different difficulty and scale:

    fluency  [0, s]  s x share of ASCII letters and spaces   easy, high magnitude (s = fluency_scale;
                                                             the default experiment uses s = 30)
    upper    {0, 1}  contains an upper-case letter           easy binary constraint
    digit    {0, 1}  contains a digit                        hard binary constraint: a digit lowers
                                                             fluency, so an average can trade it away

Constraint neglect shows as a falling digit rate while fluency still rises; the all-constraints
rate (upper and digit) and the bottleneck channel measure it. With a large scale both kinds of
averaging neglect the digit: GRPO's raw sum because fluency's spread within a group dwarfs the
binary channels', GDPO's sum of normalised channels because the digit is one vote of three.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from rvpo_repro.evals.base import EvalResult
from rvpo_repro.evals.held_out_rewards import evaluate_channels
from rvpo_repro.rewards import MultiChannelReward, RewardChannel, completion_text
from rvpo_repro.tasks.base import Task, TaskData, register_task

TEMPLATES = [
    "Write a line about the {w}.",
    "Say something about the {w}.",
    "Describe the {w} in one line.",
    "Tell me about the {w}.",
]
WORDS = (
    "river forest moon garden ocean city mountain train sky field lake bridge wind fire road star "
    "cat door snow tree bird ship sea hill rain leaf light sun street lamp path cloud apple rose "
    "stone wheat summer night morning water island valley desert harbor castle tower market "
    "village meadow canyon glacier volcano storm thunder winter autumn spring candle window"
).split()


@dataclass
class ToyConstraintsConfig:
    name: str = "toy_constraints"
    data_seed: int = 0  # fixed across runs, so eval examples pair up between runs
    num_train_prompts: int = 64
    num_eval_prompts: int = 48
    eval_words_share: float = 0.25  # topic words held out for evaluation
    eval_samples: int = 4  # completions per eval prompt
    fluency_scale: float = 3.0


class ToyRewards(MultiChannelReward):
    def __init__(self, fluency_scale: float = 3.0):
        self.fluency_scale = fluency_scale
        self.channels = [
            RewardChannel("fluency", low=0.0, high=fluency_scale),
            RewardChannel("upper", binary=True),
            RewardChannel("digit", binary=True),
        ]

    def score_text(self, text: str) -> list[float]:
        clean = sum(ch.isascii() and (ch.isalpha() or ch == " ") for ch in text)
        fluency = self.fluency_scale * clean / len(text) if text else 0.0
        upper = float(any(ch.isascii() and ch.isupper() for ch in text))
        digit = float(any(ch.isdigit() for ch in text))
        return [fluency, upper, digit]

    def score(self, prompts: list, completions: list, **_: Any) -> list[list[float]]:
        return [self.score_text(completion_text(c)) for c in completions]


def make_prompts(cfg: ToyConstraintsConfig) -> tuple[list[dict], list[dict]]:
    """Train and eval rows {"id", "prompt", "topic"} from the data seed; eval topics are held out."""
    rng = random.Random(cfg.data_seed)
    words = WORDS[:]
    rng.shuffle(words)
    n_eval_words = max(1, round(len(words) * cfg.eval_words_share))
    eval_words, train_words = words[:n_eval_words], words[n_eval_words:]

    def rows(split: str, pool: list[str], n: int) -> list[dict]:
        out = []
        for i in range(n):
            word, template = rng.choice(pool), rng.choice(TEMPLATES)
            prompt = [{"role": "user", "content": template.format(w=word)}]
            out.append({"id": f"{split}-{i:04d}", "prompt": prompt, "topic": word})
        return out

    return rows("train", train_words, cfg.num_train_prompts), rows("eval", eval_words, cfg.num_eval_prompts)


@register_task("toy_constraints")
class ToyConstraintsTask(Task):
    schema = ToyConstraintsConfig

    def _rewards(self) -> ToyRewards:
        return ToyRewards(self.cfg.fluency_scale)

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        from datasets import Dataset

        train, eval_ = make_prompts(self.cfg)
        rewards = self._rewards()
        return TaskData(
            train_dataset=Dataset.from_list(train),
            eval_dataset=Dataset.from_list(eval_),
            reward_funcs=[rewards],
            channels=list(rewards.channels),
        )

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        rewards = self._rewards()
        return evaluate_channels(
            list(eval_dataset["id"]),
            generations,
            rewards.channels,
            lambda _, samples: [rewards.score_text(s) for s in samples],
        )
