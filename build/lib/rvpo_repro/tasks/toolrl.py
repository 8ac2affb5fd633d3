"""`toolrl`: tool calling on RLLA-4k (ToolRL) with two rule-based channels, evaluated on BFCL.

Training data: ToolRL's `rlla_rl.json` (4000 records {instruction, input, output}) or its prepared
split `rlla_4k/train.parquet`. Prompts are ToolRL's own: the instruction as the system message,
the input (dialogue history) as the user message. Channels (see `toolrl_rewards`):

    format       {0, 1}    binary constraint: the <think>/<tool_call>/<response> layout of the ground truth
    correctness  [-3, 3]   tool names, parameter names and values

Evaluation: a BFCL sample through `rvpo_repro.evals.bfcl` (first sample of each prompt).

Sources (`task.source`): `fixture` (a generated set in the upstream schema, offline), a local
`rlla_rl.json` / `train.parquet`, a directory holding either (ToolRL checkout layout), or an
http(s) URL (downloaded once into `task.download_dir`).

    python -m rvpo_repro.tasks.toolrl --write-fixture data/rlla_fixture       # raw JSON fixture
    python -m rvpo_repro.tasks.toolrl --prepare data/rlla_fixture/rlla_rl.json data/rlla_fixture/rlla_4k
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvpo_repro.rewards import MultiChannelReward, RewardChannel, completion_text
from rvpo_repro.tasks.base import EvalResult, Task, TaskData, register_task
from rvpo_repro.tasks.toolrl_rewards import (
    CORRECTNESS_MAX,
    CORRECTNESS_MIN,
    correctness_reward,
    format_reward,
    ground_truth_calls,
)

log = logging.getLogger(__name__)

RLLA_URL = "https://raw.githubusercontent.com/qiancheng0/ToolRL/main/dataset/rlla_4k_raw/rlla_rl.json"
RAW_NAME = "rlla_rl.json"
# Where a directory source may hold the data (ToolRL's checkout layout first); the prepared split wins.
DIR_LAYOUTS = [f"{d}train.parquet" for d in ("dataset/rlla_4k/", "rlla_4k/", "")] + [
    f"{d}{RAW_NAME}" for d in ("dataset/rlla_4k_raw/", "rlla_4k_raw/", "")
]
# Single-turn BFCL categories (v4 names), non-live then live.
BFCL_CATEGORIES = (
    "simple_python simple_java simple_javascript multiple parallel parallel_multiple irrelevance "
    "live_simple live_multiple live_parallel live_parallel_multiple live_irrelevance live_relevance"
).split()


@dataclass
class ToolRLConfig:
    name: str = "toolrl"
    source: str = RLLA_URL  # `fixture` | URL | rlla_rl.json | train.parquet | directory holding one
    download_dir: str | None = None  # cache for a URL source (None: read it into memory each time)
    fixture_examples: int = 256  # records of the generated set when source == fixture ...
    fixture_short_prompt: bool = False  # ... with a one-paragraph system text instead of ToolRL's (CPU)
    test_share: float = 0.02  # raw JSON only: upstream's held-out share ...
    split_seed: int = 31415  # ... and numpy seed (the prepared parquet is already split)
    max_train_examples: int | None = None  # first N of the (shuffled) train split
    max_prompt_tokens: int | None = None  # drop longer prompts (verl's max prompt length; TRL has none)
    bfcl_source: str | None = None  # None: the data of the installed bfcl-eval package
    bfcl_categories: list[str] = field(default_factory=lambda: list(BFCL_CATEGORIES))
    bfcl_per_category: int | None = None  # seeded sample per category; None: all
    bfcl_seed: int = 0  # fixed across runs, so eval examples pair up between runs
    eval_samples: int = 1  # completions per eval prompt (the first is scored)


class ToolRLRewards(MultiChannelReward):
    """ToolRL's format and correctness rewards; TRL passes the `ground_truth` column as a kwarg."""

    channels = [
        RewardChannel("format", binary=True, low=0.0, high=1.0),
        RewardChannel("correctness", low=CORRECTNESS_MIN, high=CORRECTNESS_MAX),
    ]

    def score(self, prompts: list, completions: list, **kwargs: Any) -> list[list[float]]:
        truths = kwargs.get("ground_truth")
        if truths is None or len(truths) != len(completions):
            raise ValueError("ToolRLRewards needs a `ground_truth` column with one entry per completion")
        out = []
        for completion, truth in zip(completions, truths, strict=True):
            text = completion_text(completion)
            out.append([format_reward(text, truth), correctness_reward(text, truth)])
        return out


