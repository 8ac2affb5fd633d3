"""Rubric tasks `rar_medicine` and `rar_science`: one LLM-judged reward channel per rubric item.

Training data: RaR-Medicine / RaR-Science (Scale AI, "Rubrics as Rewards"), parquet from the hub
or a local path. Each rubric item of a prompt becomes one binary channel (met / not met, asked of
the judge as JSON); channels beyond a prompt's item count are absent (None -> NaN), so prompts
with 5 and with 17 items aggregate each over their own channels. Every (rollout, item) request of
a batch goes to the judge in one call, which sends them concurrently and caches verdicts.

Pitfall items ("Pitfall Criteria:", negative weight) are ambiguous upstream: some describe the
mistake ("Recommends X"), others its avoidance ("Avoids X"). `pitfall_convention` makes the
reading explicit: `met_is_failure` (default, consistent with the negative weight: the channel
rewards NOT meeting the criterion) or `met_is_success` (the channel rewards meeting it).

Item weights: with either convention a channel's 1.0 is the good outcome, so the weight handed to
the aggregator is the item's |weight| (`item_weights`, per rollout, 0 for absent channels). Under
`met_is_failure`, sum_j |w_j| c_j equals RaR's sum_j w_j met_j plus a per-prompt constant, which
group normalisation removes: GRPO with these weights is the paper's weighted-sum baseline.
GRPO always uses them; GDPO/RVPO only with `aggregator.use_item_weights=true`.

Truncation: a rubric longer than `max_channels` keeps its `max_channels` items of largest |weight|
(ties: earlier item first), in their original order (`select_items`); the task logs how many
prompts were cut and reports it in `TaskData.extra` for the run record.

Evaluation: HealthBench (medicine) and GPQA-Diamond (science), see rvpo_repro/evals/.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rvpo_repro.evals import gpqa, healthbench, healthbench_grader
from rvpo_repro.evals.base import EvalResult
from rvpo_repro.evals.synthetic_benchmarks import (
    write_gpqa_fixture,
    write_healthbench_fixture,
    write_rar_fixture,
)
from rvpo_repro.judges.base import JudgeRequest
from rvpo_repro.judges.parsing import parse_criteria_met
from rvpo_repro.rewards import MultiChannelReward, RewardChannel, completion_text
from rvpo_repro.tasks.base import Task, TaskData, TaskInputError, register_task

FIXTURE = "fixture"  # a source value: write a small fixture in the real schema under the cache dir
log = logging.getLogger(__name__)


class PitfallConvention(StrEnum):
    met_is_failure = "met_is_failure"
    met_is_success = "met_is_success"


@dataclass
class RubricTaskConfig:
    name: str = "rar_medicine"
    source: str = "ScaleAI/RaR-Medicine"  # hub id, local parquet file or directory, or "fixture"
    split: str = "train"
    max_train_examples: int | None = None
    max_channels: int = 17  # longer rubrics keep their items of largest |weight| (the paper: up to 17)
    pitfall_convention: PitfallConvention = PitfallConvention.met_is_failure
    evals: list[str] = field(default_factory=lambda: ["healthbench"])  # healthbench | gpqa
    healthbench_source: str = "main"  # main | hard | consensus | URL | path | fixture
    healthbench_limit: int | None = None
    grader_template: str = (
        "upstream"  # upstream (simple-evals, pinned) | builtin | path to healthbench_eval.py
    )
    gpqa_source: str = "hub"  # hub (gated, HF_TOKEN) | path | fixture
    gpqa_n_repeats: int = 1
    eval_samples: int = 1
    seed: int = 0  # bootstrap seed of the HealthBench aggregate


JUDGE_SYSTEM = (
    "You grade one response against one rubric criterion. A criterion is met only if every part "
    "of it holds; an example list introduced by 'such as' need not be complete. Reply with a JSON "
    'object only: {"explanation": "<one or two sentences>", "criteria_met": true or false}.'
)


def item_request(question: str, response: str, criterion: str) -> JudgeRequest:
    user = (
        f"Question:\n{question}\n\nResponse:\n{response}\n\nCriterion:\n{criterion}\n\nIs the criterion met?"
    )
    return JudgeRequest.from_messages(
        [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
    )


def is_pitfall(item: dict) -> bool:
    return item["description"].lstrip().lower().startswith("pitfall criteria:") or item["weight"] < 0


def select_items(rubric: list[dict], max_channels: int) -> list[dict]:
    """At most `max_channels` items: those of largest |weight|, ties to the earlier item, kept in
    their original order (deterministic; a rubric that fits is returned as is)."""
    if len(rubric) <= max_channels:
        return list(rubric)
    order = sorted(range(len(rubric)), key=lambda j: (-abs(rubric[j]["weight"]), j))
    return [rubric[j] for j in sorted(order[:max_channels])]


class RubricReward(MultiChannelReward):
    """Channels item_00 .. item_{K-1}: 1.0 when the judge says the item is satisfied, else 0.0."""

    def __init__(self, judge: Any, max_channels: int, convention: PitfallConvention):
        self.judge, self.convention = judge, PitfallConvention(convention)
        self.channels = [RewardChannel(f"item_{j:02d}", binary=True) for j in range(max_channels)]

    def channel_value(self, item: dict, met: bool | None) -> float | None:
        if met is None:
            return None  # a failed judge call is a missing reward, never a zero
        if is_pitfall(item) and self.convention is PitfallConvention.met_is_failure:
            met = not met
        return 1.0 if met else 0.0

    def item_weights(self, inputs: list[dict]) -> list[list[float]]:
        """|weight| of each kept item per rollout (see the module docstring), 0 for absent channels."""
        k = len(self.channels)
        rows = []
        for x in inputs:
            w = [float(abs(item["weight"])) for item in select_items(json.loads(x["rubric_json"]), k)]
            rows.append(w + [0.0] * (k - len(w)))
        return rows

    def score(self, prompts: list, completions: list, rubric_json: list[str], **_: Any):
        k = len(self.channels)
        rubrics = [select_items(json.loads(r), k) for r in rubric_json]
        requests, where = [], []
        for i, (prompt, completion, rubric) in enumerate(zip(prompts, completions, rubrics, strict=True)):
            question = completion_text(prompt[-1:]) if isinstance(prompt, list) else str(prompt)
            for j, item in enumerate(rubric):
                requests.append(item_request(question, completion_text(completion), item["description"]))
                where.append((i, j))
        results = self.judge.grade(requests, parse=parse_criteria_met)
        rows: list[list[float | None]] = [[None] * k for _ in completions]
        for (i, j), result in zip(where, results, strict=True):
            rows[i][j] = self.channel_value(rubrics[i][j], result.value)
        return rows


def _resolve_source(source: str, cache_dir: Path, name: str, writer, **kw) -> str:
    if source != FIXTURE:
        return source
    path = cache_dir / "fixtures" / name
    if not path.exists():
        writer(path, **kw)
    return str(path)


def load_rar(source: str, split: str, limit: int | None) -> list[dict]:
    """RaR records from a hub id, a parquet file, or a directory of `<split>*.parquet` files."""
    import datasets

    path = Path(source)
    if path.is_file():
        ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    elif path.is_dir():
        ds = datasets.load_dataset("parquet", data_files=str(path / f"{split}*.parquet"), split="train")
    else:
        ds = datasets.load_dataset(source, split=split)
    rows = ds.to_list()[:limit] if limit else ds.to_list()
    for i, row in enumerate(rows):
        check_rar_row(row, f"{source} ({split}) row {i}")
    return rows


def check_rar_row(row: Any, where: str) -> None:
    """Refuse a RaR record the task cannot use, naming `where` and the field: question a non-empty
    string; rubric a non-empty list of {description: non-empty string, weight: finite non-zero
    number}."""

    def fail(field_name: str, expected: str, got: Any) -> None:
        raise ValueError(f"{where}: field '{field_name}': expected {expected}, got {got!r:.80}")

    if not isinstance(row, dict):
        fail("<record>", "an object", row)
    for key in ("question", "rubric"):
        if key not in row:
            fail(key, "a value (the field is missing)", None)
    if not isinstance(row["question"], str) or not row["question"].strip():
        fail("question", "a non-empty string", row["question"])
    rubric = row["rubric"]
    if not isinstance(rubric, list) or not rubric:
        fail("rubric", "a non-empty list of items", rubric)
    for j, item in enumerate(rubric):
        if not isinstance(item, dict):
            fail(f"rubric[{j}]", "an object {title, description, weight}", item)
        desc, weight = item.get("description"), item.get("weight")
        if not isinstance(desc, str) or not desc.strip():
            fail(f"rubric[{j}].description", "a non-empty string", desc)
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not number or not math.isfinite(weight) or weight == 0:
            fail(f"rubric[{j}].weight", "a finite non-zero number", weight)


class RubricTask(Task):
    schema = RubricTaskConfig

    @classmethod
    def prepare_config(cls, cfg: Any) -> None:
        """Refuse, before any weights load, a GPQA source that cannot be read (gated hub without HF_TOKEN)."""
        source = cfg.task.gpqa_source
        if "gpqa" in cfg.task.evals and source != FIXTURE and (why := gpqa.access_error(source)):
            raise TaskInputError(f"task.gpqa_source={source}: {why}")

    def _judge(self) -> Any:
        if self.judge is None:
            raise ValueError(
                f"task {self.cfg.name} needs an LLM judge; choose one with judge=openai, judge=vllm_local or judge=hf_tiny"
            )
        return self.judge

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        from datasets import Dataset

        cache = Path(self.cache_dir)
        source = _resolve_source(
            self.cfg.source, cache, f"{self.cfg.name}.parquet", write_rar_fixture, n=16, seed=0
        )
        k = self.cfg.max_channels
        records = load_rar(source, self.cfg.split, self.cfg.max_train_examples)
        train = [
            {
                "id": f"{self.cfg.split}-{i}",
                "prompt": [{"role": "user", "content": r["question"]}],
                "rubric_json": json.dumps(select_items(r["rubric"], k)),
            }
            for i, r in enumerate(records)
        ]
        cut = [len(r["rubric"]) - k for r in records if len(r["rubric"]) > k]
        self.truncation = {"max_channels": k, "prompts_truncated": len(cut), "items_dropped": sum(cut)}
        if cut:
            log.warning(
                "%s: %d of %d prompts have more than %d rubric items; kept the %d of largest |weight| "
                "(%d items dropped)",
                self.cfg.name,
                len(cut),
                len(records),
                k,
                k,
                sum(cut),
            )
        reward = RubricReward(self._judge(), k, self.cfg.pitfall_convention)
        return TaskData(
            train_dataset=Dataset.from_list(train),
            eval_dataset=Dataset.from_list(self._eval_rows(cache)),
            reward_funcs=[reward],
            channels=list(reward.channels),
            extra={"rubric_truncation": self.truncation},
        )

    def _eval_rows(self, cache: Path) -> list[dict]:
        rows = []
        for bench in self.cfg.evals:
            if bench == "healthbench":
                src = _resolve_source(
                    self.cfg.healthbench_source, cache, "healthbench.jsonl", write_healthbench_fixture
                )
                for ex in healthbench.load_healthbench(src, limit=self.cfg.healthbench_limit):
                    rows.append(self._row(bench, ex["prompt_id"], healthbench.policy_messages(ex), ex))
            elif bench == "gpqa":
                src = _resolve_source(self.cfg.gpqa_source, cache, "gpqa_diamond.csv", write_gpqa_fixture)
                for ex in gpqa.load_gpqa(src, n_repeats=self.cfg.gpqa_n_repeats):
                    rows.append(self._row(bench, ex["id"], ex["prompt"], ex))
            else:
                raise ValueError(
                    f"task {self.cfg.name}: unknown eval {bench!r}; expected healthbench or gpqa"
                )
        return rows

    @staticmethod
    def _row(bench: str, ex_id: str, prompt: list[dict], example: dict) -> dict:
        return {
            "id": f"{bench}/{ex_id}",
            "benchmark": bench,
            "prompt": prompt,
            "example_json": json.dumps(example),
        }

    def _healthbench(self, examples: list[dict], replies: list[str]) -> EvalResult:
        """Grade with the evaluation judge (the training judge when none was given, flagged), the
        configured template and the judge's own system message (`system_message` of its config;
        None sends none); the grader's description, with the system message actually sent, goes
        into the `healthbench/score` metric as "grader" so the record keeps it."""
        grader = self.eval_judge if self.eval_judge is not None else self._judge()
        template = healthbench_grader.load_grader_template(self.cfg.grader_template, self.cache_dir)
        system = grader.system_message
        result = healthbench.evaluate(
            examples, replies, grader, seed=self.cfg.seed, template=template, system=system
        )
        described = {
            "backend": grader.backend,
            "model": grader.model,
            "temperature": grader.temperature,
            "max_tokens": grader.max_tokens,
            "system_message": system,
        }
        training = None if self.judge is None else {"backend": self.judge.backend, "model": self.judge.model}
        info = healthbench_grader.grader_info(described, template, training_judge=training)
        if self.eval_judge is None:
            info["is_training_judge"] = True
            info["notes"] = sorted(
                {*info["notes"], "grader is also the training judge (reward hacking would go unseen)"}
            )
        if "healthbench/score" in result.metrics:
            result.metrics["healthbench/score"]["grader"] = info
        for note in info["notes"]:
            log.warning("HealthBench: %s", note)
        return result

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        """Each configured benchmark's EvalResult, merged: example ids become `<bench>/<id>`, and
        the first benchmark's primary metric is the task's. The benchmarks' declared columns do
        not overlap (GPQA: `correct`, `domain:*`; HealthBench: `score`, tags), so a column's mean
        over the rows that hold it stays its metric."""
        merged = EvalResult({}, [])
        for bench in self.cfg.evals:
            idx = [i for i, b in enumerate(eval_dataset["benchmark"]) if b == bench]
            exs = [json.loads(eval_dataset[i]["example_json"]) for i in idx]
            replies = [generations[i][0] for i in idx]
            result = (
                self._healthbench(exs, replies) if bench == "healthbench" else gpqa.evaluate(exs, replies)
            )
            if clash := {c for c in result.columns.values() if c in merged.columns.values()}:
                raise ValueError(f"task {self.cfg.name}: {bench} reuses example columns {sorted(clash)}")
            merged.metrics.update(result.metrics)
            merged.columns.update(result.columns)
            merged.primary = merged.primary or result.primary
            merged.examples += [
                {**r, "id": f"{bench}/{r['id']}", "benchmark": bench} for r in result.examples
            ]
        return merged


register_task("rar_medicine")(type("RarMedicineTask", (RubricTask,), {}))
register_task("rar_science")(type("RarScienceTask", (RubricTask,), {}))
