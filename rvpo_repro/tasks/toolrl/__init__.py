"""`toolrl`: tool calling on RLLA-4k (ToolRL) with two rule-based channels, evaluated on BFCL.

Training data: ToolRL's `rlla_rl.json` (4000 records {instruction, input, output}) or its prepared
split `rlla_4k/train.parquet`. Prompts are ToolRL's own: the instruction as the system message,
the input (dialogue history) as the user message. Channels (see `rule_rewards`):

    format       {0, 1}    binary constraint: the <think>/<tool_call>/<response> layout of the ground truth
    correctness  [-3, 3]   tool names, parameter names and values

Evaluation: a BFCL sample through `rvpo_repro.evals.bfcl` (first sample of each prompt).

Sources (`task.source`): `fixture` (a generated set in the upstream schema, offline), a local
`rlla_rl.json` / `train.parquet`, a directory holding either (ToolRL checkout layout), or an
http(s) URL (downloaded once into `task.download_dir`). The default is upstream's file at a pinned
commit (`RLLA_URL`), and a file source must have `task.source_digest` (default: that file's git blob
id, `RLLA_DIGEST`; null for any file).

    python -m rvpo_repro.tasks.toolrl --write-fixture data/rlla_fixture       # raw JSON fixture
    python -m rvpo_repro.tasks.toolrl --prepare data/rlla_fixture/rlla_rl.json data/rlla_fixture/rlla_4k

Modules: `rule_rewards` (the two channels), `data` (sources, split, prepared parquet), `fixture` (the
generated offline set), `task` (the registered task and this command line).
"""

from rvpo_repro.tasks.toolrl.data import (
    DIR_LAYOUTS,
    RLLA_COMMIT,
    RLLA_DIGEST,
    RLLA_URL,
    download,
    load_rlla,
    raw_to_rows,
    read_prepared,
    read_raw,
    resolve_source,
    split_raw,
    write_prepared_split,
)
from rvpo_repro.tasks.toolrl.fixture import RAW_NAME, fixture_records, fixture_tools, write_rlla_fixture
from rvpo_repro.tasks.toolrl.rule_rewards import (
    CORRECTNESS_MAX,
    CORRECTNESS_MIN,
    ToolRLRewards,
    correctness_reward,
    format_reward,
    ground_truth_calls,
)
from rvpo_repro.tasks.toolrl.task import (
    BFCL_CATEGORIES,
    ToolRLConfig,
    ToolRLTask,
    main,
)

__all__ = [
    "BFCL_CATEGORIES", "CORRECTNESS_MAX", "CORRECTNESS_MIN", "DIR_LAYOUTS", "RAW_NAME", "RLLA_COMMIT",
    "RLLA_DIGEST", "RLLA_URL", "ToolRLConfig", "ToolRLRewards", "ToolRLTask", "correctness_reward", "download", "fixture_records",
    "fixture_tools", "format_reward", "ground_truth_calls", "load_rlla", "main", "raw_to_rows",
    "read_prepared", "read_raw", "resolve_source", "split_raw", "write_prepared_split",
    "write_rlla_fixture",
]  # fmt: skip
