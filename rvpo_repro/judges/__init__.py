"""LLM judges behind one interface: `make_judge(cfg).grade(requests, parse) -> list[JudgeResult]`.

Back ends (registry `JUDGES`): openai (any OpenAI-compatible endpoint: OpenAI, a local
`vllm serve`), hf (a local transformers model) and scripted (deterministic, for tests and dry
runs) and rules (rule-shaped criteria checked on the text, for the CPU rubric task). Shared by all: deduplication within a call, an SQLite cache across runs, usage counters
(`judge.stats`) and missing verdicts as None, never as 0 or 1. Importing this package imports
neither openai nor torch; each back end loads its dependencies when first used.
"""

from rvpo_repro.judges import hf_judge, openai_judge, rules, scripted  # noqa: F401  (register the back ends)
from rvpo_repro.judges.base import Judge, JudgeRequest, JudgeResult, JudgeStats, run_sync
from rvpo_repro.judges.cache import JudgeCache
from rvpo_repro.judges.parsing import parse_criteria_met
from rvpo_repro.judges.registry import JUDGES, known_backends, make_judge, register_judge

__all__ = [
    "JUDGES",
    "Judge",
    "JudgeCache",
    "JudgeRequest",
    "JudgeResult",
    "JudgeStats",
    "known_backends",
    "make_judge",
    "parse_criteria_met",
    "register_judge",
    "run_sync",
]
