"""BFCL test helpers: a fixture writer in the exact file schema, and model outputs made from
possible answers (correct ones, and single mutations that BFCL's checker must reject)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fn(name: str, props: dict, required: list[str], desc: str = "A test function.") -> dict:
    return {
        "name": name,
        "description": desc,
        "parameters": {"type": "dict", "properties": props, "required": required},
    }


def _p(t: str, items: str | None = None, **extra: Any) -> dict:
    spec = {"type": t, "description": f"A {t} parameter.", **extra}
    if items:
        spec["items"] = {"type": items}
    return spec


def _q(text: str, system: str | None = None) -> list:
    turns = [{"role": "system", "content": system}] if system else []
    return [turns + [{"role": "user", "content": text}]]


AREA = _fn(
    "geometry.area",
    {"shape": _p("string", enum=["circle", "square"]), "size": _p("float"), "unit": _p("string")},
    ["shape", "size"],
)
WEATHER = _fn(
    "get_weather",
    {"city": _p("string"), "days": _p("integer"), "metric": _p("boolean")},
    ["city"],
)
MATRIX = _fn(
    "linalg.solve",
    {
        "matrix": _p("array", "array"),
        "labels": _p("array", "string"),
        "options": _p("dict"),
        "rows": _p("array", "dict"),
        "point": _p("tuple", "integer"),
    },
    ["matrix"],
)
JAVA = _fn(
    "DataLoader.load",
    {
        "path": _p("String"),
        "retries": _p("integer"),
        "strict": _p("boolean"),
        "ids": _p("ArrayList", "long"),
        "opts": _p("HashMap"),
        "timeout": _p("long"),
        "names": _p("Array", "String"),
        "ctx": _p("any"),
    },
    ["path", "strict"],
)
JS = _fn(
    "fetchData",
    {
        "url": _p("String"),
        "options": _p("dict"),
        "tags": _p("array", "String"),
        "limit": _p("float"),
        "verbose": _p("Boolean"),
    },
    ["url"],
)
WEATHER_GT = {"get_weather": {"city": ["New York, NY", "New York"], "days": [3], "metric": ["", True]}}
AREA_GT = {"geometry.area": {"shape": ["circle"], "size": [2.0], "unit": ["", "m"]}}
MATRIX_GT = {
    "linalg.solve": {
        "matrix": [[[1, 2], [3, 4]]],
        "labels": [["row-A", "row B"], ["x", "y"]],
        "options": [{"method": ["LU", "lu-decomposition"], "tol": [0.001, ""]}],
        "rows": [[{"name": ["apple"], "qty": [2]}, {"name": ["pear"], "qty": [1, ""]}]],
        "point": ["", [1, 2]],
    }
}

# category -> [(question, functions, ground truth or None)]
FIXTURE: dict[str, list[tuple[list, list[dict], list[dict] | None]]] = {
    "simple_python": [
        (_q("Weather in New York for 3 days?"), [WEATHER], [WEATHER_GT]),
        (_q("Area of a circle of size 2."), [AREA], [AREA_GT]),
        (_q("Solve [[1,2],[3,4]] with LU."), [MATRIX], [MATRIX_GT]),
    ],
    "simple_java": [
        (
            _q("Load /data/in.csv strictly."),
            [JAVA],
            [
                {
                    "DataLoader.load": {
                        "path": ["/data/in.csv"],
                        "retries": [3, ""],
                        "strict": [True],
                        "ids": [[101, 202]],
                        "opts": [{"mode": ["fast"], "level": [2]}],
                        "timeout": [500],
                        "names": [["alpha", "beta"]],
                        "ctx": ["appContext"],
                    }
                }
            ],
        )
    ],
    "simple_javascript": [
        (
            _q("Fetch https://x.io with GET."),
            [JS],
            [
                {
                    "fetchData": {
                        "url": ["https://x.io"],
                        "options": [{"method": ["GET"]}],
                        "tags": [["news", "tech"]],
                        "limit": [10.0],
                        "verbose": ["", False],
                    }
                }
            ],
        )
    ],
    "multiple": [(_q("Area of a circle of size 2."), [WEATHER, AREA], [AREA_GT])],
    "parallel": [
        (
            _q("Weather in Paris for 2 days and in Rome for 5 days."),
            [WEATHER],
            [
                {"get_weather": {"city": ["Paris"], "days": [2]}},
                {"get_weather": {"city": ["Rome"], "days": [5]}},
            ],
        )
    ],
    "parallel_multiple": [
        (_q("Weather in NY, and the area of a circle of size 2."), [WEATHER, AREA], [WEATHER_GT, AREA_GT])
    ],
    "irrelevance": [(_q("Who wrote Hamlet?"), [AREA], None)],
    "live_simple": [(_q("Weather in NY, 3 days.", system="Be brief."), [WEATHER], [WEATHER_GT])],
    "live_multiple": [(_q("Area of circle size 2."), [WEATHER, AREA], [AREA_GT])],
    "live_parallel": [
        (
            _q("Paris 2 days, Rome 5 days."),
            [WEATHER],
            [
                {"get_weather": {"city": ["Paris"], "days": [2]}},
                {"get_weather": {"city": ["Rome"], "days": [5]}},
            ],
        )
    ],
    "live_parallel_multiple": [(_q("NY weather, circle area 2."), [WEATHER, AREA], [WEATHER_GT, AREA_GT])],
    "live_irrelevance": [(_q("Tell me a joke."), [WEATHER], None)],
    "live_relevance": [(_q("Weather somewhere nice?"), [WEATHER], None)],
}


# v3's own names of three categories (BFCL_v3_simple.json, ids simple_0, ...), as bfcl-eval <= 2025.8.6.2 ships them
V3_FILE_NAMES = {"simple_python": "simple", "simple_java": "java", "simple_javascript": "javascript"}


def write_bfcl_fixture(root: Path, version: int = 4) -> Path:
    """Write every category of FIXTURE as `BFCL_v{version}_<cat>.json` (+ possible_answer/) under root,
    with that version's category names and ids."""
    root = Path(root)
    (root / "possible_answer").mkdir(parents=True, exist_ok=True)
    for cat, items in FIXTURE.items():
        named = V3_FILE_NAMES.get(cat, cat) if version == 3 else cat
        name = f"BFCL_v{version}_{named}.json"
        questions = [
            {"id": f"{named}_{i}", "question": q, "function": f} for i, (q, f, _) in enumerate(items)
        ]
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in questions))
        if items[0][2] is not None:
            answers = [{"id": f"{named}_{i}", "ground_truth": gt} for i, (_, _, gt) in enumerate(items)]
            (root / "possible_answer" / name).write_text("".join(json.dumps(r) + "\n" for r in answers))
    return root


