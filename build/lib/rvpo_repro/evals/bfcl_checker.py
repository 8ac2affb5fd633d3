"""BFCL's AST checker, re-implemented from the facts of bfcl-eval 2026.3.23 (`ast_checker.py`).

`ast_check(functions, calls, ground_truth, category)` gives the verdict BFCL's checker gives on
decoded calls `[{func_name: {param: value}}]`. Semantics kept on purpose (they decide scores):
- dispatch: "irrelevance" in the category -> correct iff no call; "relevance" -> iff some call
  (no call = None, [], [{}] or anything not in call form, as BFCL's `is_empty_output`);
  "parallel" -> any order, greedy: each ground-truth call takes the first unused model call that
  passes; "multiple" -> same count, the first call checked against the first ground truth;
  otherwise exactly one call, checked against the first function of the entry.
- per call: name; required params present; each given param must be in the schema and in the
  ground truth; type by exact Python type (bool is not int), int accepted for float (Python
  only); a value of the ground truth's own type passes the type check as a "variable" and is then
  compared raw; strings, lists, dicts and lists of dicts compared after `_std` (one level deep,
  as BFCL); a ground-truth param missing from the call must list "" among its values.
- Java / JavaScript: every value must be a string of source code, converted as BFCL's type
  converters do (same regexes, same fall back to the raw string) before the checks above.
Deliberate simplifications: function names are never rewritten (BFCL maps "." to "_" for some API
models only); inputs on which BFCL itself would crash (unknown types, Set/Queue/Stack, a ground
truth naming a function the entry lacks, non-dict list items, digit strings past Python's int
limit) are scored False, never raised.
"""

from __future__ import annotations

import re
from typing import Any

PY_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}  # fmt: skip
JAVA_TYPES: dict[str, type] = {
    "byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int,
    "boolean": bool, "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict,
    "Hashtable": dict, "Queue": list, "Stack": list, "String": str, "any": str,
}  # fmt: skip
JS_TYPES: dict[str, type] = {
    "String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool,
    "dict": dict, "array": list, "any": str,
}  # fmt: skip
_COLLECTIONS = ("Array", "ArrayList", "array")  # types whose items' type drives the conversion


class _Unsupported(Exception):
    """An input BFCL's own checker cannot handle (it would raise): scored as incorrect."""


