"""`rubric_toy`: the rubric track in miniature, on CPU, with rubric items a rule can check.

Each prompt ("Write a line about the river.") carries its own rubric of 5 to 17 items drawn from
a seeded pool, weights 1 to 5, pitfall items ("Pitfall Criteria: ...") with negative weights, as
in RaR. Every item is a property of the response text (a letter, a word, a digit, a comma, a
capital first letter, a final period, word-count bounds), graded by the `rules` judge through the
judge interface: training reuses the rubric track's `RubricReward` (one binary channel per item,
None for a missing verdict, the pitfall convention), evaluation reuses HealthBench's grader prompt
and scoring (points met over positive points, clipped mean) on held-out prompts with their own
rubrics (topic words disjoint from training).

Some items pull against each other (pitfalls on common letters vs. items asking for words that
contain them; length bounds), and the digit item is a minority constraint, so an average can
trade items away. Held-out metrics: `healthbench/score` (primary), `healthbench/axis:<axis>` (each kind sits on a nominal axis),
`healthbench/judge_missing`, and per item kind `rewards/<kind>` (share of responses meeting every
item of that kind, pitfalls read as avoided), `rewards/all_constraints`, `rewards/bottleneck`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from rvpo_repro.evals import healthbench
from rvpo_repro.evals.base import EvalResult
from rvpo_repro.evals.held_out_rewards import evaluate_channels
from rvpo_repro.rewards import RewardChannel
from rvpo_repro.tasks.base import Task, TaskData, register_task
from rvpo_repro.tasks.rubric import PitfallConvention, RubricReward
from rvpo_repro.tasks.toy_constraints import TEMPLATES, WORDS

PITFALL = "Pitfall Criteria: "

# (kind, criterion, weight range); pitfall weights are negated. Kinds are the eval's item groups.
POOL: list[tuple[str, str, tuple[int, int]]] = [
    *[("letter", f"The response contains the letter '{c}'.", (1, 3)) for c in "etaonshrldwgbmc"],
    *[("word", f"The response contains the word '{w}'.", (2, 4)) for w in ("the", "and", "of", "in", "is")],
    ("digit", "The response contains a digit.", (3, 5)),
    ("format", "The response starts with a capital letter.", (1, 3)),
    ("format", "The response ends with a period.", (1, 3)),
    ("format", "The response contains a comma.", (1, 2)),
    ("length", "The response is at least 5 words long.", (2, 4)),
    ("length", "The response is at most 12 words long.", (1, 3)),
    *[("pitfall", f"The response contains the letter '{c}'.", (1, 5)) for c in "zqxjkvyupe"],
    ("pitfall", "The response contains the word 'very'.", (1, 3)),
    ("pitfall", "The response is at least 20 words long.", (2, 4)),
]
KINDS = ("letter", "word", "digit", "format", "length", "pitfall")
# HealthBench's axis of each kind in the eval records (nominal: the schema requires a real axis)
AXIS = {
    "letter": "completeness",
    "word": "completeness",
    "digit": "accuracy",
    "format": "communication_quality",
    "length": "instruction_following",
    "pitfall": "accuracy",
}


@dataclass
class RubricToyConfig:
    name: str = "rubric_toy"
    data_seed: int = 0  # fixed across runs: prompts and rubrics, so eval examples pair up
    num_train_prompts: int = 64
    num_eval_prompts: int = 96
    eval_words_share: float = 0.25  # topic words held out for evaluation
    min_items: int = 5
    max_items: int = 17
    max_channels: int = 17  # channels item_00 .. (rubrics longer than this are cut)
    pitfall_convention: PitfallConvention = PitfallConvention.met_is_failure
    eval_samples: int = 1  # HealthBench grades one reply per example
    seed: int = 0  # bootstrap seed of the HealthBench aggregate


def draw_rubric(rng: random.Random, n: int) -> list[dict]:
    """n distinct items {"description", "weight", "kind"}; never an item and its pitfall together."""
    order = list(range(len(POOL)))
    rng.shuffle(order)
    items, seen = [], set()
    for i in order:
        kind, text, (lo, hi) = POOL[i]
        if text in seen:  # the same check asked for and penalised: a contradiction, not a trade-off
            continue
        seen.add(text)
        weight = rng.randint(lo, hi)
        pit = kind == "pitfall"
        items.append(
            {
                "description": PITFALL + text if pit else text,
                "weight": -weight if pit else weight,
                "kind": kind,
            }
        )
        if len(items) == n:
            break
    return items


def make_rows(cfg: RubricToyConfig) -> tuple[list[dict], list[dict]]:
    """Train and eval rows {"id", "prompt", "topic", "rubric_json"}; eval topics are held out."""
    if not 1 <= cfg.min_items <= cfg.max_items <= len({t for _, t, _ in POOL}):
        raise ValueError(
            f"task {cfg.name}: need 1 <= min_items ({cfg.min_items}) <= max_items ({cfg.max_items}) "
            f"<= {len({t for _, t, _ in POOL})} distinct pool items"
        )
    rng = random.Random(cfg.data_seed)
    words = WORDS[:]
    rng.shuffle(words)
    n_eval = max(1, round(len(words) * cfg.eval_words_share))
    pools = {"eval": words[:n_eval], "train": words[n_eval:]}

    def rows(split: str, n: int) -> list[dict]:
        out = []
        for i in range(n):
            word, template = rng.choice(pools[split]), rng.choice(TEMPLATES)
            rubric = draw_rubric(rng, rng.randint(cfg.min_items, cfg.max_items))
            prompt = [{"role": "user", "content": template.format(w=word)}]
            out.append(
                {"id": f"{split}-{i:04d}", "prompt": prompt, "topic": word, "rubric_json": json.dumps(rubric)}
            )
        return out

    return rows("train", cfg.num_train_prompts), rows("eval", cfg.num_eval_prompts)


def healthbench_example(row: dict) -> dict:
    """The eval row as a HealthBench record (criterion, points, axis tag = item kind)."""
    rubric = json.loads(row["rubric_json"])
    return {
        "prompt_id": row["id"],
        "prompt": row["prompt"],
        "rubrics": [
            {
                "criterion": item["description"].removeprefix(PITFALL),
                "points": item["weight"],
                "tags": [f"axis:{AXIS[item['kind']]}", "level:example"],
            }
            for item in rubric
        ],
        "example_tags": ["theme:complex_responses"],
        "ideal_completions_data": None,
        "canary": "",
    }


@register_task("rubric_toy")
class RubricToyTask(Task):
    schema = RubricToyConfig

    def _judge(self) -> Any:
        if self.judge is None:
            raise ValueError(f"task {self.cfg.name} needs a judge: use judge=rules (rule-checked items)")
        return self.judge

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        from datasets import Dataset

        train, eval_ = make_rows(self.cfg)
        reward = RubricReward(self._judge(), self.cfg.max_channels, self.cfg.pitfall_convention)
        return TaskData(
            train_dataset=Dataset.from_list(train),
            eval_dataset=Dataset.from_list(eval_),
            reward_funcs=[reward],
            channels=list(reward.channels),
        )

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        rows = [eval_dataset[i] for i in range(len(eval_dataset))]
        examples = [healthbench_example(r) for r in rows]
        replies = [g[0] for g in generations]
        grader = self.eval_judge if self.eval_judge is not None else self._judge()
        hb = healthbench.evaluate(examples, replies, grader, seed=self.cfg.seed)
        metrics, hb_rows = hb.metrics, hb.examples

        # per item kind: met every item of that kind (pitfall: avoided), None when a verdict is missing
        def kinds(i: int, samples: list[str]) -> list[list[float | None]]:
            rubric, met = json.loads(rows[i]["rubric_json"]), hb_rows[i]["criteria_met"]
            values: list[float | None] = []
            for kind in KINDS:
                ok = [
                    None if m is None else (m != (it["weight"] < 0))
                    for it, m in zip(rubric, met, strict=True)
                    if it["kind"] == kind
                ]
                values.append(None if not ok or None in ok else float(all(ok)))
            return [values]

        channels = [RewardChannel(k, binary=True) for k in KINDS]
        per_kind = evaluate_channels([r["id"] for r in rows], [[r] for r in replies], channels, kinds)
        by_id = {r["id"]: r for r in hb_rows}
        merged = [{**by_id[e["id"]], **e} for e in per_kind.examples]
        metrics.update(per_kind.metrics)
        columns = {**hb.columns, **per_kind.columns}
        return EvalResult(metrics, merged, columns, primary="healthbench/score")