# ---- model outputs from possible answers ----
def _first(accepted: list) -> Any:
    return next((a for a in accepted if a != ""), "")


def _pick_dict(gt: dict) -> dict:
    """A dict-valued answer {key: [accepted]} -> one dict: first values, optional keys omitted."""
    return {k: _first(v) for k, v in gt.items() if "" not in v}


def _java_scalar(v: Any, t: str | None, quote: bool = False) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"' if quote else v
    return {"long": f"{v}L", "float": f"{v}f", "double": repr(float(v))}.get(t or "", str(v))


def _js_scalar(v: Any, t: str | None = None) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_js_scalar(x) for x in v) + "]"
    return f"{v}n" if t == "Bigint" else repr(v)


def render_value(v: Any, spec: dict, lang: str) -> Any:
    """One accepted value as the model would give it: Python values as they are (dict-valued
    answers picked), Java/JS values as source strings BFCL's converters read back."""
    t, items = spec["type"], spec.get("items", {}).get("type")
    if lang == "python":
        if t == "dict" and isinstance(v, dict):
            return _pick_dict(v)
        if items == "dict" and isinstance(v, list):
            return [_pick_dict(x) if isinstance(x, dict) else x for x in v]
        return v
    if isinstance(v, str) and not (lang == "javascript" and t == "String"):
        return v  # a Java/JS string, or a variable name given for another type
    if lang == "java":
        if t == "Array" and isinstance(v, list):
            return "new Object[]{" + ", ".join(_java_scalar(x, items) for x in v) + "}"
        if t == "ArrayList" and isinstance(v, list):
            body = ", ".join(_java_scalar(x, items, quote=items in ("String", "char")) for x in v)
            return f"new ArrayList<>(Arrays.asList({body}))"
        if t == "HashMap" and isinstance(v, dict):
            puts = " ".join(
                f'put("{k}", {_java_scalar(x, None, quote=True)});' for k, x in _pick_dict(v).items()
            )
            return "new HashMap<String, Object>() {{ " + puts + " }}"
        return _java_scalar(v, t)
    if t == "dict" and isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_js_scalar(x)}" for k, x in _pick_dict(v).items()) + "}"
    if t == "array" and isinstance(v, list):
        return "[" + ", ".join(_js_scalar(x, items) for x in v) + "]"
    return _js_scalar(v, t)