# ---------------------------------------------------------------- loading


def _check_raw(records: Any, where: str) -> list[dict]:
    if not isinstance(records, list):
        raise ValueError(f"{where}: expected a JSON list of {{instruction, input, output}} records")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: row {i}: expected an object, got {type(rec).__name__}")
        for key in ("instruction", "input", "output"):
            if not isinstance(rec.get(key), str):
                raise ValueError(f"{where}: row {i}: missing or non-string field {key!r}")
        _check_ground_truth(rec["output"], where, i)
    return records


def _check_ground_truth(truth: str, where: str, i: int) -> None:
    try:
        calls = ground_truth_calls(truth)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: row {i}: ground-truth tool call line is not JSON ({exc})") from exc
    for call in calls or []:
        if not isinstance(call, dict) or not isinstance(call.get("parameters"), dict) or "name" not in call:
            raise ValueError(f"{where}: row {i}: ground-truth tool call {call!r} lacks name/parameters")


def split_raw(records: list[dict], test_share: float = 0.02, seed: int = 31415) -> tuple[list, list]:
    """Upstream's split (`dataset/rlla_4k_raw/rlla.py`): `np.random.seed(seed)`, `np.random.shuffle`
    of the record list, then the last int(n * share) records are the test split.

    Reproduced with a private RandomState, which draws the same permutation as the global one
    without moving the caller's stream (checked: shuffling indices equals shuffling the records).
    Deviation: upstream's `records[:-0]` leaves no train data when int(n * share) == 0 (n < 50
    at 2%); here all records are then train.
    """
    import numpy as np

    order = list(range(len(records)))
    np.random.RandomState(seed).shuffle(order)
    shuffled = [records[i] for i in order]
    n_test = int(len(records) * test_share)
    if n_test == 0:
        return shuffled, []
    return shuffled[:-n_test], shuffled[-n_test:]


def _row(split: str, index: int, prompt: list[dict], truth: str) -> dict:
    # Ids follow upstream's extra_info index, so raw-JSON and parquet sources name rows alike.
    return {"id": f"rlla-{split}-{index:04d}", "prompt": prompt, "ground_truth": truth}


def raw_to_rows(records: list[dict], split: str) -> list[dict]:
    def prompt(r: dict) -> list[dict]:
        return [{"role": "system", "content": r["instruction"]}, {"role": "user", "content": r["input"]}]

    return [_row(split, i, prompt(r), r["output"]) for i, r in enumerate(records)]


def read_raw(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    return _check_raw(records, str(path))


def read_prepared(path: Path) -> list[dict]:
    """Rows of a prepared parquet (`prompt`, `reward_model.ground_truth`, `extra_info.index`)."""
    import pyarrow.parquet as pq

    rows = []
    for i, rec in enumerate(pq.read_table(path).to_pylist()):
        prompt, truth = rec.get("prompt"), (rec.get("reward_model") or {}).get("ground_truth")
        if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m for m in prompt):
            raise ValueError(f"{path}: row {i}: `prompt` is not a list of chat messages")
        if not isinstance(truth, str):
            raise ValueError(f"{path}: row {i}: missing `reward_model.ground_truth`")
        _check_ground_truth(truth, str(path), i)
        info = rec.get("extra_info") or {}
        index = info["index"] if info.get("index") is not None else i
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        rows.append(_row(info.get("split") or path.stem, index, messages, truth))
    return rows