def _std(s: str) -> str:
    """BFCL's string normalisation: drop ` ,./-_*^`, lowercase, ' -> "."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def _std_all(values: Any) -> list:
    return [_std(v) if type(v) is str else v for v in values]


# ---- Java / JavaScript source strings -> Python values (BFCL's converters' behaviour) ----
def _number_or_text(s: str) -> Any:
    """int, else float, else the text itself (how the checker reads a bare literal)."""
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _java_value(s: str) -> Any:
    if s in ("true", "false"):
        return s == "true"
    if s.startswith('"') and s.endswith('"'):
        return s[1:-1]
    if re.match(r"^-?\d+[lL]$", s):
        return int(s[:-1])
    if re.match(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$", s):
        return float(re.sub(r"[fF]$", "", s))
    return _number_or_text(s)


def _java_item(s: str, nested: str | None) -> Any:
    if nested in ("char", "String"):
        return s[1:-1]  # quotes dropped, as BFCL's ArrayList parser does
    return java_convert(s, nested) if nested else _java_value(s)


def java_convert(s: str, t: str, nested: str | None = None) -> Any:
    """A Java source string -> Python value for declared type `t`; the raw string if it does not fit."""
    if t in ("byte", "short", "integer"):
        return int(s) if re.match(r"^-?\d+$", s) else s
    if t == "float":
        ok = re.match(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$", s)
        return float(re.sub(r"[fF]$", "", s)) if ok else s
    if t == "double":
        return float(s) if re.match(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$", s) else s
    if t == "long":
        return int(re.sub(r"[lL]$", "", s)) if re.match(r"^-?\d+[lL]$", s) else s
    if t == "boolean":
        return s == "true" if s in ("true", "false") else s
    if t in ("char", "String", "any"):  # BFCL's char pattern can never match: chars stay raw
        return s
    if t == "ArrayList":
        m = re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", s)
        if m:
            return [_java_item(e.strip(), nested) for e in m.group(1).split(",")]
        m = re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", s, re.DOTALL)
        if m:
            return [_java_item(e.strip(), nested) for e in re.findall(r"add\((.+?)\)", m.group(1))]
        return [] if re.search(r"new\s+ArrayList<\w*>\(\)", s) else s
    if t == "Array":  # items keep their quotes here (BFCL's Array parser does not strip them)
        m = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", s)
        if not m:
            return s
        items = [x.strip() for x in m.group(1).split(",") if x.strip()]
        return [java_convert(x, nested) if nested else _java_value(x) for x in items]
    if t == "HashMap":
        m = re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", s, re.DOTALL)
        if m:
            pairs = re.findall(r"put\(\"(.*?)\",\s*(.*?)\)", m.group(1))
            return {k: _java_value(v.strip()) for k, v in pairs}
        return {} if re.search(r"new\s+HashMap<.*?>\s*\(\)", s) else s
    raise _Unsupported(f"Java type {t!r}")


def _js_value(s: str) -> Any:
    s = s.strip()
    if s in ("true", "false"):
        return s == "true"
    if len(s) and s[0] in "'\"" and s.endswith(s[0]):
        return s[1:-1]
    return _number_or_text(s)


def _js_array(code: str, nested: str | None) -> Any:
    two_d = r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)"
    m = re.match(two_d, code)
    if m:
        rows = []
        for i, inner in enumerate(re.findall(r"\[(.*?)\]", m.group(0))):
            inner = inner.strip()
            inner = inner[1:] if i == 0 and inner.startswith("[") else inner
            rows.append([_js_value(e.strip()) for e in inner.split(",")])
        return rows
    m = re.match(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)", code)
    if not m:
        return code
    body = (m.group(1) if m.group(1) is not None else m.group(2) or "").strip()
    items = [e.strip() for e in body.split(",")] if body else []
    if not nested:
        return [_js_value(e) for e in items]
    return [js_convert(e, nested, "String" if e[:1] in ("'", '"') else None) for e in items]


def _js_dict(code: str) -> Any:
    if code == "{}":
        return {}
    m = re.match(r"\{(.*?)\}", code)
    if not m:
        return code
    out: dict[str, Any] = {}
    for key, val in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", m.group(1)):
        key, val = key.strip().strip("'\""), val.strip()
        if val.startswith("[") and val.endswith("]"):
            out[key] = _js_collection(val, "array", None)
        elif val.startswith("{") and val.endswith("}"):
            out[key] = _js_collection(val, "dict", None)
        else:
            out[key] = _js_value(val.strip("'\""))
    return out


def _js_collection(code: str, kind: str, nested: str | None) -> Any:
    code = code.strip()
    try:  # BFCL falls back to the raw string on any parse error
        return _js_array(code, nested) if kind == "array" else _js_dict(code)
    except Exception:
        return code


def js_convert(s: str, t: str, nested: str | None = None) -> Any:
    """A JavaScript source string -> Python value for declared type `t` (raw string if no fit)."""
    if t not in JS_TYPES:
        raise _Unsupported(f"JavaScript type {t!r}")
    if t == "String":
        return s[1:-1] if len(s) and s[0] in "'\"" and s.endswith(s[0]) else s
    if t == "integer":
        return int(s) if re.match(r"^-?\d+$", s) else s
    if t == "float":
        return float(s) if re.match(r"^-?\d+(\.\d+)?$", s) else s
    if t == "Bigint":
        return int(s[:-1]) if re.match(r"^-?\d+n$", s) else s
    if t == "Boolean":
        return s == "true" if s in ("true", "false") else s
    if t in ("dict", "array"):
        return _js_collection(s, t, nested)
    return s  # any


# ---- value checks ----
def _type_ok(value: Any, accepted: list, expected: type, nested: type | None) -> tuple[bool, bool]:
    """(type passes, value is a "variable"): BFCL's type_checker, one nesting level deep."""
    gt_type = next((type(a) for a in accepted if a != ""), None)
    variable = gt_type is not None and gt_type is not expected
    if type(value) is expected:
        if nested is None:
            return True, variable
        for item in accepted:  # a non-list accepted value (e.g. "") lets any items through
            if type(item) is not list or all(_type_ok(v, item, nested, None)[0] for v in value):
                return True, variable
        return False, variable
    return (True, True) if gt_type is not None and type(value) is gt_type else (False, False)


def _dict_ok(value: Any, accepted: list) -> bool:
    for gt in accepted:
        if not isinstance(gt, dict):  # "" (optional) and variables never match a dict
            continue
        if not isinstance(value, dict):
            raise _Unsupported("a list item that is not a dict")
        given = all(
            k in gt and (_std(v) if type(v) is str else v) in _std_all(gt[k]) for k, v in value.items()
        )
        if given and all(k in value or "" in vals for k, vals in gt.items()):
            return True
    return False


def _list_dict_ok(value: list, accepted: list) -> bool:
    for gt in accepted:
        if isinstance(gt, list | str) and len(gt) == len(value):
            if all(_dict_ok(v, [g]) for v, g in zip(value, gt, strict=True)):
                return True
    return False