def bfcl_unpassable(entry: dict) -> str | None:
    """Why no output can pass this real entry under BFCL's checker (data defects), or None.

    - a ground-truth param with no accepted value at all ([]): it must be given, and nothing matches;
    - a ground-truth param the function does not declare, and not optional: giving it is an
      unexpected param, omitting it a missing one;
    - Java Array/ArrayList of `any` holding non-strings: BFCL's converter keeps `any` items as strings.
    """
    docs = {f["name"]: f["parameters"]["properties"] for f in entry["function"]}
    for gt in entry["ground_truth"] or []:
        ((name, params),) = gt.items()
        for p, acc in params.items():
            spec = docs[name].get(p)
            if not acc:
                return f"{name}.{p}: empty accepted list"
            if spec is None and "" not in acc:
                return f"{name}.{p}: not declared by the function"
            if (
                _lang(entry["category"]) == "java"
                and spec.get("items", {}).get("type") == "any"
                and any(isinstance(v, list) and any(not isinstance(x, str) for x in v) for v in acc)
            ):
                return f"{name}.{p}: Java list of `any` with non-string items"
    return None


def _lang(category: str) -> str:
    return "javascript" if "javascript" in category else "java" if "java" in category else "python"


def answer_calls(entry: dict) -> list[dict]:
    """The first accepted value of every parameter (params optional by "" omitted), as calls."""
    lang, docs = _lang(entry["category"]), {f["name"]: f for f in entry["function"]}
    calls = []
    for gt in entry["ground_truth"] or []:
        ((name, params),) = gt.items()
        doc = docs[name]["parameters"]
        calls.append(
            {
                name: {
                    p: render_value(_first(acc), doc["properties"].get(p, {"type": "any"}), lang)
                    for p, acc in params.items()
                    if p in doc["required"] or "" not in acc
                }
            }
        )
    return calls


def tool_call_text(calls: list[dict]) -> str:
    """Calls rendered in the ToolRL output format."""
    lines = [json.dumps({"name": n, "parameters": p}) for c in calls for n, p in c.items()]
    return "<think>Use the tools.</think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def _std(s: str) -> str:
    import re

    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def _bad_scalar(v: Any, accepted: list) -> Any | None:
    """A value of the same type as v that is not among the accepted ones (None if none found)."""
    if isinstance(v, bool):
        out = not v
    elif isinstance(v, int | float):
        out = v + 7919
    elif isinstance(v, str):
        out = v + " zqx"
        return None if _std(out) in [_std(a) for a in accepted if isinstance(a, str)] else out
    else:
        return None
    return None if out in accepted else out