def download(url: str, download_dir: str | None) -> Path:
    """Fetch a URL once into `download_dir` (atomic; a fresh temporary directory when None)."""
    import tempfile
    import urllib.request

    name = url.rstrip("/").rsplit("/", 1)[-1] or RAW_NAME
    target = Path(download_dir or tempfile.mkdtemp(prefix="rlla-")) / name
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except OSError as exc:  # urllib.error.URLError and socket errors are OSErrors
        raise ConnectionError(
            f"could not download the RLLA-4k data from {url} ({exc}). Offline? Fetch {name} elsewhere and "
            f"set task.source to its local path (or task.source=fixture for the generated offline set)."
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def resolve_source(source: str, download_dir: str | None = None) -> Path:
    """The file a source names: a URL is downloaded, a directory searched for `DIR_LAYOUTS`."""
    if source.startswith(("http://", "https://")):
        return download(source, download_dir)
    path = Path(source).expanduser()
    if path.is_dir():
        found = [path / rel for rel in DIR_LAYOUTS if (path / rel).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: holds none of {DIR_LAYOUTS}")
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(f"RLLA source {source!r} does not exist ({RAW_NAME}, a parquet or a dir)")
    return path


def load_rlla(cfg: ToolRLConfig, download_dir: str | None = None) -> tuple[list[dict], list[dict]]:
    """(train rows, test rows) as {"id", "prompt", "ground_truth"}; a parquet source has no test rows.
    A URL is cached in `cfg.download_dir`, else in `download_dir`, else a temporary directory."""
    if cfg.source == "fixture":
        records = fixture_records(cfg.fixture_examples, short_prompt=cfg.fixture_short_prompt)
    else:
        path = resolve_source(cfg.source, cfg.download_dir or download_dir)
        if path.suffix == ".parquet":
            return read_prepared(path), []
        records = read_raw(path)
    train, test = split_raw(records, cfg.test_share, cfg.split_seed)
    return raw_to_rows(train, "train"), raw_to_rows(test, "test")


# ---------------------------------------------------------------- offline fixture in the upstream schema

SYSTEM_TEMPLATE = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks "
    "and provide structured chat responses.\n\n**Available Tools**\nIn your response, you can use the "
    "following tools:\n{tools}\n\n**Steps for Each Turn**\n1. **Think:** Recall relevant context and analyze "
    "the current user goal.\n2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its "
    "parameters.\n3. **Respond Appropriately:** If a response is needed, generate one while maintaining "
    "consistency across user queries.\n\n**Output Format**\n```plaintext\n<think> Your thoughts and "
    "reasoning </think>\n<tool_call>\n"
    '{{"name": "Tool name", "parameters": {{"Parameter name": "Parameter content", "... ...": "... ..."}}}}\n'
    '{{"name": "... ...", "parameters": {{"... ...": "... ...", "... ...": "... ..."}}}}\n'
    "...\n</tool_call>\n<response> AI's final response </response>\n```\n\n**Important Notes**\n1. You must "
    "always include the `<think>` field to outline your reasoning. Provide at least one of `<tool_call>` or "
    "`<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, or both.\n"
    "2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should "
    'be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. '
    'If no parameters are needed, leave the "parameters" field an empty dictionary.\n3. Refer to the '
    "previous dialogue records in the history, including the user's queries, previous `<tool_call>`, "
    "`<response>`, and any tool feedback noted as `<obs>` (if exists)."
)
# One fake tool a line: name | description | user query | param:type:value/value ...
FIXTURE_TOOLS = """\
get_weather | Current weather of a city. | Weather in {city} in {unit}? | city:str:Paris/Oslo unit:str:celsius/kelvin
convert_currency | Convert money. | Convert {amount} {src} to {dst}. | amount:float:10.0/2.5 src:str:USD/EUR dst:str:JPY
get_stock_price | Latest price of a stock. | How much is {symbol} trading at? | symbol:str:AAPL/NVDA/TSLA
search_books | Search a book catalogue. | Find {limit} books about {query}. | query:str:dune/python limit:int:3/5/10
get_time | Current time in a time zone. | What time is it in {timezone}? | timezone:str:JST/UTC/CET
list_holidays | Public holidays of a country. | Holidays of {country} in {year}? | country:str:US/FR year:int:2023/2024
"""
REPLIES = ["Hello! How can I help you today?", "You're welcome, glad I could help.", "Sure, what else?"]
# The same output contract in a few words: a CPU run of the tiny model pays for every prompt token.
SHORT_TEMPLATE = (
    "Tools:\n{tools}\nAnswer as <think> ... </think> then <tool_call> (one JSON object "
    '{{"name": ..., "parameters": {{...}}}} a line) </tool_call> or <response> ... </response>.'
)
THINK_CALL = (
    "<think> I should use the appropriate tool with proper parameters to respond to the user's need. </think>"
)
THINK_REPLY = "<think> I should respond to the user directly; no tool applies. </think>"


def fixture_tools() -> dict[str, tuple[str, str, dict[str, tuple[str, list]]]]:
    """name -> (description, query template, {param: (type, candidate values)})."""
    cast = {"str": str, "int": int, "float": float}
    tools = {}
    for line in FIXTURE_TOOLS.strip().splitlines():
        name, desc, query, params = (part.strip() for part in line.split(" | "))
        specs = [spec.split(":", 2) for spec in params.split()]
        tools[name] = (desc, query, {p: (t, [cast[t](v) for v in vs.split("/")]) for p, t, vs in specs})
    return tools


def fixture_records(n: int, seed: int = 0, short_prompt: bool = False) -> list[dict]:
    """`n` records {instruction, input, output} in RLLA-4k's schema and prompt layout: a tool list in
    the system text, one user turn, and mostly tool-call targets (1-3 calls), some reply-only ones."""
    rng, tools = random.Random(seed), fixture_tools()
    records = []
    for _ in range(n):
        listed = rng.sample(sorted(tools), rng.randint(1, 3))
        lines = []
        for i, name in enumerate(listed):
            spec = {
                p: {"description": f"The {p}.", "type": t, "default": ""}
                for p, (t, _) in tools[name][2].items()
            }
            lines.append(
                f"{i + 1}. Name: {name}\nDescription: {tools[name][0]}\nParameters: {json.dumps(spec)}"
            )
        if rng.random() < 0.15:
            user, output = (
                "Thanks, that is all.",
                f"{THINK_REPLY}\n<response>{rng.choice(REPLIES)}</response>",
            )
        else:
            calls, asks = [], []
            for name in rng.sample(listed, rng.randint(1, len(listed))):
                args = {p: rng.choice(values) for p, (_, values) in tools[name][2].items()}
                calls.append(json.dumps({"name": name, "parameters": args}))
                asks.append(tools[name][1].format(**args))
            user, output = (
                " ".join(asks),
                f"{THINK_CALL}\n<tool_call>\n" + "\n".join(calls) + "\n</tool_call>",
            )
        history = f"**Dialogue Records History**\n<user> {user} </user>"
        records.append(
            {
                "instruction": (SHORT_TEMPLATE if short_prompt else SYSTEM_TEMPLATE).format(
                    tools="\n".join(lines)
                ),
                "input": history,
                "output": output,
            }
        )
    return records


def write_rlla_fixture(path: str | Path, n: int = 200, seed: int = 0) -> Path:
    """Write `n` generated records as upstream's raw JSON; `path` is the .json file or its directory."""
    path = Path(path)
    file = path if path.suffix == ".json" else path / RAW_NAME
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(fixture_records(n, seed), indent=2), encoding="utf-8")
    return file


