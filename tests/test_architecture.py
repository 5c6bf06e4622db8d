"""The package's shape: imports only point down the layering, no module imports itself through a cycle.

Every ``import`` in ``autonat/`` counts, at the top of a module or inside a
function: a late import that points up is still a dependency that points up.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "autonat"

#: Lowest first. A part may import from its own folder and from the parts on lower layers only.
LAYERS = [
    {"errors", "__init__"},
    {"io", "runtime"},
    {"strategy", "plots"},
    {"tokenizers", "generator"},
    {"text"},
    {"data"},
    {"sampling"},
    {"training"},
    {"evaluation"},
    {"search"},
    {"demo", "convert"},
    {"cli"},
]
RANK = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``autonat.sampling.sampler`` -> ``sampling``; ``autonat`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The autonat modules ``path`` imports (``from autonat.x import y`` counts ``autonat.x.y`` if a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "autonat"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write `from autonat.... import ...`"
            if node.module and node.module.split(".")[0] == "autonat":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add(sub if sub in modules else node.module)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: {i for i in imports_of(p, modules) if i != m} for m, p in files.items()}


def test_every_part_has_a_layer():
    missing = {part_of(m) for m in graph()} - set(RANK)
    assert not missing, f"add {sorted(missing)} to LAYERS"


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """``module -> target`` for every import into another part on the same or a higher layer."""
    found = []
    for module, imported in edges.items():
        here = part_of(module)
        for target in imported:
            there = part_of(target)
            if there != here and RANK[there] >= RANK[here]:
                found.append(f"{module} -> {target}")
    return sorted(found)


def test_imports_point_down_the_layers():
    upward = upward_imports(graph())
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    edges = graph()
    for m in list(edges):  # a package's __init__ is imported on the way to its modules: not an edge to follow
        edges[m] = {t for t in edges[m] if not m.startswith(t + ".")}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("edges,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_what_it_looks_for(edges, expected):
    assert find_cycle(edges) == expected


def test_the_layer_check_sees_upward_and_sideways_imports():
    fake = {"autonat.sampling.sampler": {"autonat.cli.main", "autonat.strategy.core", "autonat.sampling.order"},
            "autonat.tokenizers.loader": {"autonat.generator.uvit"}}
    assert upward_imports(fake) == ["autonat.sampling.sampler -> autonat.cli.main",
                                    "autonat.tokenizers.loader -> autonat.generator.uvit"]
