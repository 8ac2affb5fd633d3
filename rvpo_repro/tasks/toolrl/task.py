"""The `toolrl` task: RLLA-4k prompts and ToolRL rewards for training, a BFCL sample for evaluation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvpo_repro.evals.base import EvalResult
from rvpo_repro.io import parse_digest
from rvpo_repro.tasks.base import Task, TaskData, TaskInputError, register_task
from rvpo_repro.tasks.prompt_limit import prompt_tokens
from rvpo_repro.tasks.toolrl.data import RLLA_DIGEST, RLLA_URL, load_rlla, read_raw, write_prepared_split
from rvpo_repro.tasks.toolrl.fixture import RAW_NAME, write_rlla_fixture
from rvpo_repro.tasks.toolrl.rule_rewards import ToolRLRewards

log = logging.getLogger(__name__)

BFCL_CATEGORIES = (
    "simple_python simple_java simple_javascript multiple parallel parallel_multiple irrelevance "
    "live_simple live_multiple live_parallel live_parallel_multiple live_irrelevance live_relevance"
).split()


@dataclass
class ToolRLConfig:
    name: str = "toolrl"
    source: str = RLLA_URL  # `fixture` | URL | rlla_rl.json | train.parquet | directory holding one
    source_digest: str | None = RLLA_DIGEST  # "<algo>:<hex>" the source's file must have; None: any
    download_dir: str | None = None  # cache for a URL source (None: read it into memory each time)
    fixture_examples: int = 256  # records of the generated set when source == fixture ...
    fixture_short_prompt: bool = False  # ... with a one-paragraph system text instead of ToolRL's (CPU)
    test_share: float = 0.02  # raw JSON only: upstream's held-out share ...
    split_seed: int = 31415  # ... and numpy seed (the prepared parquet is already split)
    max_train_examples: int | None = None  # first N of the (shuffled) train split
    max_prompt_tokens: int | None = None  # drop longer prompts (upstream cuts them on the left; TRL cannot)
    bfcl_source: str | None = (
        "v3"  # v3 (bfcl-eval 2025.8.6.2, pinned) | directory | None: installed bfcl-eval
    )
    bfcl_categories: list[str] = field(default_factory=lambda: list(BFCL_CATEGORIES))
    bfcl_per_category: int | None = None  # seeded sample per category; None: all
    bfcl_seed: int = 0  # fixed across runs, so eval examples pair up between runs
    eval_samples: int = 1  # completions per eval prompt (the first is scored)
    bfcl_parser: str = "toolrl"  # toolrl (ToolRL's BFCL handler rules) | strict (evals.bfcl_parsing)


@register_task("toolrl")
class ToolRLTask(Task):
    schema = ToolRLConfig
    PARSERS = ("toolrl", "strict")  # the bfcl_parsing decoders of this task's <tool_call> format

    @classmethod
    def prepare_config(cls, cfg: Any) -> None:
        if cfg.task.source_digest is not None:
            try:
                parse_digest(cfg.task.source_digest)
            except ValueError as exc:
                raise TaskInputError(f"task.source_digest: {exc}") from None
        if cfg.task.bfcl_parser not in cls.PARSERS:
            raise TaskInputError(
                f"task.bfcl_parser={cfg.task.bfcl_parser!r}: expected one of {list(cls.PARSERS)}"
            )

    def train_rows(self, tokenizer: Any = None) -> list[dict]:
        cache = getattr(self, "cache_dir", None)  # the run's paths.cache_dir, where Task provides it
        rows, _ = load_rlla(self.cfg, str(Path(cache) / "datasets" / "rlla_4k_raw") if cache else None)
        limit = self.cfg.max_prompt_tokens
        self.prompts = {"read": len(rows), "max_prompt_tokens": limit, "dropped": 0}
        if limit is not None and tokenizer is not None:
            kept = [r for r in rows if prompt_tokens(tokenizer, r["prompt"]) <= limit]
            self.prompts["dropped"] = len(rows) - len(kept)
            log.info(
                "toolrl: dropped %d of %d prompts over %d tokens", len(rows) - len(kept), len(rows), limit
            )
            rows = kept
        if self.cfg.max_train_examples is not None:
            rows = rows[: self.cfg.max_train_examples]
        if not rows:
            raise ValueError(f"toolrl: no training rows from source {self.cfg.source!r}")
        return rows

    def eval_rows(self) -> list[dict]:
        from rvpo_repro.evals import bfcl

        cache = Path(self.cache_dir) / "datasets"
        entries = bfcl.load_bfcl(self.cfg.bfcl_source, list(self.cfg.bfcl_categories), cache)
        self.bfcl_data = bfcl.describe_data(self.cfg.bfcl_source, cache)
        if self.cfg.bfcl_per_category is not None:
            entries = bfcl.sample_entries(entries, self.cfg.bfcl_per_category, self.cfg.bfcl_seed)
        return [
            {
                "id": e["id"],
                "category": e["category"],
                "prompt": bfcl.bfcl_messages(e),
                "entry": json.dumps(e),
            }
            for e in entries
        ]

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        from datasets import Dataset

        rewards = ToolRLRewards()
        return TaskData(
            train_dataset=Dataset.from_list(self.train_rows(tokenizer)),
            eval_dataset=Dataset.from_list(self.eval_rows()),
            reward_funcs=[rewards],
            channels=list(rewards.channels),
            extra={"toolrl_prompts": self.prompts, "bfcl_data": self.bfcl_data},
        )

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        from rvpo_repro.evals import bfcl

        entries = [json.loads(s) for s in eval_dataset["entry"]]
        outputs = [samples[0] if samples else "" for samples in generations]
        if len(outputs) != len(entries):
            raise ValueError(f"toolrl: {len(outputs)} generations for {len(entries)} BFCL prompts")
        scored = bfcl.score(entries, outputs, parser=self.cfg.bfcl_parser)
        examples = [{**row, "completion": out} for row, out in zip(scored.examples, outputs, strict=True)]
        return EvalResult(scored.metrics, examples, scored.columns, scored.primary)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rvpo_repro.tasks.toolrl", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--write-fixture", metavar="DIR", help=f"write a generated {RAW_NAME} into DIR")
    parser.add_argument("--n", type=int, default=200, help="records in the fixture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--prepare",
        nargs=2,
        metavar=("RAW_JSON", "OUT_DIR"),
        help="split a raw JSON as upstream does and write OUT_DIR/{train,test}.parquet",
    )
    args = parser.parse_args(argv)
    if not (args.write_fixture or args.prepare):
        parser.error("nothing to do: give --write-fixture and/or --prepare")
    if args.write_fixture:
        print(write_rlla_fixture(args.write_fixture, args.n, args.seed))
    if args.prepare:
        for path in write_prepared_split(read_raw(Path(args.prepare[0])), args.prepare[1]):
            print(path)


if __name__ == "__main__":
    main()