def write_prepared_split(
    records: list[dict], out_dir: str | Path, test_share: float = 0.02, seed: int = 31415
) -> tuple[Path, Path]:
    """Upstream's `rlla.py`: split, then train/test parquet with prompt, reward_model and extra_info."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, part in zip(("train", "test"), split_raw(records, test_share, seed), strict=True):
        rows = [
            {"data_source": "rlla", "prompt": row["prompt"], "ability": "math"}
            | {"reward_model": {"style": "rule", "ground_truth": r["output"]}}
            | {"extra_info": {"split": split, "index": i, **r}}
            for i, (r, row) in enumerate(zip(part, raw_to_rows(part, split), strict=True))
        ]
        pq.write_table(pa.Table.from_pylist(rows), out / f"{split}.parquet")
        paths.append(out / f"{split}.parquet")
    return paths[0], paths[1]


# ---------------------------------------------------------------- the task


def _prompt_tokens(tokenizer: Any, prompt: list[dict]) -> int:
    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@register_task("toolrl")
class ToolRLTask(Task):
    schema = ToolRLConfig

    def train_rows(self, tokenizer: Any = None) -> list[dict]:
        cache = getattr(self, "cache_dir", None)  # the run's paths.cache_dir, where Task provides it
        rows, _ = load_rlla(self.cfg, str(Path(cache) / "datasets" / "rlla_4k_raw") if cache else None)
        limit = self.cfg.max_prompt_tokens
        if limit is not None and tokenizer is not None:
            kept = [r for r in rows if _prompt_tokens(tokenizer, r["prompt"]) <= limit]
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

        entries = bfcl.load_bfcl(self.cfg.bfcl_source, categories=list(self.cfg.bfcl_categories))
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
        )

    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        from rvpo_repro.evals import bfcl

        entries = [json.loads(s) for s in eval_dataset["entry"]]
        outputs = [samples[0] if samples else "" for samples in generations]
        if len(outputs) != len(entries):
            raise ValueError(f"toolrl: {len(outputs)} generations for {len(entries)} BFCL prompts")
        metrics, rows = bfcl.score(entries, outputs, output_format="tool_call")
        examples = [{**row, "completion": out} for row, out in zip(rows, outputs, strict=True)]
        return EvalResult(metrics=metrics, examples=examples)


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
