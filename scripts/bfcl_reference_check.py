"""Reference verdicts from the bfcl-eval package's own AST checker, for agreement tests.

Runs in a SEPARATE venv holding bfcl-eval (its pinned deps, numpy 1.26 among them, clash with
the suite's stack), never in the suite's venv. Input: JSON Lines, one case per line
    {"case_id": str, "category": "simple_python" | ..., "calls": [{name: {param: value}}] | null,
     "entry": {"function": [...], "ground_truth": [...] | null}}
(`calls` null: the output did not decode). Output on stdout: one line per case,
    {"case_id": str, "valid": bool}   or   {"case_id": str, "error": "<exception>"}
The verdict follows bfcl-eval's runner: relevance/irrelevance by `is_empty_output`, AST
categories by `is_function_calling_format_output` then `ast_checker`, with the language of the
category (Java, JavaScript, else Python).

Reference venv (the checker's import chain pulls in the model handlers' client libraries):
    python3.11 -m venv /tmp/bfcl-ref-venv
    /tmp/bfcl-ref-venv/bin/pip install --no-deps bfcl-eval==2026.3.23
    /tmp/bfcl-ref-venv/bin/pip install numpy==1.26.4 tree_sitter==0.21.3 tree-sitter-java==0.21.0 \
        tree-sitter-javascript==0.21.4 cohere==5.18.0 mistralai==1.7.0 anthropic openai google-genai \
        boto3 qwen-agent writer-sdk datamodel-code-generator filelock tenacity overrides soundfile
    /tmp/bfcl-ref-venv/bin/python scripts/bfcl_reference_check.py cases.jsonl > verdicts.jsonl
"""

from __future__ import annotations

import contextlib
import json
import sys

from bfcl_eval.constants.enums import Language
from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
from bfcl_eval.utils import (
    is_empty_output,
    is_function_calling_format_output,
    is_java,
    is_js,
    is_relevance_or_irrelevance,
)

# A model whose names are used as given (no "." -> "_" rewrite), as the suite's policy sees them.
MODEL = "qwen3-8b"
assert not MODEL_CONFIG_MAPPING[MODEL].underscore_to_dot, MODEL


def verdict(case: dict) -> bool:
    category, calls, entry = case["category"], case["calls"], case["entry"]
    if is_relevance_or_irrelevance(category):
        has_call = calls is not None and not is_empty_output(calls)
        return not has_call if "irrelevance" in category else has_call
    if calls is None or not is_function_calling_format_output(calls):
        return False
    lang = Language.JAVA if is_java(category) else Language.JAVASCRIPT if is_js(category) else Language.PYTHON
    return bool(ast_checker(entry["function"], calls, entry["ground_truth"], lang, category, MODEL)["valid"])


def main(argv: list[str]) -> int:
    stream = open(argv[1], encoding="utf-8") if len(argv) > 1 else sys.stdin
    with stream:
        for line in stream:
            if not line.strip():
                continue
            case = json.loads(line)
            try:  # the checker prints some parse errors: keep stdout for the verdicts
                with contextlib.redirect_stdout(sys.stderr):
                    out = {"case_id": case["case_id"], "valid": verdict(case)}
            except Exception as e:  # a crash of the reference is reported, not hidden
                out = {"case_id": case["case_id"], "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
