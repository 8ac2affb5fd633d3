"""How many BFCL verdicts the output-reading rule changes: ToolRL's handler rules vs the strict rule.

    .venv/bin/python scripts/bfcl_parser_changes.py [--source DIR]   (default: bfcl-eval's packaged data)

No policy outputs exist offline, so each single-turn entry of the real data gets outputs of the
shapes the two rules read differently, built from its own possible answer (the test suite's
renderer, tests/fixtures_bfcl.py): the correct calls as they are; with a line that is not JSON;
after a first block holding a wrong call; with an extra call named "None"; in an unclosed block;
and only inside <think>. Irrelevance entries get "no call" written as a call named "None".
Prints, per output shape, the entries scored and the verdicts that differ (strict -> toolrl).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures_bfcl import answer_calls, bfcl_unpassable, tool_call_text  # noqa: E402

from rvpo_repro.evals import bfcl  # noqa: E402
from rvpo_repro.evals.bfcl_checker import ast_check  # noqa: E402
from rvpo_repro.evals.bfcl_parsing import PARSERS  # noqa: E402

NONE_CALL = '{"name": "None", "parameters": {}}'


def shapes(entry: dict) -> dict[str, str]:
    if entry["ground_truth"] is None:
        if "irrelevance" not in entry["category"]:
            return {}
        return {"no call as a 'None' call": f"<tool_call>\n{NONE_CALL}\n</tool_call>"}
    good = tool_call_text(answer_calls(entry))
    wrong = tool_call_text([{"not_a_listed_function": {}}])
    return {
        "correct": good,
        "correct + a non-JSON line": good.replace("\n</tool_call>", "\nnot json\n</tool_call>"),
        "wrong block, then the correct one": wrong + "\n" + good.split("</think>\n", 1)[1],
        "correct + a 'None' call": good.replace("\n</tool_call>", f"\n{NONE_CALL}\n</tool_call>"),
        "correct, block unclosed": good.removesuffix("\n</tool_call>"),
        "correct, only inside <think>": "<think>"
        + good.split("</think>\n", 1)[1]
        + "</think>\n<response>done</response>",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="BFCL data directory (default: bfcl-eval's)")
    args = parser.parse_args(argv)
    entries = [e for e in bfcl.load_bfcl(args.source) if not (e["ground_truth"] and bfcl_unpassable(e))]
    scored, changed = Counter(), Counter()
    for e in entries:
        for shape, text in shapes(e).items():
            verdicts = {
                name: ast_check(e["function"], PARSERS[name](text), e["ground_truth"], e["category"])
                for name in ("strict", "toolrl")
            }
            scored[shape] += 1
            if verdicts["strict"] != verdicts["toolrl"]:
                changed[(shape, f"{verdicts['strict']}->{verdicts['toolrl']}")] += 1
    print(f"{len(entries)} single-turn entries with a passable answer or none expected")
    for shape, n in scored.items():
        diffs = {k[1]: v for k, v in changed.items() if k[0] == shape}
        print(f"{shape:36s} scored {n:5d}  verdicts changed {sum(diffs.values()):5d}  {diffs or ''}")


if __name__ == "__main__":
    main()