def _value_ok(value: Any, accepted: list, expected: type, nested: type | None) -> bool:
    if expected is dict:
        return _dict_ok(value, accepted)
    if expected is list and nested is dict:
        return _list_dict_ok(value, accepted)
    if expected is str:
        return _std(value) in [_std(a) for a in accepted if type(a) is str]
    if expected is list:
        return _std_all(value) in [_std_all(a) for a in accepted if isinstance(a, list | str)]
    return value in accepted


def _call_ok(doc: dict | None, call: dict, gt_call: dict, lang: str) -> bool:
    if doc is None:
        raise _Unsupported("ground truth names a function the entry lacks")
    accepted_by_param = next(iter(gt_call.values()))
    if doc["name"] not in call:
        return False
    params, schema = call[doc["name"]], doc["parameters"]["properties"]
    if any(r not in params for r in doc["parameters"].get("required", [])):
        return False
    for name, value in params.items():
        if name not in schema or name not in accepted_by_param:
            return False
        accepted, t = accepted_by_param[name], schema[name]["type"]
        table = {"java": JAVA_TYPES, "javascript": JS_TYPES}.get(lang, PY_TYPES)
        if t not in table:
            raise _Unsupported(f"type {t!r}")
        if lang != "python" and type(value) is not str:
            return False
        expected, nested, item_t = table[t], None, None
        if t in (_COLLECTIONS if lang != "python" else ("array", "tuple")):
            item_t = (schema[name].get("items") or {}).get("type")
            if item_t not in table:
                raise _Unsupported(f"item type {item_t!r}")
            nested = table[item_t]
        if lang != "python":
            value = (java_convert if lang == "java" else js_convert)(value, t, item_t)
        if t == "tuple" and type(value) is tuple:
            value = list(value)
        if lang == "python" and t == "float" and type(value) is int:
            value = float(value)
        type_ok, variable = _type_ok(value, accepted, expected, nested)
        if not type_ok:
            return False
        if not (value in accepted if variable else _value_ok(value, accepted, expected, nested)):
            return False
    return all(p in params or "" in acc for p, acc in accepted_by_param.items())


def _is_call_list(calls: Any) -> bool:
    """BFCL's `is_function_calling_format_output`: a list of {name: {params}} with one key each."""
    return isinstance(calls, list) and all(
        type(c) is dict and len(c) == 1 and type(next(iter(c.values()))) is dict for c in calls
    )


def is_no_call(calls: Any) -> bool:
    """BFCL's `is_empty_output` (plus None for undecodable output): what counts as "no call"."""
    return not _is_call_list(calls) or len(calls) == 0 or (len(calls) == 1 and len(calls[0]) == 0)


def language(category: str) -> str:
    """python / java / javascript, from the category name as BFCL decides it."""
    if "javascript" in category:
        return "javascript"
    return "java" if "java" in category else "python"


def _find(functions: list[dict], name: str) -> dict | None:
    return next((f for f in functions if f["name"] == name), None)


def ast_check(functions: list[dict], calls: Any, ground_truth: list[dict] | None, category: str) -> bool:
    """BFCL's verdict for decoded `calls` on one entry (see the module docstring for the rules).

    `functions`: the entry's `function` list; `calls`: `[{name: {param: value}}]`, or None when
    the output did not decode; `ground_truth`: the possible answer's list (None for irrelevance);
    `category`: e.g. "simple_python", "live_parallel" (a "BFCL_v3_"/"BFCL_v4_" prefix is dropped).
    """
    category = re.sub(r"^BFCL_v\d+_", "", category)
    if "irrelevance" in category:
        return is_no_call(calls)
    if "relevance" in category:
        return not is_no_call(calls)
    if not _is_call_list(calls) or not ground_truth:
        return False
    lang = language(category)
    try:
        if "parallel" in category:
            if len(calls) != len(ground_truth):
                return False
            used: set[int] = set()
            for gt in ground_truth:
                doc = _find(functions, next(iter(gt)))
                hit = next(
                    (i for i, c in enumerate(calls) if i not in used and _call_ok(doc, c, gt, lang)), None
                )
                if hit is None:
                    return False
                used.add(hit)
            return True
        if "multiple" in category:
            if len(calls) != len(ground_truth):
                return False
            return _call_ok(_find(functions, next(iter(ground_truth[0]))), calls[0], ground_truth[0], lang)
        return len(calls) == 1 and _call_ok(functions[0], calls[0], ground_truth[0], lang)
    except (_Unsupported, ValueError):  # ValueError: int() of a huge digit string, as in BFCL
        return False
