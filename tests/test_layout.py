"""The shape of the package: each public name at one home, no re-export module or block, no import
cycle (function-level imports included), small modules."""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "rvpo_repro"

# Users' code and notebooks import these; each is defined in the module named here, its one home.
PUBLIC = {
    "rvpo_repro.aggregators": ["get_aggregator", "aggregator_from_config"],
    "rvpo_repro.aggregators.base": ["AGGREGATORS", "Aggregator", "register", "options_schema"],
    "rvpo_repro.ranges": ["Range", "within", "field_ranges"],
    "rvpo_repro.aggregators.tensor_ops": ["softmin", "group_zscore", "risk_schedule", "batch_whiten"],
    "rvpo_repro.trainer": ["RVPOTrainer"],
    "rvpo_repro.rewards": ["MultiChannelReward", "RewardChannel", "completion_text", "expand_reward_funcs"],
    "rvpo_repro.analysis.stats.paired": ["paired_bootstrap", "paired_permutation", "wilcoxon", "paired_t"],
    "rvpo_repro.analysis.stats.seeds": ["welch", "mann_whitney", "seed_permutation", "hierarchical_bootstrap"],
    "rvpo_repro.analysis.stats.intervals": ["iqm", "stratified_bootstrap_ci", "probability_of_improvement_ci"],
    "rvpo_repro.analysis.stats.table_rule": ["compare", "mean_ci", "holm"],
    "rvpo_repro.evals.base": ["EvalResult", "metric"],
    "rvpo_repro.evals.healthbench": ["score_example", "aggregate"],
    "rvpo_repro.evals.healthbench_grader": ["load_grader_template", "grader_messages"],
    "rvpo_repro.evals.gpqa": ["extract_answer"],
    "rvpo_repro.evals.bfcl": ["load_bfcl", "score"],
    "rvpo_repro.evals.bfcl_parsing": ["parse_tool_calls_toolrl", "parse_tool_calls_strict", "parse_python_calls"],
    "rvpo_repro.evals.bfcl_checker": ["ast_check"],
    "rvpo_repro.tasks.toolrl.rule_rewards": ["format_reward", "correctness_reward"],
    "rvpo_repro.run.record": ["load_record", "load_examples", "write_record", "config_hash", "run_id"],
    "rvpo_repro.run.provenance": ["environment_info", "redact"],
    "rvpo_repro.analysis.report": ["build_report", "main"],
    "rvpo_repro.analysis.runs": ["collect", "examples", "load_runs"],
    "rvpo_repro.analysis.labels": ["method_label", "setting_label"],
    "rvpo_repro.analysis.ablation": ["main", "table"],
    "rvpo_repro.sweep.plan": ["main", "load", "plan"],
    "rvpo_repro.sweep.cost": ["estimate"],
    "rvpo_repro.config": ["compose", "validate", "ConfigError", "conf_dir"],
    "rvpo_repro.schemas": ["TrainConfig", "ModelConfig", "JudgeConfig"],
    "rvpo_repro.train": ["main"],
    "rvpo_repro.evaluate": ["main"],
}  # fmt: skip