def mutations(entry: dict) -> dict[str, list[dict]]:
    """Single mutations of the correct calls, each of which BFCL must reject (when applicable)."""
    calls, lang = answer_calls(entry), _lang(entry["category"])
    if not calls:
        return {}
    docs = {f["name"]: f for f in entry["function"]}
    ((name, params),) = calls[0].items()
    doc, gt_params = docs[name]["parameters"], next(iter(entry["ground_truth"][0].values()))
    out: dict[str, list[dict]] = {}

    def with_first(new_params: dict, new_name: str = name) -> list[dict]:
        return [{new_name: new_params}, *calls[1:]]

    out["wrong_name"] = with_first(params, name + "_zqx")
    if doc["required"] and doc["required"][0] in params:
        out["missing_required"] = with_first({k: v for k, v in params.items() if k != doc["required"][0]})
    out["extra_call"] = [*calls, calls[0]]
    for p in params:  # the first param that has a wrong-typed value available
        t = doc["properties"].get(p, {"type": "any"})["type"]
        gt_types = {type(a) for a in gt_params[p] if a != ""}
        if lang != "python":
            out["wrong_type"] = with_first({**params, p: 12345})
            break
        expected = {"string": str, "integer": int, "float": float, "boolean": bool, "dict": dict, "any": str}
        bad = next(
            (c for c in ({"zqx": 1}, 12345.5, "zqx") if type(c) not in gt_types | {expected.get(t, list)}),
            None,
        )
        if bad is not None:
            out["wrong_type"] = with_first({**params, p: bad})
            break
    for p in params:  # the first param with a scalar first value that can go out of the accepted set
        bad = _bad_scalar(_first(gt_params[p]), gt_params[p])
        if bad is not None:
            spec = doc["properties"].get(p, {"type": "any"})
            out["bad_value"] = with_first({**params, p: render_value(bad, spec, lang)})
            break
    return out


# ---- variants for the agreement test with bfcl-eval's own checker ----
_RANDOM = [
    None,
    True,
    False,
    0,
    1,
    -3,
    2.5,
    "",
    "x",
    "true",
    "1",
    "1.5",
    [],
    [1, "a"],
    ["x"],
    {},
    {"k": "v"},
    [{"k": 1}],
]
_SOURCE = ["new ArrayList<>(Arrays.asList(", "new HashMap<String, Object>() {{", 'put("k", 1);', "}}", "new int[]{",
           "}", ")", "true", "false", "'a'", '"b"', "1L", "2.5f", "3n", "[", "]", "{", ": ", ", ", "-", "7", "x"]  # fmt: skip


def perturb(rng, value: Any, lang: str) -> Any:
    """A random nearby value: Java/JS source fragments, one list item or dict entry changed, a
    string variant, or a random JSON value."""
    r = rng.random()
    if lang != "python" and r < 0.5:
        return "".join(rng.choice(_SOURCE) for _ in range(rng.randint(0, 8)))
    if isinstance(value, list) and value and r < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], perturb(rng, value[i], "python"), *value[i + 1 :]]
    if isinstance(value, dict) and value and r < 0.8:
        key = rng.choice(sorted(value))
        rest = {k: v for k, v in value.items() if k != key}
        return rest if rng.random() < 0.3 else {**rest, key: perturb(rng, value[key], "python")}
    if isinstance(value, str) and r < 0.8:
        return rng.choice(
            [
                value.upper() + " .",
                value + "_",
                value[:-1],
                f"'{value}'",
                value.replace("'", '"'),
                value + " x",
            ]
        )
    return rng.choice(_RANDOM)


def variants(entry: dict, rng) -> dict[str, list[dict] | None]:
    """Model outputs (decoded calls) to compare verdicts on: for questions with answers, the answer,
    reordered, string-normalised, each single mutation and 4 random perturbations; for the others,
    no call in each form BFCL knows (None, [], [{}]) and one call."""
    if entry["ground_truth"] is None:
        name = entry["function"][0]["name"] if entry["function"] else "some_tool"
        return {"none": None, "empty": [], "empty_dict": [{}], "call": [{name: {}}]}
    calls, lang = answer_calls(entry), _lang(entry["category"])
    out: dict[str, list[dict] | None] = {"answer": calls, "reversed": calls[::-1], **mutations(entry)}
    ((name, params),) = calls[0].items()
    strs = [p for p, v in params.items() if isinstance(v, str)]
    if strs:
        out["normalised"] = [{name: {**params, strs[0]: params[strs[0]].upper() + " ."}}, *calls[1:]]
    declared = sorted(
        set(params) | set(next(f for f in entry["function"] if f["name"] == name)["parameters"]["properties"])
    )
    for i in range(4):
        if declared:
            p = rng.choice(declared)
            new = (
                {k: v for k, v in params.items() if k != p}
                if rng.random() < 0.1
                else {**params, p: perturb(rng, params.get(p), lang)}
            )
            out[f"random{i}"] = [{name: new}, *calls[1:]]
    return out
