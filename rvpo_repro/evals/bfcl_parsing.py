"""Decoders of policy output into BFCL calls `[{name: {param: value}}]` (None: undecodable).

`PARSERS` names them for `bfcl.score(parser=...)` and the toolrl task's `bfcl_parser`:
- "toolrl": the rules of ToolRL's BFCL handler (`RLLAHandler.decode_ast`, benchmarks/BFCL/rlla_qwen.py
  in ToolRL), the evaluation of the paper's tool-calling lineage: the text after the LAST
  `<tool_call>` (think blocks included) up to the next `</tool_call>` or the end, one JSON object
  per line; a line that does not decode to an object with a string "name" and a "parameters" key is
  skipped, and calls named "None" (any case) are dropped. Parameters are kept as decoded: a
  non-object makes the output an invalid call list for the checker, as in BFCL.
- "strict": the first block outside `<think>`; an unclosed block or any bad line voids the output.
- "python": BFCL's own prompting format `[f(a=1)]`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def parse_tool_calls_strict(text: str) -> list[dict] | None:
    """ToolRL output -> BFCL calls `[{name: parameters}]`, strictly (parser "strict").

    The first `<tool_call>...</tool_call>` block outside `<think>` blocks; one JSON object
    {"name": str, "parameters": dict} per non-empty line ("parameters" may be absent: no
    arguments). [] when there is no block; None when a block is unclosed or a line is not such an
    object. Never raises.
    """
    if not isinstance(text, str):
        return None
    text = _THINK.sub("", text)
    start = text.find("<tool_call>")
    if start < 0:
        return []
    end = text.find("</tool_call>", start)
    if end < 0:
        return None
    calls = []
    for line in text[start + len("<tool_call>") : end].splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # ValueError: bad JSON, or an integer past Python's digit limit
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        params = obj.get("parameters", {})
        if not isinstance(params, dict):
            return None
        calls.append({obj["name"]: params})
    return calls


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if type(value) not in (int, float, complex):
            raise ValueError("sign on a non-number")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_literal(v) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(v) for v in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Name):
        return node.id  # a bare variable name becomes its name as a string, as BFCL decodes it
    raise ValueError(f"not a literal: {type(node).__name__}")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError("call target is not a (dotted) name")
    return ".".join([node.id, *reversed(parts)])


def parse_python_calls(text: str) -> list[dict] | None:
    """BFCL's prompting format `[func(a=1, b="x"), mod.func2(c=[1, 2])]` -> `[{name: {param: value}}]`.

    Decoded with `ast` as BFCL does (surrounding backticks, newlines and spaces stripped, brackets
    optional, bare names read as strings, positional arguments ignored), but without evaluating
    anything: arithmetic, calls and lambdas as values make the output unparseable. None when
    unparseable; never raises.
    """
    if not isinstance(text, str):
        return None
    s = text.strip("`\n ")
    s = ("" if s.startswith("[") else "[") + s + ("" if s.endswith("]") else "]")
    try:
        tree = ast.parse(s.strip().strip("'"), mode="eval").body
        elts = [tree] if isinstance(tree, ast.Call) else tree.elts
        calls = []
        for call in elts:
            if not isinstance(call, ast.Call) or any(k.arg is None for k in call.keywords):
                return None
            calls.append({_dotted(call.func): {k.arg: _literal(k.value) for k in call.keywords}})
        return calls
    except (SyntaxError, ValueError, TypeError, AttributeError, RecursionError, MemoryError):
        return None


def parse_tool_calls_toolrl(text: str) -> list[dict] | None:
    """ToolRL's handler rules (see the module docstring). [] when there is no `<tool_call>`; never
    None for a string, since bad lines are skipped rather than voiding the output; never raises."""
    if not isinstance(text, str):
        return None
    if "<tool_call>" not in text:
        return []
    block = text.split("<tool_call>")[-1].split("</tool_call>")[0].strip()
    calls = []
    for line in block.split("\n"):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # ValueError: bad JSON, or an integer past the digit limit
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or "parameters" not in obj:
            continue
        if obj["name"].strip().lower() == "none":
            continue
        calls.append({obj["name"]: obj["parameters"]})
    return calls


PARSERS: dict[str, Callable[[str], list[dict] | None]] = {
    "toolrl": parse_tool_calls_toolrl,
    "strict": parse_tool_calls_strict,
    "python": parse_python_calls,
}
