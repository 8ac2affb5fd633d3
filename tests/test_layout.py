"""The shape of the package: public names at their documented paths, no import cycle, small modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rvpo_repro"

# Users' code and notebooks import these; a module that moves keeps re-exporting them.
PUBLIC = {
    "rvpo_repro.aggregators": ["get_aggregator", "AGGREGATORS", "Aggregator", "aggregator_from_config"],
    "rvpo_repro.advantage_ops": ["softmin", "group_zscore", "risk_schedule", "batch_whiten"],
    "rvpo_repro.trainer": ["RVPOTrainer"],
    "rvpo_repro.rewards": ["MultiChannelReward", "RewardChannel", "completion_text", "expand_reward_funcs"],
    "rvpo_repro.stats": ["paired_bootstrap", "paired_permutation", "wilcoxon", "paired_t", "welch",
                         "mann_whitney", "hierarchical_bootstrap", "holm"],
    "rvpo_repro.evals.healthbench": ["score_example", "aggregate", "load_grader_template", "grader_messages"],
    "rvpo_repro.evals.gpqa": ["extract_answer"],
    "rvpo_repro.evals.bfcl": ["ast_check"],
    "rvpo_repro.tasks.toolrl": ["format_reward", "correctness_reward"],
    "rvpo_repro.records": ["load_record", "load_examples", "write_record", "config_hash", "run_id", "metric"],
    "rvpo_repro.report": ["build_report", "main"],
    "rvpo_repro.results": ["collect", "examples"],
    "rvpo_repro.config": ["compose", "validate", "TrainConfig", "ModelConfig", "ConfigError"],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_import_from_their_documented_path(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, name: str) -> set[str]:
    """rvpo_repro modules imported at module level (imports inside functions are deferred on purpose)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).rstrip(".")
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("rvpo_repro")}


def test_no_import_cycle_inside_the_package():
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {
        name: {m for m in _top_level_imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a package's __init__ importing its own submodules is how re-exports work, not a cycle of ideas
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_stay_small():
    sizes = {
        str(p.relative_to(PKG)): len(p.read_text(encoding="utf-8").splitlines()) for p in PKG.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 450} == {}


def test_experiments_are_families():
    experiments = list((PKG.parent / "conf" / "experiment").glob("*.yaml"))
    assert 4 <= len(experiments) <= 12, sorted(p.name for p in experiments)