# Names a module imports without using, kept for a caller that still reads them through it.
PASSED_ON: set[tuple[str, str]] = set()  # (module, name) imported there only to be handed on
# `module.name` reads of a name the module only imports (its home is elsewhere).
READ_THROUGH: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(node: ast.ImportFrom, name: str) -> str:
    """The absolute module of a `from ... import` inside module `name`."""
    if not node.level:
        return node.module or ""
    package = name if _is_package(name) else name.rsplit(".", 1)[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


@cache
def _defined(module: str) -> frozenset[str]:
    """Names `module` defines itself at top level (def, class, assignment), and its submodules."""
    names, todo = set(), list(_tree(MODULES[module]).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If | ast.Try | ast.With):  # definitions under a guard count too
            todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return frozenset(names | {m.rsplit(".", 1)[1] for m in MODULES if m.rsplit(".", 1)[0] == module})


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_defined_at_their_one_home(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"
    elsewhere = [n for n in PUBLIC[module] if n not in _defined(module)]
    assert not elsewhere, f"{module} only imports {elsewhere}: name their home instead"


@cache
def _from_package(module: str) -> frozenset[str]:
    """Names `module` imports at top level from rvpo_repro modules (their home is elsewhere)."""
    tree = _tree(MODULES[module])
    return frozenset(
        a.asname or a.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and _absolute(node, module).startswith("rvpo_repro")
        for a in node.names
    )


def _all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


def _reexport_only(tree: ast.Module) -> bool:
    """A module whose body is a docstring, imports and `__all__`: it only hands names on."""
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    passive = (ast.Import, ast.ImportFrom)
    return bool(body) and all(
        isinstance(n, passive)
        or (isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"])
        for n in body
    )


def test_reexport_only_detector():
    assert _reexport_only(ast.parse('"""doc"""\nfrom a import b\n__all__ = ["b"]\n'))
    assert not _reexport_only(ast.parse("from a import b\n\ndef f():\n    return b\n"))
    assert not _reexport_only(ast.parse('"""doc"""\n'))


# A package's __init__ is its face: it imports its submodules so their registries fill (every task
# in rvpo_repro.tasks.TASKS, every judge back end) and names what the package offers. A __main__.py
# only starts something. Every other module must do something of its own.
def _faces(name: str) -> bool:
    return _is_package(name) or name.endswith(".__main__")


def test_no_module_only_reexports():
    shims = [n for n, p in MODULES.items() if not _faces(n) and _reexport_only(_tree(p))]
    assert shims == [], f"modules that only re-export: {shims}; import from the real homes"


def _unused_imports(tree: ast.Module, name: str) -> set[str]:
    """rvpo_repro names imported at module level and never used in the module (handed on)."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and _absolute(node, name).startswith("rvpo_repro"):
            found |= {a.asname or a.name for a in node.names if (a.asname or a.name) not in used}
    return found


def test_unused_import_detector():
    tree = ast.parse("from rvpo_repro.x import a, b\nfrom os import c\n\ndef f():\n    return a\n")
    assert _unused_imports(tree, "rvpo_repro.y") == {"b"}


def test_no_reexport_block_inside_a_module():
    blocks = {
        n: sorted(u)
        for n, p in MODULES.items()
        if not _faces(n) and (u := {x for x in _unused_imports(_tree(p), n) if (n, x) not in PASSED_ON})
    }
    assert blocks == {}, f"imported only to be handed on: {blocks}"
    listed = {n: x for n, p in MODULES.items() if not _faces(n) and (x := set(_all(_tree(p))) - _defined(n))}
    assert listed == {}, f"__all__ names what the module does not define: {listed}"


def _import_sites(tree: ast.Module, name: str):
    """(module, imported name or None, alias bound) of every rvpo_repro import in `tree`, anywhere."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, a.asname
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name)
            for a in node.names:
                yield base, a.name, a.asname or a.name


def _users() -> list[Path]:
    """Every Python file that imports the package: itself, tests, scripts, benchmarks."""
    return [
        p for d in ("rvpo_repro", "tests", "scripts", "benchmarks") for p in sorted((REPO / d).rglob("*.py"))
    ]


def test_every_import_names_the_real_home():
    """`from rvpo_repro.X import n` and `X.n` never name an X that itself imports n from elsewhere
    in the package (package faces aside: they offer what their submodules define)."""
    wrong = []
    for path in _users():
        tree = _tree(path)
        name = _module_name(path) if path.is_relative_to(PKG) else path.stem
        aliases = {}
        for module, imported, alias in _import_sites(tree, name):
            if not module.startswith("rvpo_repro"):
                continue
            if module not in MODULES:
                wrong.append(f"{path.relative_to(REPO)}: no module {module}")
            elif imported is None:
                aliases[alias or module] = module
            elif f"{module}.{imported}" in MODULES:
                aliases[alias] = f"{module}.{imported}"
            elif not _is_package(module) and imported in _from_package(module):
                wrong.append(f"{path.relative_to(REPO)}: {imported} from {module}, which only imports it")
        reads = [
            n for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
        ]  # fmt: skip
        # `module.name = ...` patches the binding the module itself looks up (tests/helpers/kill_at.py):
        # there the name is meant at that module, read or written
        patched = {(n.value.id, n.attr) for n in reads if isinstance(n.ctx, ast.Store)}
        for node in reads:
            module = aliases[node.value.id]
            if (
                _is_package(module)
                or (module, node.attr) in READ_THROUGH
                or (node.value.id, node.attr) in patched
            ):
                continue
            if node.attr in _from_package(module):
                wrong.append(
                    f"{path.relative_to(REPO)}:{node.lineno}: {module}.{node.attr} is not defined there"
                )
    assert wrong == [], "\n".join(wrong)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _private_crossings(tree: ast.Module, name: str) -> list[tuple[int, str, str]]:
    """(line, home module, private name) wherever module `name` takes a private name (one leading
    underscore) from another rvpo_repro module: `from rvpo_repro.x import _y`, `import
    rvpo_repro.x._y`, and `m._y` where m is bound to a package module (`import rvpo_repro.x as m`,
    `from rvpo_repro import x`, `import rvpo_repro.x` then `rvpo_repro.x._y`)."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not a.name.startswith("rvpo_repro"):
                    continue
                aliases[a.asname or "rvpo_repro"] = a.name if a.asname else "rvpo_repro"
                parts = a.name.split(".")
                found += [(node.lineno, ".".join(parts[:i]), p) for i, p in enumerate(parts) if _private(p)]
        elif isinstance(node, ast.ImportFrom):
            home = _absolute(node, name)
            if not home.startswith("rvpo_repro"):
                continue
            for a in node.names:
                if _private(a.name) and home != name:
                    found.append((node.lineno, home, a.name))
                elif f"{home}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{home}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and (chain := _dotted(node.value)):
            head, _, rest = chain.partition(".")
            home = ".".join(filter(None, [aliases.get(head), rest])) if head in aliases else None
            if home in MODULES and home != name:
                found.append((node.lineno, home, node.attr))
    return sorted(found)


def test_private_crossing_detector():
    def crossings(source: str, name: str = "rvpo_repro.analysis.report") -> list[tuple[str, str]]:
        return [(home, n) for _, home, n in _private_crossings(ast.parse(source), name)]

    assert crossings("from rvpo_repro.analysis.figures import _helper, method_styles") == [
        ("rvpo_repro.analysis.figures", "_helper")
    ]
    assert crossings("def f():\n    from .figures import _x\n") == [("rvpo_repro.analysis.figures", "_x")]
    assert crossings("import rvpo_repro.analysis.figures as fig\nfig._helper(1)") == [
        ("rvpo_repro.analysis.figures", "_helper")
    ]
    assert crossings("from rvpo_repro.analysis import figures\nfigures._helper(1)") == [
        ("rvpo_repro.analysis.figures", "_helper")
    ]
    assert crossings("import rvpo_repro.analysis.figures\nrvpo_repro.analysis.figures._helper(1)") == [
        ("rvpo_repro.analysis.figures", "_helper")
    ]
    # its own names, dunders, other libraries' and objects' private attributes are no crossing
    assert crossings("from rvpo_repro import __version__\nimport numpy as np\nnp._x\nself._y\n") == []
    assert crossings("from rvpo_repro.analysis.figures import _helper", "rvpo_repro.analysis.figures") == []


def test_no_private_name_crosses_a_module():
    """What two modules share is public at its one home: no module of the package takes a private
    name from another one."""
    seen = {
        (name, home, n): line
        for name, p in MODULES.items()
        for line, home, n in _private_crossings(_tree(p), name)
    }
    wrong = [
        f"{MODULES[key[0]].relative_to(REPO)}:{line}: {key[2]} from {key[1]}"
        for key, line in sorted(seen.items())
    ]
    assert wrong == [], (
        "private names used outside their module (make them public at their home):\n" + "\n".join(wrong)
    )


def _imports(path: Path, name: str) -> set[str]:
    """rvpo_repro modules that importing `name` runs, including imports inside functions (a call
    that runs them closes a circle as surely as a module-level one).

    `from P import x` names the submodule P.x when there is one, else P. Importing a.b.c first
    runs the __init__ of every package above it; that counts as an edge to each such package the
    importer is not itself inside: a module inside package P is imported only once P's __init__ has
    started, so its own packages are no circle. A package's __init__ importing its own submodules
    is an edge like any other.
    """
    found = set()
    for module, imported, _ in _import_sites(_tree(path), name):
        target = f"{module}.{imported}" if imported and f"{module}.{imported}" in MODULES else module
        if target not in MODULES:
            continue
        parts = target.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        found.add(target)
        found |= {p for p in parents if p in MODULES and not (name == p or name.startswith(p + "."))}
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, [*stack, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_cycle_finder_sees_function_level_and_parent_package_imports():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    # cli -> train inside a function, train -> cli at the top: a circle
    graph = {n: _imports(p, n) for n, p in MODULES.items()}
    assert "rvpo_repro.cli" in graph["rvpo_repro.train"]
    # rvpo_repro.evals.healthbench imports rvpo_repro.judges.base, so runs rvpo_repro.judges' __init__
    assert "rvpo_repro.judges" in graph["rvpo_repro.evals.healthbench"]
    # ... but a module inside rvpo_repro.tasks does not depend on rvpo_repro.tasks' __init__
    assert "rvpo_repro.tasks" not in graph["rvpo_repro.tasks.custom.task"]


def test_no_import_cycle_inside_the_package():
    graph = {n: _imports(p, n) for n, p in MODULES.items()}
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_modules_stay_small():
    sizes = {
        str(p.relative_to(PKG)): len(p.read_text(encoding="utf-8").splitlines()) for p in PKG.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 450} == {}


def test_experiments_are_families():
    experiments = list((PKG.parent / "conf" / "experiment").glob("*.yaml"))
    assert 4 <= len(experiments) <= 12, sorted(p.name for p in experiments)
